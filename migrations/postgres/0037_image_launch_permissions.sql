-- Launch permissions of private images (EC2 ModifyImageAttribute
-- launchPermission): the broker users, besides the image's project's
-- members, who see and launch it. Gone with the image or the user.
CREATE TABLE image_launch_permissions (
    image      TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (image, user_name)
);
CREATE INDEX image_launch_permissions_user ON image_launch_permissions (user_name);

-- The VM a private image was made from (EC2 CreateImage), NULL for images
-- registered or declared: deregistering such an image deregisters the
-- cloud's image too.
ALTER TABLE images ADD COLUMN made_from_vm TEXT;
