-- VM leases and project policies (issue 26).
--
-- vms.lease_*: a VM's lease, NULL when it has none. lease_expires_at is the
-- absolute expiry (ms since the epoch; never a duration, so nothing moves
-- it but an extension); lease_action what the broker does then (stop,
-- terminate: the instance's lease.action when the lease was given);
-- lease_warn_at when the warning is due (the expiry less lease.warn),
-- lease_warned_at when it was recorded. lease_claimed_by/_at: the replica
-- acting on the expiry and since when (a claim older than the worker's
-- claim lifetime is taken over: the replica died mid-action); lease_done_at:
-- when the expiry was dealt with (acted on, or found needless: the VM had
-- ended), after which nothing acts on this lease again; lease_note: what
-- happened, for people (the warning, the action and how late, or why a VM
-- was skipped).
ALTER TABLE vms ADD COLUMN lease_expires_at BIGINT;
ALTER TABLE vms ADD COLUMN lease_action TEXT;
ALTER TABLE vms ADD COLUMN lease_warn_at BIGINT;
ALTER TABLE vms ADD COLUMN lease_warned_at BIGINT;
ALTER TABLE vms ADD COLUMN lease_claimed_by TEXT;
ALTER TABLE vms ADD COLUMN lease_claimed_at BIGINT;
ALTER TABLE vms ADD COLUMN lease_done_at BIGINT;
ALTER TABLE vms ADD COLUMN lease_note TEXT;
-- The lease worker's two queries, each on its own partial index: only
-- leases not dealt with are in them, however long the history.
CREATE INDEX vms_lease_due ON vms (lease_expires_at) WHERE lease_expires_at IS NOT NULL AND lease_done_at IS NULL;
CREATE INDEX vms_lease_warn_due ON vms (lease_warn_at) WHERE lease_warn_at IS NOT NULL AND lease_warned_at IS NULL AND lease_done_at IS NULL;

-- A project's own launch policies on a connector instance: the same
-- parameter names as the instance's (policy.instance.types, policy.images,
-- policy.tags.required, policy.count.max, lease.max). A launch must pass
-- both the instance's and its project's, so a project can only tighten.
CREATE TABLE project_policies (
    project    TEXT NOT NULL REFERENCES projects(name) ON DELETE CASCADE,
    instance   TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project, instance, name)
);
