//! Native images and their per-instance cloud image ids. An image with a
//! project (registered through the EC2 front) is private to that project;
//! one without is public. `owner` records who registered a private image.

use crate::{now_ms, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The cloud side of a native image on one connector instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMapping {
    pub image_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
}

/// A stored native image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRow {
    pub name: String,
    pub description: String,
    pub os: String,
    pub parent: Option<String>,
    pub mappings: BTreeMap<String, ImageMapping>,
    /// The user who registered it (EC2 `RegisterImage`); `None` for the
    /// broker's own (public) images. Kept as created: replacing an image
    /// does not change it.
    pub owner: Option<String>,
    /// The project it is private to (registered in it); `None` for the
    /// broker's own (public) images. Kept as created, like `owner`.
    pub project: Option<String>,
}

/// (name, description, os, parent, owner, project).
type ImageTuple = (String, String, String, Option<String>, Option<String>, Option<String>);

const IMAGE_COLS: &str = "name, description, os, parent, owner, project";

fn image_row((name, description, os, parent, owner, project): ImageTuple) -> ImageRow {
    ImageRow { name, description, os, parent, mappings: BTreeMap::new(), owner, project }
}

/// (image, instance, cloud image id, instance type, security group).
type MappingTuple = (String, String, String, Option<String>, Option<String>);

/// Puts each mapping on its image (by name, whatever order the database sorted in).
fn attach_mappings(images: &mut [ImageRow], maps: Vec<MappingTuple>) {
    let at: std::collections::HashMap<String, usize> = images.iter().enumerate().map(|(n, i)| (i.name.clone(), n)).collect();
    for (image, instance, image_id, instance_type, security_group) in maps {
        if let Some(&n) = at.get(&image) {
            images[n].mappings.insert(instance, ImageMapping { image_id, instance_type, security_group });
        }
    }
}

/// The first statement of every transaction that changes images: a write,
/// so on SQLite the transaction takes the write lock at once, waiting for
/// another writer (a transaction that reads first cannot take it later
/// while another writer holds it: "database is locked" at once, no
/// waiting); on PostgreSQL it queues image writes on one row.
pub(crate) async fn begin_images_write(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE broker_meta SET value = value WHERE key = 'images_version'").execute(&mut **tx).await?;
    Ok(())
}

/// Bumps the images version in the transaction of an image write (see
/// [`Store::images_version`]).
pub(crate) async fn bump_images_version(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO broker_meta (key, value) VALUES ('images_version', '1') \
         ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(broker_meta.value AS BIGINT) + 1 AS TEXT)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The images version: bumped in the transaction of every image write
    /// (create, replace, delete), 0 before the first. A cache of the
    /// catalogue keyed on it is never stale, whichever replica wrote: read
    /// the version first, then the images.
    pub async fn images_version(&self) -> Result<i64, StoreError> {
        let r: Option<(String,)> =
            sqlx::query_as("SELECT value FROM broker_meta WHERE key = 'images_version'").fetch_optional(self.pool()).await?;
        Ok(r.and_then(|r| r.0.parse().ok()).unwrap_or(0))
    }

    /// All images, with their mappings.
    pub async fn list_images(&self) -> Result<Vec<ImageRow>, StoreError> {
        let rows: Vec<ImageTuple> =
            sqlx::query_as(&format!("SELECT {IMAGE_COLS} FROM images ORDER BY name")).fetch_all(self.pool()).await?;
        let maps: Vec<MappingTuple> = sqlx::query_as(
            "SELECT image, instance, cloud_image_id, instance_type, security_group FROM image_mappings ORDER BY image, instance",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<ImageRow> = rows.into_iter().map(image_row).collect();
        attach_mappings(&mut out, maps);
        Ok(out)
    }

    /// One page of images by name (byte order), after the name `after`, with
    /// their mappings. With `viewer` (a project), only the public images
    /// and those private to `viewer` (other projects' private images do not
    /// exist for it).
    pub async fn page_images(&self, after: Option<&str>, limit: i64, viewer: Option<&str>) -> Result<Vec<ImageRow>, StoreError> {
        self.page_images_for(after, limit, viewer, "").await
    }

    /// As [`Self::page_images`], the images shared with the user `user`
    /// (launch permissions) included for a `viewer`.
    pub async fn page_images_for(
        &self,
        after: Option<&str>,
        limit: i64,
        viewer: Option<&str>,
        user: &str,
    ) -> Result<Vec<ImageRow>, StoreError> {
        let after = after.unwrap_or("");
        let name = self.bytewise("name");
        let rows: Vec<ImageTuple> = sqlx::query_as(&format!(
            "SELECT {IMAGE_COLS} FROM images WHERE {name} > $1 \
             AND ($3 = '' OR project IS NULL OR project = $3 \
             OR name IN (SELECT image FROM image_launch_permissions WHERE user_name = $4)) ORDER BY {name} LIMIT $2"
        ))
        .bind(after)
        .bind(limit)
        .bind(viewer.unwrap_or(""))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else { return Ok(Vec::new()) };
        let image = self.bytewise("image");
        let maps: Vec<MappingTuple> = sqlx::query_as(&format!(
            "SELECT image, instance, cloud_image_id, instance_type, security_group FROM image_mappings \
             WHERE {image} > $1 AND {image} <= $2 ORDER BY image, instance"
        ))
        .bind(after)
        .bind(&last)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<ImageRow> = rows.into_iter().map(image_row).collect();
        attach_mappings(&mut out, maps);
        Ok(out)
    }

    /// Creates or replaces an image and all its mappings, in one transaction.
    pub async fn put_image(&self, img: &ImageRow, create_only: bool) -> Result<(), StoreError> {
        self.put_image_from(img, create_only, None).await
    }

    /// As [`Self::put_image`] (create only) for an image made from the VM
    /// `vm` (EC2 `CreateImage`), recorded as such in the same transaction:
    /// no reader ever sees the image without knowing where it came from.
    pub async fn put_image_made_from(&self, img: &ImageRow, vm: &str) -> Result<(), StoreError> {
        self.put_image_from(img, true, Some(vm)).await
    }

    async fn put_image_from(&self, img: &ImageRow, create_only: bool, made_from: Option<&str>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        begin_images_write(&mut tx).await?;
        let now = now_ms();
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT name FROM images WHERE name = $1").bind(&img.name).fetch_optional(&mut *tx).await?;
        match exists {
            Some(_) if create_only => return Err(StoreError::Conflict(format!("image '{}' already exists", img.name))),
            Some(_) => {
                sqlx::query("UPDATE images SET description = $1, os = $2, parent = $3, updated_at = $4 WHERE name = $5")
                    .bind(&img.description)
                    .bind(&img.os)
                    .bind(&img.parent)
                    .bind(now)
                    .bind(&img.name)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO images (name, description, os, parent, created_at, updated_at, owner, project) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
                )
                .bind(&img.name)
                .bind(&img.description)
                .bind(&img.os)
                .bind(&img.parent)
                .bind(now)
                .bind(&img.owner)
                .bind(&img.project)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM image_mappings WHERE image = $1").bind(&img.name).execute(&mut *tx).await?;
        for (inst, m) in &img.mappings {
            sqlx::query(
                "INSERT INTO image_mappings (image, instance, cloud_image_id, instance_type, security_group) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&img.name)
            .bind(inst)
            .bind(&m.image_id)
            .bind(&m.instance_type)
            .bind(&m.security_group)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(vm) = made_from {
            sqlx::query("UPDATE images SET made_from_vm = $1 WHERE name = $2").bind(vm).bind(&img.name).execute(&mut *tx).await?;
        }
        bump_images_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Renames the private image `name` of `project` to `new_name`, with
    /// `description`, moving its mappings, in one transaction (a name the
    /// operator's files now declare is theirs). `false`, nothing changed,
    /// when no such image is stored or `new_name` is taken.
    pub async fn rename_private_image(&self, name: &str, project: &str, new_name: &str, description: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        begin_images_write(&mut tx).await?;
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT name FROM images WHERE name = $1").bind(new_name).fetch_optional(&mut *tx).await?;
        if taken.is_some() {
            tx.rollback().await?;
            return Ok(false);
        }
        let copied = sqlx::query(
            "INSERT INTO images (name, description, os, parent, created_at, updated_at, owner, project, made_from_vm) \
             SELECT $1, $2, os, parent, created_at, $3, owner, project, made_from_vm FROM images WHERE name = $4 AND project = $5",
        )
        .bind(new_name)
        .bind(description)
        .bind(now_ms())
        .bind(name)
        .bind(project)
        .execute(&mut *tx)
        .await;
        match copied.map_err(StoreError::from) {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => {
                tx.rollback().await?;
                return Ok(false);
            }
            // Another replica took the name meanwhile.
            Err(e) if e.is_unique_violation() => return Ok(false),
            Err(e) => return Err(e),
        }
        sqlx::query("UPDATE image_mappings SET image = $1 WHERE image = $2").bind(new_name).bind(name).execute(&mut *tx).await?;
        sqlx::query("UPDATE image_launch_permissions SET image = $1 WHERE image = $2").bind(new_name).bind(name).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM images WHERE name = $1").bind(name).execute(&mut *tx).await?;
        bump_images_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes an image; refused while other images name it as parent.
    pub async fn delete_image(&self, name: &str) -> Result<bool, StoreError> {
        let children: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM images WHERE parent = $1 ORDER BY name").bind(name).fetch_all(self.pool()).await?;
        if !children.is_empty() {
            // A count, not names: the caller may not see other projects' images.
            let n = children.len();
            return Err(StoreError::Conflict(format!("image '{name}' is the parent of {n} other image{}", if n == 1 { "" } else { "s" })));
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM image_mappings WHERE image = $1").bind(name).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM images WHERE name = $1").bind(name).execute(&mut *tx).await?;
        bump_images_version(&mut tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store_test;

    fn private(name: &str, owner: Option<&str>, project: Option<&str>) -> ImageRow {
        ImageRow {
            name: name.into(),
            description: String::new(),
            os: String::new(),
            parent: None,
            mappings: BTreeMap::from([(
                "sb".to_string(),
                ImageMapping { image_id: "ami-1".into(), instance_type: None, security_group: None },
            )]),
            owner: owner.map(str::to_string),
            project: project.map(str::to_string),
        }
    }

    store_test!(private_images_belong_to_a_project, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        store.create_user("bob", "h", false).await.unwrap();
        store.put_image(&private("pub", None, None), true).await.unwrap();
        store.put_image(&private("team", Some("alice"), Some("team-a")), true).await.unwrap();
        store.put_image(&private("bobs", Some("bob"), Some("bob")), true).await.unwrap();
        let names = |rows: Vec<ImageRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(store.page_images(None, 10, Some("team-a")).await.unwrap()), ["pub", "team"]);
        assert_eq!(names(store.page_images(None, 10, Some("bob")).await.unwrap()), ["bobs", "pub"]);
        assert_eq!(names(store.page_images(None, 10, Some("alice")).await.unwrap()), ["pub"], "the creator sees it in its project only");
        assert_eq!(names(store.page_images(None, 10, None).await.unwrap()), ["bobs", "pub", "team"]);
        let team = store.list_images().await.unwrap().into_iter().find(|i| i.name == "team").unwrap();
        assert_eq!((team.owner.as_deref(), team.project.as_deref()), (Some("alice"), Some("team-a")));
        // Replacing keeps the project and the owner; renaming carries both.
        store.put_image(&ImageRow { description: "new".into(), ..private("team", None, None) }, false).await.unwrap();
        assert!(!store.rename_private_image("team", "alice", "team-x", "renamed").await.unwrap(), "keyed on the project");
        assert!(store.rename_private_image("team", "team-a", "team-x", "renamed").await.unwrap());
        let moved = store.list_images().await.unwrap().into_iter().find(|i| i.name == "team-x").unwrap();
        assert_eq!((moved.owner.as_deref(), moved.project.as_deref(), moved.mappings.len()), (Some("alice"), Some("team-a"), 1));
    });
}
