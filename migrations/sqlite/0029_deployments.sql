-- Deployments (issue 27): a multi-VM application launched by the broker.
-- A deployment's rows are written in the same transaction as the admission
-- of its VMs (all or none). One replica drives a deployment at a time: the
-- claim (claim_owner, claim_until) is taken by a conditional update, and an
-- expired claim lets any replica resume it. `op` is the operation in
-- progress (scale | terminate), set by a conditional update, so two never
-- interleave. Every time is milliseconds from the store's clock.
CREATE TABLE deployments (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    app_name        TEXT NOT NULL,
    app_version     BIGINT NOT NULL,
    user_name       TEXT NOT NULL,
    project         TEXT NOT NULL,
    state           TEXT NOT NULL,
    on_failure      TEXT NOT NULL,
    placement       TEXT NOT NULL,
    message         TEXT NULL,
    abort_requested TEXT NULL,
    op              TEXT NULL,
    deadline_at     BIGINT NULL,
    claim_owner     TEXT NULL,
    claim_until     BIGINT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX deployments_by_project ON deployments (project, created_at);
CREATE INDEX deployments_by_state ON deployments (state);
-- One row per VM slot attempt: a slot (node, idx) gets a new attempt when
-- its VM's launch was interrupted or failed at the cloud (at most 3).
CREATE TABLE deployment_members (
    deployment_id TEXT NOT NULL,
    node          TEXT NOT NULL,
    idx           BIGINT NOT NULL,
    attempt       BIGINT NOT NULL,
    vm_id         TEXT NULL UNIQUE,
    state         TEXT NOT NULL,
    ready_at      BIGINT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, node, idx, attempt)
);
-- Parameters: "input.<name>", "<node>.input.<name>", "<node>.<idx>.<output>".
-- Secret values (secret = 1; flags are integers, as everywhere in the store)
-- are sealed by the vault and never shown back.
CREATE TABLE deployment_params (
    deployment_id TEXT NOT NULL,
    name          TEXT NOT NULL,
    value         TEXT NOT NULL,
    secret        BIGINT NOT NULL DEFAULT 0,
    set_by        TEXT NOT NULL,
    set_at        BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, name)
);
-- Each VM's credential (its hash only), revoked when the VM ends.
CREATE TABLE deployment_tokens (
    token_hash    TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL,
    node          TEXT NOT NULL,
    idx           BIGINT NOT NULL,
    attempt       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT NULL
);
CREATE INDEX deployment_tokens_by_dep ON deployment_tokens (deployment_id, node, idx);
-- Which VM waits on which parameter (shown on the deployment page).
CREATE TABLE deployment_waits (
    deployment_id TEXT NOT NULL,
    node          TEXT NOT NULL,
    idx           BIGINT NOT NULL,
    param         TEXT NOT NULL,
    since         BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, node, idx, param)
);
-- The timeline: its order is the id (a sequence), not the replicas' clocks.
CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX deployment_events_by_dep ON deployment_events (deployment_id, id);
