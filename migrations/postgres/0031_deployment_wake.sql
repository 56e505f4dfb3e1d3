-- Driver passes skip settled deployments (issue 27). A pass works on the
-- deployments on their way somewhere (provisioning, executing,
-- terminating), with an operation in progress, or woken: `wake` is set by
-- the trigger below when one of a deployment's VMs changes state or
-- address, whoever made the change (the reconciler, the transition watch,
-- a user's action through the VM API, on any replica), so a ready
-- deployment is stepped again only when something happened to it (a VM
-- stopped outside the deployment, an address learnt late) or an abort was
-- asked for. The driver clears `wake` before it reads the members, so a
-- change made during a step wakes it once more. The partial index holds
-- exactly the deployments a pass works on: a pass reads no settled row.
ALTER TABLE deployments ADD COLUMN wake BIGINT NOT NULL DEFAULT 0;
CREATE INDEX deployments_driven ON deployments (updated_at)
    WHERE (state IN ('provisioning', 'executing', 'terminating') OR op IS NOT NULL OR wake <> 0 OR (state = 'ready' AND abort_requested IS NOT NULL));
CREATE OR REPLACE FUNCTION vms_wake_deployment() RETURNS trigger AS $$
BEGIN
    UPDATE deployments SET wake = 1
    WHERE id = (SELECT m.deployment_id FROM deployment_members m WHERE m.vm_id = NEW.id) AND state <> 'terminated' AND wake = 0;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER vms_wake_deployment AFTER UPDATE OF state, private_ip, public_ip ON vms
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.private_ip IS DISTINCT FROM NEW.private_ip OR OLD.public_ip IS DISTINCT FROM NEW.public_ip)
    EXECUTE FUNCTION vms_wake_deployment();
