-- Metering's running spans (issue 25): each stretch a VM was running, kept
-- beside its state history so cost reports and budgets read one row per
-- start rather than every state change. A span opens at a history entry
-- `running` (unless one is open: the first start counts) and closes at the
-- VM's next entry in any other state; a span still open has no end. Kept
-- by a trigger on the history, in the same transaction as the entry, so
-- the spans are always exactly what `running_spans` derives from the
-- history ordered by (at, id): each VM's entries are appended in time
-- order (migration 0027 clamps each new entry to the VM's latest), and the
-- history before this migration is converted below in that order.
CREATE TABLE vm_running_spans (
    id         INTEGER PRIMARY KEY,
    vm_id      TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT NULL
);
INSERT INTO vm_running_spans (vm_id, started_at, ended_at)
SELECT vm_id, at, ended FROM (
    SELECT vm_id, r, at, LEAD(at) OVER (PARTITION BY vm_id ORDER BY at, id) AS ended FROM (
        SELECT vm_id, at, id, r, LAG(r, 1, 0) OVER (PARTITION BY vm_id ORDER BY at, id) AS previous FROM (
            SELECT vm_id, at, id, CASE WHEN state = 'running' THEN 1 ELSE 0 END AS r FROM vm_state_history
        ) h
    ) b WHERE r <> previous
) s WHERE r = 1 ORDER BY at;
CREATE INDEX vm_running_spans_by_vm ON vm_running_spans (vm_id, started_at);
CREATE INDEX vm_running_spans_by_end ON vm_running_spans (ended_at, started_at, vm_id);
CREATE INDEX vm_running_spans_open ON vm_running_spans (vm_id) WHERE ended_at IS NULL;
CREATE TRIGGER vm_state_history_spans AFTER INSERT ON vm_state_history
BEGIN
    UPDATE vm_running_spans SET ended_at = NEW.at WHERE NEW.state <> 'running' AND vm_id = NEW.vm_id AND ended_at IS NULL;
    INSERT INTO vm_running_spans (vm_id, started_at)
    SELECT NEW.vm_id, NEW.at WHERE NEW.state = 'running'
        AND NOT EXISTS (SELECT 1 FROM vm_running_spans WHERE vm_id = NEW.vm_id AND ended_at IS NULL);
END;
