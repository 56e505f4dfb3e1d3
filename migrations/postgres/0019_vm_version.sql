-- A VM record's version, raised by every write to the record. A write of
-- what the cloud reported (reconciliation, the transition watch) is made
-- only while the record is still at the version read before the cloud was
-- asked: an action (terminate, stop, start), a launch or another replica
-- that wrote in between is newer than that report, and wins (issue 29).
ALTER TABLE vms ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
