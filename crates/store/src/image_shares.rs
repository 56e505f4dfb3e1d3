//! Launch permissions of private images: the users (besides the image's
//! project's members) a private image is shared with. Every change bumps
//! the images version in its transaction, so a cached catalogue is never
//! stale; rows go with their image or their user (foreign keys).

use crate::{now_ms, Store, StoreError};
use std::collections::BTreeMap;

impl Store {
    /// Every share: image name -> the users it is shared with, by name.
    pub async fn image_shares(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT image, user_name FROM image_launch_permissions ORDER BY image, user_name")
            .fetch_all(self.pool())
            .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (image, user) in rows {
            out.entry(image).or_default().push(user);
        }
        Ok(out)
    }

    /// Records that the image `name` was made from the VM `vm` (CreateImage;
    /// [`Store::put_image_made_from`] records it with the image itself).
    pub async fn set_image_made_from(&self, name: &str, vm: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE images SET made_from_vm = $1 WHERE name = $2").bind(vm).bind(name).execute(&mut *tx).await?;
        crate::images::bump_images_version(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The names of the images made from VMs (EC2 `CreateImage`): their
    /// content is their own, so they never resolve through their parent.
    pub async fn images_made_from_vms(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM images WHERE made_from_vm IS NOT NULL").fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The VM the image `name` was made from, if it was (none for images
    /// registered or declared, or not stored).
    pub async fn image_made_from(&self, name: &str) -> Result<Option<String>, StoreError> {
        let r: Option<(Option<String>,)> =
            sqlx::query_as("SELECT made_from_vm FROM images WHERE name = $1").bind(name).fetch_optional(self.pool()).await?;
        Ok(r.and_then(|r| r.0))
    }

    /// Adds and removes users of an image's launch permissions, in one
    /// transaction; `false`, nothing changed, when no such image is stored.
    /// Adding a user who has it already, or removing one who has not, is
    /// no error (as EC2).
    pub async fn change_image_shares(&self, image: &str, add: &[String], remove: &[String]) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        crate::images::begin_images_write(&mut tx).await?;
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT name FROM images WHERE name = $1").bind(image).fetch_optional(&mut *tx).await?;
        if exists.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        for u in remove {
            sqlx::query("DELETE FROM image_launch_permissions WHERE image = $1 AND user_name = $2")
                .bind(image)
                .bind(u)
                .execute(&mut *tx)
                .await?;
        }
        for u in add {
            sqlx::query(
                "INSERT INTO image_launch_permissions (image, user_name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (image, user_name) DO NOTHING",
            )
            .bind(image)
            .bind(u)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        crate::images::bump_images_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::images::{ImageMapping, ImageRow};
    use crate::store_test;

    store_test!(shares_follow_the_image_and_the_user, |store: Store| async move {
        for u in ["alice", "bob", "carol"] {
            store.create_user(u, "h", false).await.unwrap();
        }
        let img = ImageRow {
            name: "mine".into(),
            description: String::new(),
            os: String::new(),
            parent: None,
            mappings: BTreeMap::from([(
                "sb".to_string(),
                ImageMapping { image_id: "ami-1".into(), instance_type: None, security_group: None },
            )]),
            owner: Some("alice".into()),
            project: Some("alice".into()),
        };
        store.put_image(&img, true).await.unwrap();
        assert_eq!(store.image_made_from("mine").await.unwrap(), None);
        store.set_image_made_from("mine", "vm-1").await.unwrap();
        assert_eq!(store.image_made_from("mine").await.unwrap().as_deref(), Some("vm-1"));
        let v0 = store.images_version().await.unwrap();
        assert!(store.change_image_shares("mine", &["bob".into(), "carol".into()], &[]).await.unwrap());
        assert!(store.images_version().await.unwrap() > v0, "a share bumps the images version");
        assert!(store.change_image_shares("mine", &["bob".into()], &["carol".into(), "nobody".into()]).await.unwrap());
        assert_eq!(store.image_shares().await.unwrap(), BTreeMap::from([("mine".to_string(), vec!["bob".to_string()])]));
        assert!(!store.change_image_shares("none", &["bob".into()], &[]).await.unwrap());
        assert!(store.change_image_shares("mine", &["ghost".into()], &[]).await.is_err(), "an unknown user is refused");
        // Renamed, the shares follow; deleted, they go.
        assert!(store.rename_private_image("mine", "alice", "mine-2", "renamed").await.unwrap());
        assert_eq!(store.image_shares().await.unwrap(), BTreeMap::from([("mine-2".to_string(), vec!["bob".to_string()])]));
        assert_eq!(store.images_made_from_vms().await.unwrap(), ["mine-2".to_string()].into(), "a rename keeps where it came from");
        assert!(store.delete_image("mine-2").await.unwrap());
        assert!(store.image_shares().await.unwrap().is_empty());
        // Made from a VM in one transaction with the image; a second time is a conflict.
        let v0 = store.images_version().await.unwrap();
        let made = ImageRow { name: "made".into(), ..img.clone() };
        store.put_image_made_from(&made, "vm-2").await.unwrap();
        assert!(store.images_version().await.unwrap() > v0);
        assert_eq!(store.image_made_from("made").await.unwrap().as_deref(), Some("vm-2"));
        assert_eq!(store.images_made_from_vms().await.unwrap(), ["made".to_string()].into());
        assert!(matches!(store.put_image_made_from(&made, "vm-3").await, Err(StoreError::Conflict(_))));
        assert_eq!(store.image_made_from("made").await.unwrap().as_deref(), Some("vm-2"), "the first stays");
    });
}
