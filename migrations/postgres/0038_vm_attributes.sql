-- Instance attributes the broker keeps itself (issue 22, EC2's
-- ModifyInstanceAttribute): a VM's termination protection
-- (`disableApiTermination`), a row while it is on. The broker refuses to
-- terminate a protected VM through every front (EC2's
-- `OperationNotPermitted`); the other attributes live in the cloud.
CREATE TABLE vm_termination_protection (
    vm_id  TEXT PRIMARY KEY,
    set_at BIGINT NOT NULL
);
-- The reconciler's reads of addresses and volumes the cloud may change
-- without the broker (issue 22): associated addresses, volumes attached or
-- on their way somewhere. Partial, so an account with none costs a probe.
CREATE INDEX addresses_to_sync ON addresses (instance, credential_id) WHERE ended_at IS NULL AND vm_id IS NOT NULL;
CREATE INDEX volumes_to_sync ON volumes (instance, credential_id) WHERE ended_at IS NULL AND (vm_id IS NOT NULL OR state <> 'available');
