-- Metering of states the broker learns late (issue 25): `vms.state_since`
-- is when the cloud says the record's current state began, written by the
-- reconciler and the transition watch from what the cloud reported (EC2's
-- StateTransitionReason), and NULL by every other write of a state (so a
-- later change without a cloud time never reuses an old one). The history
-- entry of a state change is stamped with that time, clamped: never later
-- than the write (updated_at), and never earlier than the VM's previous
-- entry (so a stop is never recorded before its start, whatever a cloud's
-- or a replica's clock says). The history's order stays its id (a sequence).
ALTER TABLE vms ADD COLUMN state_since BIGINT NULL;
CREATE OR REPLACE FUNCTION vms_state_history() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO vm_state_history (vm_id, state, at)
        VALUES (NEW.id, NEW.state, LEAST(COALESCE(NEW.state_since, NEW.updated_at), NEW.updated_at));
    ELSIF OLD.state IS DISTINCT FROM NEW.state THEN
        INSERT INTO vm_state_history (vm_id, state, at)
        VALUES (NEW.id, NEW.state, GREATEST(
            LEAST(COALESCE(NEW.state_since, NEW.updated_at), NEW.updated_at),
            COALESCE((SELECT MAX(h.at) FROM vm_state_history h WHERE h.vm_id = NEW.id), 0)
        ));
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
