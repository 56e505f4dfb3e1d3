-- The admin console (issue 23): audit records name their subject, the user
-- whose resource was acted on ('' when none, or for records older than
-- this), so an admin's action on a user's VM reads "admin acted, on alice's".
-- Two indexes keep the admin overview's aggregates to the rows they report
-- at any number of VMs: usage per user and instance over the quota-counted
-- states (an index-only range per state, never the ended VMs), and the
-- failed launches of the last day (a range on (state, updated_at)).
ALTER TABLE audit_log ADD COLUMN subject TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_subject ON audit_log (subject, id);
CREATE INDEX vms_state_user_instance ON vms (state, user_name, instance);
CREATE INDEX vms_state_updated ON vms (state, updated_at);
