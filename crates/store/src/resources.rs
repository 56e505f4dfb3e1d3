//! Elastic IP addresses and volumes the broker made for its users: one row
//! per cloud object, unique per (connector instance, cloud id), naming the
//! project it belongs to, the user who made it and the credential it was
//! made with. Rows are never deleted while
//! the object lives; releasing or deleting sets `ended_at` and the final
//! state, and listings leave ended rows out.

use crate::sqlite_read::Bind;
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A recorded Elastic IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressRow {
    pub instance: String,
    pub allocation_id: String,
    /// The project it belongs to.
    pub project: String,
    /// Who allocated it.
    pub user: String,
    pub credential_id: String,
    pub public_ip: String,
    /// `allocated` or `released`.
    pub state: String,
    /// The broker VM it is associated with.
    pub vm_id: Option<String>,
    pub association_id: Option<String>,
    pub private_ip: Option<String>,
    /// EC2's tags on its `eipalloc-…` id.
    pub tags: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A recorded volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRow {
    pub instance: String,
    pub volume_id: String,
    /// The project it belongs to.
    pub project: String,
    /// Who created it.
    pub user: String,
    pub credential_id: String,
    pub size_gib: i64,
    pub zone: String,
    pub volume_type: Option<String>,
    /// EC2's volume state (`creating`, `available`, `in-use`, ..., `deleted`).
    pub state: String,
    /// The broker VM it is attached to, its device and the attachment's state.
    pub vm_id: Option<String>,
    pub device: Option<String>,
    pub attach_state: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// As given at CreateVolume or answered by the cloud (migration 0043;
    /// `None`: not given, or recorded before).
    pub encrypted: Option<bool>,
    pub iops: Option<i64>,
    /// MiB/s.
    pub throughput: Option<i64>,
    /// The snapshot it was made from.
    pub snapshot_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AddressDb {
    instance: String,
    allocation_id: String,
    project: String,
    user_name: String,
    credential_id: String,
    public_ip: String,
    state: String,
    vm_id: Option<String>,
    association_id: Option<String>,
    private_ip: Option<String>,
    tags: String,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
}

pub(crate) const ADDRESS_COLS: &str =
    "instance, allocation_id, project, user_name, credential_id, public_ip, state, vm_id, association_id, private_ip, tags, created_at, updated_at, ended_at";

pub(crate) fn address(d: AddressDb) -> AddressRow {
    AddressRow {
        instance: d.instance,
        allocation_id: d.allocation_id,
        project: d.project,
        user: d.user_name,
        credential_id: d.credential_id,
        public_ip: d.public_ip,
        state: d.state,
        vm_id: d.vm_id,
        association_id: d.association_id,
        private_ip: d.private_ip,
        tags: serde_json::from_str(&d.tags).unwrap_or_default(),
        created_at: ms_to_time(d.created_at),
        updated_at: ms_to_time(d.updated_at),
        ended_at: d.ended_at.map(ms_to_time),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VolumeDb {
    instance: String,
    volume_id: String,
    project: String,
    user_name: String,
    credential_id: String,
    size_gib: i64,
    zone: String,
    volume_type: Option<String>,
    state: String,
    vm_id: Option<String>,
    device: Option<String>,
    attach_state: Option<String>,
    tags: String,
    encrypted: Option<i64>,
    iops: Option<i64>,
    throughput: Option<i64>,
    snapshot_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    ended_at: Option<i64>,
}

pub(crate) const VOLUME_COLS: &str = "instance, volume_id, project, user_name, credential_id, size_gib, zone, volume_type, state, vm_id, device, attach_state, tags, encrypted, iops, throughput, snapshot_id, created_at, updated_at, ended_at";

/// A volume record from a row of `SELECT {VOLUME_COLS}` read directly
/// on SQLite (`sqlite_read`), each column by its name.
fn volume_db_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<VolumeDb> {
    Ok(VolumeDb {
        instance: r.get("instance")?,
        volume_id: r.get("volume_id")?,
        project: r.get("project")?,
        user_name: r.get("user_name")?,
        credential_id: r.get("credential_id")?,
        size_gib: r.get("size_gib")?,
        zone: r.get("zone")?,
        volume_type: r.get("volume_type")?,
        state: r.get("state")?,
        vm_id: r.get("vm_id")?,
        device: r.get("device")?,
        attach_state: r.get("attach_state")?,
        tags: r.get("tags")?,
        encrypted: r.get("encrypted")?,
        iops: r.get("iops")?,
        throughput: r.get("throughput")?,
        snapshot_id: r.get("snapshot_id")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        ended_at: r.get("ended_at")?,
    })
}

pub(crate) fn volume(d: VolumeDb) -> VolumeRow {
    VolumeRow {
        instance: d.instance,
        volume_id: d.volume_id,
        project: d.project,
        user: d.user_name,
        credential_id: d.credential_id,
        size_gib: d.size_gib,
        zone: d.zone,
        volume_type: d.volume_type,
        state: d.state,
        vm_id: d.vm_id,
        device: d.device,
        attach_state: d.attach_state,
        tags: serde_json::from_str(&d.tags).unwrap_or_default(),
        encrypted: d.encrypted.map(|e| e != 0),
        iops: d.iops,
        throughput: d.throughput,
        snapshot_id: d.snapshot_id,
        created_at: ms_to_time(d.created_at),
        updated_at: ms_to_time(d.updated_at),
        ended_at: d.ended_at.map(ms_to_time),
    }
}

fn duplicate(what: &'static str, id: &str) -> impl Fn(sqlx::Error) -> StoreError {
    let id = id.to_string();
    move |e| match StoreError::from(e) {
        e if e.is_unique_violation() => StoreError::Conflict(format!("{what} '{id}' is already recorded")),
        e => e,
    }
}

/// Inserts an address row through `db` (the pool, or a transaction: [`crate::limits`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_address_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    instance: &str,
    allocation_id: &str,
    project: &str,
    user: &str,
    credential_id: &str,
    public_ip: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO addresses (instance, allocation_id, project, user_name, credential_id, public_ip, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'allocated', $7, $7)",
    )
    .bind(instance)
    .bind(allocation_id)
    .bind(project)
    .bind(user)
    .bind(credential_id)
    .bind(public_ip)
    .bind(now)
    .execute(db)
    .await
    .map_err(duplicate("address", allocation_id))?;
    Ok(())
}

/// A volume's options as recorded (see [`Store::set_volume_options`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeOptionsRow {
    pub encrypted: Option<bool>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub snapshot_id: Option<String>,
}

/// A volume row to insert.
pub(crate) struct NewVolume<'a> {
    pub instance: &'a str,
    pub volume_id: &'a str,
    pub project: &'a str,
    pub user: &'a str,
    pub credential_id: &'a str,
    pub size_gib: i64,
    pub zone: &'a str,
    pub volume_type: Option<&'a str>,
    pub state: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

/// Inserts a volume row through `db` (the pool, or a transaction: [`crate::limits`]).
pub(crate) async fn insert_volume_on<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    v: &NewVolume<'_>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO volumes (instance, volume_id, project, user_name, credential_id, size_gib, zone, volume_type, state, tags, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
    )
    .bind(v.instance)
    .bind(v.volume_id)
    .bind(v.project)
    .bind(v.user)
    .bind(v.credential_id)
    .bind(v.size_gib)
    .bind(v.zone)
    .bind(v.volume_type)
    .bind(v.state)
    .bind(serde_json::to_string(v.tags).unwrap_or_else(|_| "{}".into()))
    .bind(now)
    .execute(db)
    .await
    .map_err(duplicate("volume", v.volume_id))?;
    Ok(())
}

impl Store {
    /// Records a new address (allocated, not associated) in `user`'s
    /// personal project (the services use
    /// [`Store::insert_address_capped`], which names the project).
    pub async fn insert_address(
        &self,
        instance: &str,
        allocation_id: &str,
        user: &str,
        credential_id: &str,
        public_ip: &str,
    ) -> Result<AddressRow, StoreError> {
        insert_address_on(self.pool(), instance, allocation_id, user, user, credential_id, public_ip, self.clock_ms()).await?;
        self.address(instance, allocation_id).await?.ok_or_else(|| StoreError::NotFound(format!("address '{allocation_id}'")))
    }

    /// One address record (ended or not).
    pub async fn address(&self, instance: &str, allocation_id: &str) -> Result<Option<AddressRow>, StoreError> {
        let r: Option<AddressDb> =
            sqlx::query_as(&format!("SELECT {ADDRESS_COLS} FROM addresses WHERE instance = $1 AND allocation_id = $2"))
                .bind(instance)
                .bind(allocation_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(r.map(address))
    }

    /// A project's live addresses on an instance, oldest first.
    pub async fn addresses(&self, project: &str, instance: &str) -> Result<Vec<AddressRow>, StoreError> {
        let r: Vec<AddressDb> = sqlx::query_as(&format!(
            "SELECT {ADDRESS_COLS} FROM addresses WHERE project = $1 AND instance = $2 AND ended_at IS NULL ORDER BY created_at, allocation_id"
        ))
        .bind(project)
        .bind(instance)
        .fetch_all(self.pool())
        .await?;
        Ok(r.into_iter().map(address).collect())
    }

    /// The live address associated with a VM, if any.
    pub async fn address_of_vm(&self, instance: &str, vm_id: &str) -> Result<Option<AddressRow>, StoreError> {
        let r: Option<AddressDb> = sqlx::query_as(&format!(
            "SELECT {ADDRESS_COLS} FROM addresses WHERE instance = $1 AND vm_id = $2 AND ended_at IS NULL ORDER BY allocation_id LIMIT 1"
        ))
        .bind(instance)
        .bind(vm_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(r.map(address))
    }

    /// Sets (or clears, with `None`s) an address's association.
    pub async fn set_address_association(
        &self,
        instance: &str,
        allocation_id: &str,
        vm_id: Option<&str>,
        association_id: Option<&str>,
        private_ip: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE addresses SET vm_id = $3, association_id = $4, private_ip = $5, updated_at = $6 \
             WHERE instance = $1 AND allocation_id = $2",
        )
        .bind(instance)
        .bind(allocation_id)
        .bind(vm_id)
        .bind(association_id)
        .bind(private_ip)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks an address released (the row stays, ended).
    pub async fn end_address(&self, instance: &str, allocation_id: &str) -> Result<(), StoreError> {
        let now = self.clock_ms();
        sqlx::query(
            "UPDATE addresses SET state = 'released', vm_id = NULL, association_id = NULL, private_ip = NULL, updated_at = $3, ended_at = $3 \
             WHERE instance = $1 AND allocation_id = $2",
        )
        .bind(instance)
        .bind(allocation_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a new volume in `user`'s personal project (the services use
    /// [`Store::insert_volume_capped`], which names the project).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_volume(
        &self,
        instance: &str,
        volume_id: &str,
        user: &str,
        credential_id: &str,
        size_gib: i64,
        zone: &str,
        volume_type: Option<&str>,
        state: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<VolumeRow, StoreError> {
        let new = NewVolume { instance, volume_id, project: user, user, credential_id, size_gib, zone, volume_type, state, tags };
        insert_volume_on(self.pool(), &new, self.clock_ms()).await?;
        self.volume(instance, volume_id).await?.ok_or_else(|| StoreError::NotFound(format!("volume '{volume_id}'")))
    }

    /// One volume record (ended or not).
    pub async fn volume(&self, instance: &str, volume_id: &str) -> Result<Option<VolumeRow>, StoreError> {
        let r: Option<VolumeDb> = sqlx::query_as(&format!("SELECT {VOLUME_COLS} FROM volumes WHERE instance = $1 AND volume_id = $2"))
            .bind(instance)
            .bind(volume_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.map(volume))
    }

    /// A project's live volumes on an instance, oldest first.
    pub async fn volumes(&self, project: &str, instance: &str) -> Result<Vec<VolumeRow>, StoreError> {
        let sql = format!(
            "SELECT {VOLUME_COLS} FROM volumes WHERE project = $1 AND instance = $2 AND ended_at IS NULL ORDER BY created_at, volume_id"
        );
        // Read directly, as VM records are (every page of DescribeInstances
        // reads these): `sqlite_read`, `pg_read`; the pool's path otherwise,
        // or if that failed.
        let binds = [Bind::Text(project), Bind::Text(instance)];
        if let Some(reader) = self.sqlite_reader() {
            if let Some(rows) = reader.rows(&sql, &binds, 0, volume_db_of) {
                return Ok(rows.into_iter().map(volume).collect());
            }
        } else if let Some(reader) = self.pg_reader() {
            if let Some(rows) = reader.rows_with(&sql, &binds, 0, |r| <VolumeDb as sqlx::FromRow<_>>::from_row(r)).await {
                return Ok(rows.into_iter().map(volume).collect());
            }
        }
        let r: Vec<VolumeDb> = sqlx::query_as(&sql).bind(project).bind(instance).fetch_all(self.pool()).await?;
        Ok(r.into_iter().map(volume).collect())
    }

    /// Records a volume's state and attachment (all `None`: not attached).
    pub async fn set_volume_state(
        &self,
        instance: &str,
        volume_id: &str,
        state: &str,
        vm_id: Option<&str>,
        device: Option<&str>,
        attach_state: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE volumes SET state = $3, vm_id = $4, device = $5, attach_state = $6, updated_at = $7 \
             WHERE instance = $1 AND volume_id = $2",
        )
        .bind(instance)
        .bind(volume_id)
        .bind(state)
        .bind(vm_id)
        .bind(device)
        .bind(attach_state)
        .bind(self.clock_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces an address's tags.
    pub async fn set_address_tags(&self, instance: &str, allocation_id: &str, tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
        sqlx::query("UPDATE addresses SET tags = $3, updated_at = $4 WHERE instance = $1 AND allocation_id = $2")
            .bind(instance)
            .bind(allocation_id)
            .bind(serde_json::to_string(tags).unwrap_or_else(|_| "{}".into()))
            .bind(self.clock_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces a volume's tags.
    pub async fn set_volume_tags(&self, instance: &str, volume_id: &str, tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
        sqlx::query("UPDATE volumes SET tags = $3, updated_at = $4 WHERE instance = $1 AND volume_id = $2")
            .bind(instance)
            .bind(volume_id)
            .bind(serde_json::to_string(tags).unwrap_or_else(|_| "{}".into()))
            .bind(self.clock_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a volume's options (encryption, IOPS, throughput, the
    /// snapshot it was made from), as given at its creation or answered by
    /// the cloud; `None` leaves a field as recorded.
    pub async fn set_volume_options(&self, instance: &str, volume_id: &str, options: &VolumeOptionsRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE volumes SET encrypted = COALESCE($3, encrypted), iops = COALESCE($4, iops), \
             throughput = COALESCE($5, throughput), snapshot_id = COALESCE($6, snapshot_id) WHERE instance = $1 AND volume_id = $2",
        )
        .bind(instance)
        .bind(volume_id)
        .bind(options.encrypted.map(i64::from))
        .bind(options.iops)
        .bind(options.throughput)
        .bind(options.snapshot_id.as_deref())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a volume deleted (the row stays, ended).
    pub async fn end_volume(&self, instance: &str, volume_id: &str) -> Result<(), StoreError> {
        let now = self.clock_ms();
        sqlx::query(
            "UPDATE volumes SET state = 'deleted', vm_id = NULL, device = NULL, attach_state = NULL, updated_at = $3, ended_at = $3 \
             WHERE instance = $1 AND volume_id = $2",
        )
        .bind(instance)
        .bind(volume_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::VolumeOptionsRow;
    use crate::store_test;
    use crate::Store;
    use std::collections::BTreeMap;

    store_test!(addresses_and_volumes_are_owned_and_end, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        store.create_user("bob", "h", false).await.unwrap();
        let a = store.insert_address("sb", "eipalloc-1", "alice", "cred-1", "198.51.100.1").await.unwrap();
        assert_eq!((a.state.as_str(), a.vm_id.as_deref(), a.ended_at), ("allocated", None, None));
        assert_eq!((a.project.as_str(), a.user.as_str()), ("alice", "alice"), "the user's personal project");
        // The same cloud id twice on one instance is a conflict; on another instance it is another object.
        assert!(matches!(
            store.insert_address("sb", "eipalloc-1", "bob", "cred-2", "198.51.100.1").await,
            Err(crate::StoreError::Conflict(_))
        ));
        store.insert_address("sb2", "eipalloc-1", "bob", "cred-2", "198.51.100.9").await.unwrap();
        store.set_address_association("sb", "eipalloc-1", Some("vm-1"), Some("eipassoc-1"), Some("10.0.0.1")).await.unwrap();
        assert_eq!(store.address_of_vm("sb", "vm-1").await.unwrap().unwrap().association_id.as_deref(), Some("eipassoc-1"));
        assert_eq!(store.addresses("alice", "sb").await.unwrap().len(), 1);
        assert!(store.addresses("bob", "sb").await.unwrap().is_empty());
        store.end_address("sb", "eipalloc-1").await.unwrap();
        assert!(store.addresses("alice", "sb").await.unwrap().is_empty());
        let ended = store.address("sb", "eipalloc-1").await.unwrap().unwrap();
        assert_eq!((ended.state.as_str(), ended.vm_id, ended.ended_at.is_some()), ("released", None, true));

        let tags: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let v = store.insert_volume("sb", "vol-1", "alice", "cred-1", 8, "sba", Some("gp3"), "creating", &tags).await.unwrap();
        assert_eq!((v.size_gib, v.tags.get("k").map(String::as_str)), (8, Some("v")));
        store.set_volume_state("sb", "vol-1", "in-use", Some("vm-1"), Some("/dev/sdf"), Some("attached")).await.unwrap();
        store.set_volume_tags("sb", "vol-1", &BTreeMap::new()).await.unwrap();
        let v = store.volumes("alice", "sb").await.unwrap().remove(0);
        assert_eq!((v.state.as_str(), v.device.as_deref(), v.tags.len()), ("in-use", Some("/dev/sdf"), 0));
        // Options: none recorded at first; then as given, a `None` leaving a field as it is.
        assert_eq!((v.encrypted, v.iops, v.throughput, v.snapshot_id.as_deref()), (None, None, None, None));
        let given = VolumeOptionsRow { encrypted: Some(true), iops: Some(4000), throughput: Some(250), snapshot_id: Some("snap-1".into()) };
        store.set_volume_options("sb", "vol-1", &given).await.unwrap();
        store.set_volume_options("sb", "vol-1", &VolumeOptionsRow { iops: Some(5000), ..VolumeOptionsRow::default() }).await.unwrap();
        let v = store.volume("sb", "vol-1").await.unwrap().unwrap();
        assert_eq!((v.encrypted, v.iops, v.throughput, v.snapshot_id.as_deref()), (Some(true), Some(5000), Some(250), Some("snap-1")));
        store.end_volume("sb", "vol-1").await.unwrap();
        assert!(store.volumes("alice", "sb").await.unwrap().is_empty());
        assert_eq!(store.volume("sb", "vol-1").await.unwrap().unwrap().state, "deleted");
    });

    store_test!(rows_belong_to_a_project_and_list_by_it, |store: Store| async move {
        store.create_user("alice", "h", false).await.unwrap();
        store.create_user("bob", "h", false).await.unwrap();
        let a = store.insert_address_capped(9, "sb", "eipalloc-1", "team-a", "alice", "cred-1", "198.51.100.1").await.unwrap();
        assert_eq!((a.project.as_str(), a.user.as_str()), ("team-a", "alice"));
        store.insert_address_capped(9, "sb", "eipalloc-2", "team-a", "bob", "cred-2", "198.51.100.2").await.unwrap();
        store.insert_address_capped(9, "sb", "eipalloc-3", "bob", "bob", "cred-2", "198.51.100.3").await.unwrap();
        let ids = |rows: Vec<crate::resources::AddressRow>| rows.into_iter().map(|r| r.allocation_id).collect::<Vec<_>>();
        assert_eq!(ids(store.addresses("team-a", "sb").await.unwrap()), ["eipalloc-1", "eipalloc-2"]);
        assert_eq!(ids(store.addresses("bob", "sb").await.unwrap()), ["eipalloc-3"]);
        assert!(store.addresses("alice", "sb").await.unwrap().is_empty());

        let tags = BTreeMap::new();
        let v = store.insert_volume_capped(9, "sb", "vol-1", "team-a", "bob", "cred-2", 8, "sba", None, "creating", &tags).await.unwrap();
        assert_eq!((v.project.as_str(), v.user.as_str()), ("team-a", "bob"));
        assert_eq!(store.volumes("team-a", "sb").await.unwrap().len(), 1);
        assert!(store.volumes("bob", "sb").await.unwrap().is_empty());
        assert_eq!(store.volume("sb", "vol-1").await.unwrap().unwrap().project, "team-a");
    });
}
