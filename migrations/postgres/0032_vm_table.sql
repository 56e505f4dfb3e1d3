-- The web console's VM table (issue 23): a project's VMs sorted by name
-- (ties by creation time and id, as every page of VMs), and the audit
-- records about one VM, read by target on its page.
CREATE INDEX vms_project_name ON vms (project, name, created_at, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
