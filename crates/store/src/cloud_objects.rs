//! Cloud objects the broker made for its users besides VMs, addresses and
//! volumes: security groups, VPCs, subnets and snapshots, in one table keyed
//! by (connector instance, kind, cloud id). A row names the project the
//! object belongs to, who made it and the credential it was made with; it is
//! never deleted while the object lives: ending it sets `ended_at` and the
//! final state, and listings leave ended rows out. The kind's own fields live
//! in `attrs` (a JSON object), tags in `tags`. How many live objects of a
//! kind a project may have is enforced by [`Store::insert_cloud_object_capped`]
//! (the count and the insert share one transaction, see [`crate::limits`]).

use crate::limits::{lock_and_check, CapError, Owned};
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A kind's own fields: a JSON object.
pub type Attrs = serde_json::Map<String, serde_json::Value>;

/// What kind of cloud object a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    SecurityGroup,
    Vpc,
    Subnet,
    Snapshot,
}

impl ObjectKind {
    /// Every kind.
    pub const ALL: [ObjectKind; 4] = [ObjectKind::SecurityGroup, ObjectKind::Vpc, ObjectKind::Subnet, ObjectKind::Snapshot];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::SecurityGroup => "security-group",
            ObjectKind::Vpc => "vpc",
            ObjectKind::Subnet => "subnet",
            ObjectKind::Snapshot => "snapshot",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<ObjectKind> {
        ObjectKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind in words, for messages ("security group").
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::SecurityGroup => "security group",
            ObjectKind::Vpc => "VPC",
            ObjectKind::Subnet => "subnet",
            ObjectKind::Snapshot => "snapshot",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.noun())
    }
}

/// A recorded cloud object.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudObjectRow {
    pub instance: String,
    pub kind: ObjectKind,
    pub cloud_id: String,
    /// The project it belongs to.
    pub project: String,
    /// Who made it.
    pub user: String,
    pub credential_id: String,
    /// The object it lives in or came from (a subnet's or group's VPC, a snapshot's volume).
    pub parent: Option<String>,
    /// The cloud's state name as last seen (`available`, `pending`, ...).
    pub state: String,
    /// The kind's own fields (a JSON object).
    pub attrs: Attrs,
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// What a new record holds.
#[derive(Clone, Debug)]
pub struct NewCloudObject<'a> {
    pub instance: &'a str,
    pub kind: ObjectKind,
    pub cloud_id: &'a str,
    pub project: &'a str,
    pub user: &'a str,
    pub credential_id: &'a str,
    pub parent: Option<&'a str>,
    pub state: &'a str,
    pub attrs: &'a Attrs,
    pub tags: &'a BTreeMap<String, String>,
}

#[derive(sqlx::FromRow)]
struct ObjectDb {
    instance: String,
    kind: String,
    cloud_id: String,
    project: String,
    user_name: String,
    credential_id: String,
    parent: Option<String>,
    state: String,
    attrs: String,
    tags: String,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
}

const COLS: &str =
    "instance, kind, cloud_id, project, user_name, credential_id, parent, state, attrs, tags, created_at, updated_at, ended_at";

fn row(d: ObjectDb) -> Result<CloudObjectRow, StoreError> {
    let kind = ObjectKind::parse(&d.kind).ok_or_else(|| {
        StoreError::Db(sqlx::Error::Decode(format!("cloud object '{}' has the unknown kind '{}'", d.cloud_id, d.kind).into()))
    })?;
    Ok(CloudObjectRow {
        instance: d.instance,
        kind,
        cloud_id: d.cloud_id,
        project: d.project,
        user: d.user_name,
        credential_id: d.credential_id,
        parent: d.parent,
        state: d.state,
        attrs: serde_json::from_str(&d.attrs).unwrap_or_default(),
        tags: serde_json::from_str(&d.tags).unwrap_or_default(),
        created_at: ms_to_time(d.created_at),
        updated_at: ms_to_time(d.updated_at),
        ended_at: d.ended_at.map(ms_to_time),
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

impl Store {
    /// Records a new object, refused when the project has `limit` live
    /// objects of that kind (on every instance) or the object is recorded
    /// already (`Conflict`).
    pub async fn insert_cloud_object_capped(&self, limit: i64, new: &NewCloudObject<'_>) -> Result<CloudObjectRow, CapError> {
        let now = self.clock_ms();
        let mut tx = self.pool().begin().await?;
        lock_and_check(&mut tx, Owned::Objects(new.kind), new.project, limit).await?;
        sqlx::query(
            "INSERT INTO cloud_objects (instance, kind, cloud_id, project, user_name, credential_id, parent, state, attrs, tags, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(new.instance)
        .bind(new.kind.as_str())
        .bind(new.cloud_id)
        .bind(new.project)
        .bind(new.user)
        .bind(new.credential_id)
        .bind(new.parent)
        .bind(new.state)
        .bind(json(new.attrs))
        .bind(json(new.tags))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            e if e.is_unique_violation() => StoreError::Conflict(format!("{} '{}' is already recorded", new.kind, new.cloud_id)),
            e => e,
        })?;
        tx.commit().await?;
        Ok(self
            .cloud_object(new.instance, new.kind, new.cloud_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{} '{}'", new.kind, new.cloud_id)))?)
    }

    /// One record (ended or not).
    pub async fn cloud_object(&self, instance: &str, kind: ObjectKind, cloud_id: &str) -> Result<Option<CloudObjectRow>, StoreError> {
        let r: Option<ObjectDb> =
            sqlx::query_as(&format!("SELECT {COLS} FROM cloud_objects WHERE instance = $1 AND kind = $2 AND cloud_id = $3"))
                .bind(instance)
                .bind(kind.as_str())
                .bind(cloud_id)
                .fetch_optional(self.pool())
                .await?;
        r.map(row).transpose()
    }

    /// A project's live objects of a kind on an instance, oldest first.
    pub async fn cloud_objects(&self, project: &str, instance: &str, kind: ObjectKind) -> Result<Vec<CloudObjectRow>, StoreError> {
        let r: Vec<ObjectDb> = sqlx::query_as(&format!(
            "SELECT {COLS} FROM cloud_objects WHERE project = $1 AND instance = $2 AND kind = $3 AND ended_at IS NULL \
             ORDER BY created_at, cloud_id"
        ))
        .bind(project)
        .bind(instance)
        .bind(kind.as_str())
        .fetch_all(self.pool())
        .await?;
        r.into_iter().map(row).collect()
    }

    /// Every live object a user made, of every kind, on every instance (admins' views of a user).
    pub async fn cloud_objects_of_user(&self, user: &str) -> Result<Vec<CloudObjectRow>, StoreError> {
        let r: Vec<ObjectDb> = sqlx::query_as(&format!(
            "SELECT {COLS} FROM cloud_objects WHERE user_name = $1 AND ended_at IS NULL ORDER BY instance, kind, created_at, cloud_id"
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        r.into_iter().map(row).collect()
    }

    /// Sets a live object's state, and its attributes when given.
    pub async fn update_cloud_object(
        &self,
        instance: &str,
        kind: ObjectKind,
        cloud_id: &str,
        state: &str,
        attrs: Option<&Attrs>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cloud_objects SET state = $4, attrs = COALESCE($5, attrs), updated_at = $6 \
             WHERE instance = $1 AND kind = $2 AND cloud_id = $3 AND ended_at IS NULL",
        )
        .bind(instance)
        .bind(kind.as_str())
        .bind(cloud_id)
        .bind(state)
        .bind(attrs.map(json))
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a live object's tags.
    pub async fn set_cloud_object_tags(
        &self,
        instance: &str,
        kind: ObjectKind,
        cloud_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cloud_objects SET tags = $4, updated_at = $5 WHERE instance = $1 AND kind = $2 AND cloud_id = $3 AND ended_at IS NULL",
        )
        .bind(instance)
        .bind(kind.as_str())
        .bind(cloud_id)
        .bind(json(tags))
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks an object ended with its final state (the row stays). Ending an
    /// ended object changes nothing.
    pub async fn end_cloud_object(&self, instance: &str, kind: ObjectKind, cloud_id: &str, final_state: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE cloud_objects SET state = $4, updated_at = $5, ended_at = $5 \
             WHERE instance = $1 AND kind = $2 AND cloud_id = $3 AND ended_at IS NULL",
        )
        .bind(instance)
        .bind(kind.as_str())
        .bind(cloud_id)
        .bind(final_state)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::store_test;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Attrs {
        v.as_object().cloned().unwrap()
    }

    fn new<'a>(
        kind: ObjectKind,
        id: &'a str,
        project: &'a str,
        attrs: &'a Attrs,
        tags: &'a BTreeMap<String, String>,
    ) -> NewCloudObject<'a> {
        NewCloudObject {
            instance: "sb",
            kind,
            cloud_id: id,
            project,
            user: "alice",
            credential_id: "cred-1",
            parent: Some("vpc-1"),
            state: "available",
            attrs,
            tags,
        }
    }

    store_test!(records_are_kept_per_kind_capped_and_ended, |store: Store| async move {
        let attrs = obj(json!({"cidr": "10.0.1.0/24"}));
        let tags = BTreeMap::from([("Name".to_string(), "web".to_string())]);
        let s = store.insert_cloud_object_capped(2, &new(ObjectKind::Subnet, "subnet-1", "team", &attrs, &tags)).await.unwrap();
        assert_eq!((s.kind, s.parent.as_deref(), s.attrs["cidr"].as_str()), (ObjectKind::Subnet, Some("vpc-1"), Some("10.0.1.0/24")));
        assert_eq!(s.tags, tags);
        // The same id as another kind is another object; the same kind and id is a conflict.
        store.insert_cloud_object_capped(2, &new(ObjectKind::Snapshot, "subnet-1", "team", &attrs, &tags)).await.unwrap();
        assert!(matches!(
            store.insert_cloud_object_capped(9, &new(ObjectKind::Subnet, "subnet-1", "team", &attrs, &tags)).await,
            Err(CapError::Store(StoreError::Conflict(_)))
        ));
        store.insert_cloud_object_capped(2, &new(ObjectKind::Subnet, "subnet-2", "team", &attrs, &tags)).await.unwrap();
        let e = store.insert_cloud_object_capped(2, &new(ObjectKind::Subnet, "subnet-3", "team", &attrs, &tags)).await.unwrap_err();
        assert!(matches!(e, CapError::Full { kind: Owned::Objects(ObjectKind::Subnet), limit: 2, current: 2 }), "{e:?}");
        assert!(store.cloud_object("sb", ObjectKind::Subnet, "subnet-3").await.unwrap().is_none(), "nothing written past the cap");
        // Another project has its own cap.
        store.insert_cloud_object_capped(2, &new(ObjectKind::Subnet, "subnet-3", "other", &attrs, &tags)).await.unwrap();
        assert_eq!(store.cloud_objects("team", "sb", ObjectKind::Subnet).await.unwrap().len(), 2);
        assert_eq!(store.cloud_objects("team", "sb", ObjectKind::Vpc).await.unwrap().len(), 0);
        assert_eq!(store.cloud_objects("team", "sb2", ObjectKind::Subnet).await.unwrap().len(), 0);

        store.update_cloud_object("sb", ObjectKind::Subnet, "subnet-1", "pending", Some(&obj(json!({"cidr": "x"})))).await.unwrap();
        store.update_cloud_object("sb", ObjectKind::Subnet, "subnet-2", "busy", None).await.unwrap();
        let one = store.cloud_object("sb", ObjectKind::Subnet, "subnet-1").await.unwrap().unwrap();
        let two = store.cloud_object("sb", ObjectKind::Subnet, "subnet-2").await.unwrap().unwrap();
        assert_eq!((one.state.as_str(), one.attrs["cidr"].as_str()), ("pending", Some("x")));
        assert_eq!((two.state.as_str(), two.attrs["cidr"].as_str()), ("busy", Some("10.0.1.0/24")), "attributes kept when not given");
        store.set_cloud_object_tags("sb", ObjectKind::Subnet, "subnet-2", &BTreeMap::new()).await.unwrap();
        assert!(store.cloud_object("sb", ObjectKind::Subnet, "subnet-2").await.unwrap().unwrap().tags.is_empty());

        store.end_cloud_object("sb", ObjectKind::Subnet, "subnet-1", "deleted").await.unwrap();
        let ended = store.cloud_object("sb", ObjectKind::Subnet, "subnet-1").await.unwrap().unwrap();
        assert_eq!(ended.state, "deleted");
        assert!(ended.ended_at.is_some());
        // Ended rows are out of listings and of the count, and stay ended.
        store.update_cloud_object("sb", ObjectKind::Subnet, "subnet-1", "available", None).await.unwrap();
        assert_eq!(store.cloud_object("sb", ObjectKind::Subnet, "subnet-1").await.unwrap().unwrap().state, "deleted");
        assert_eq!(store.cloud_objects("team", "sb", ObjectKind::Subnet).await.unwrap().len(), 1);
        store.insert_cloud_object_capped(2, &new(ObjectKind::Subnet, "subnet-4", "team", &attrs, &tags)).await.unwrap();
        let mine: Vec<_> = store.cloud_objects_of_user("alice").await.unwrap().into_iter().map(|r| (r.kind, r.cloud_id)).collect();
        assert_eq!(mine.len(), 4, "{mine:?}");
        assert!(!mine.contains(&(ObjectKind::Subnet, "subnet-1".to_string())));
    });
}
