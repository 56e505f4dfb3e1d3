-- Native images (SlipStream's "Cloud Image Identifiers and Image Hierarchy").
CREATE TABLE images (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    os          TEXT NOT NULL,
    parent      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE image_mappings (
    image          TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE,
    instance       TEXT NOT NULL,
    cloud_image_id TEXT NOT NULL,
    instance_type  TEXT,
    security_group TEXT,
    PRIMARY KEY (image, instance)
);
