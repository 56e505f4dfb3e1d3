-- Metering's ground truth (issue 25): every state a VM record takes, with
-- the time the broker recorded it (the record's updated_at, stamped by the
-- broker's clock), appended by triggers in the same transaction as the
-- change, whichever code path writes it (a launch, an action, the
-- transition watch, the reconciler, the lease worker). Append-only: nothing
-- updates or deletes these rows. VMs recorded before this migration start
-- their history with the state they had then, at their last update.
CREATE TABLE vm_state_history (
    id     INTEGER PRIMARY KEY,
    vm_id  TEXT NOT NULL,
    state  TEXT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX vm_state_history_by_vm ON vm_state_history (vm_id, at);
CREATE INDEX vm_state_history_by_time ON vm_state_history (at);
INSERT INTO vm_state_history (vm_id, state, at) SELECT id, state, updated_at FROM vms ORDER BY updated_at;
CREATE TRIGGER vms_state_history_insert AFTER INSERT ON vms
BEGIN
    INSERT INTO vm_state_history (vm_id, state, at) VALUES (NEW.id, NEW.state, NEW.updated_at);
END;
CREATE TRIGGER vms_state_history_update AFTER UPDATE OF state ON vms WHEN OLD.state <> NEW.state
BEGIN
    INSERT INTO vm_state_history (vm_id, state, at) VALUES (NEW.id, NEW.state, NEW.updated_at);
END;
