-- Budgets (issue 25): monthly spend limits per user and per project on a
-- connector instance. The default is the instance's budget.user.monthly /
-- budget.project.monthly parameter; an admin overrides it per user or
-- project here (amount in millionths of the broker's currency).
CREATE TABLE budget_overrides (
    scope    TEXT NOT NULL,
    owner    TEXT NOT NULL,
    instance TEXT NOT NULL,
    amount   BIGINT NOT NULL,
    PRIMARY KEY (scope, owner, instance)
);
-- Each threshold a budget's spend crossed in a month, recorded once (the
-- primary key makes a second replica's insert a no-op): what the UI's
-- banner, the audit record and the metric come from.
CREATE TABLE budget_alerts (
    scope     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    instance  TEXT NOT NULL,
    month     TEXT NOT NULL,
    threshold INTEGER NOT NULL,
    spent     BIGINT NOT NULL,
    budget    BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (scope, owner, instance, month, threshold)
);
