-- One record per cloud VM: a unique index on (instance, cloud_id). Before it,
-- adoption checked with NOT EXISTS, which READ COMMITTED (PostgreSQL) does not
-- make safe against a second replica. Any duplicate already recorded is kept
-- once (the oldest record); the others are marked failed, lose their cloud id
-- (so they count against no quota) and say why.
UPDATE vms
SET error = 'duplicate record of cloud VM ' || cloud_id || ' (the oldest record was kept)',
    state = 'failed',
    cloud_id = NULL
WHERE cloud_id IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM vms o
    WHERE o.instance = vms.instance AND o.cloud_id = vms.cloud_id
      AND (o.created_at < vms.created_at OR (o.created_at = vms.created_at AND o.id < vms.id))
  );
DROP INDEX vms_cloud_id;
CREATE UNIQUE INDEX vms_cloud_id ON vms (instance, cloud_id) WHERE cloud_id IS NOT NULL;
