-- A VM's instance type over time (issue 22, EC2's ModifyInstanceAttribute
-- instanceType): one row per change, written in the same transaction as
-- the change of `vms.instance_type` and stamped with the store's clock.
-- A type changes only while the VM is stopped, so every running span has
-- one type: the `from_type` of the VM's first change after the span's
-- start, or its current type when none followed. Metering prices each
-- span at that type, so a change never reprices earlier running time.
-- No row for VMs whose type never changed (almost all): reports read the
-- changes of a period's VMs in one query, through these indexes.
CREATE TABLE vm_type_changes (
    id        INTEGER PRIMARY KEY,
    vm_id     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    from_type TEXT NOT NULL,
    to_type   TEXT NOT NULL
);
CREATE INDEX vm_type_changes_by_vm ON vm_type_changes (vm_id, at);
CREATE INDEX vm_type_changes_by_time ON vm_type_changes (at);
