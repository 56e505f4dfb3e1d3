-- Tags on key pairs and Elastic IPs (EC2's CreateTags/DeleteTags on `key-…`
-- and `eipalloc-…` ids, TagSpecifications on CreateKeyPair, ImportKeyPair
-- and AllocateAddress): a JSON object of key to value, as volumes keep theirs.
ALTER TABLE key_pairs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE addresses ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
