-- The transition watch (every 3 s) asks for the VMs in a transitional state
-- and the VM-count gauges for the live ones per instance and state: index
-- (state, instance), so both cost the VMs asked for, not the history of
-- terminated ones (90% of the rows of a long-lived broker).
CREATE INDEX vms_state_instance ON vms(state, instance);
