//! VM records. Each names the project it belongs to (whose members see it;
//! lists filter on it, indexed like the user) and the user who launched it.
//!
//! Every write to a record raises its `version`. A write of what the cloud
//! reported ([`Store::observe_vm`]) is conditional on the version read before
//! the cloud was asked, so an action's write, or another replica's, made
//! while the cloud was being listed is never overwritten by the older report.
//! Every write of a state sets `state_since` (migration 0027): the cloud's
//! time from an observation, NULL from anything else, never left stale.
//!
//! Records come back typed: ids the store wrote are trusted as stored; the
//! state and the connector instance are parsed (a bad one is a decode error).

use crate::sqlite_read::Bind;
use crate::{ms_to_time, Store, StoreError};
use chrono::{DateTime, Utc};
use cloudbroker_model::{
    ClientToken, CredentialId, InstanceName, LaunchId, Lease, LeaseAction, ProjectName, Tags, UserName, VmId, VmStatus,
};
use serde::Serialize;

/// A VM as the broker records it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VmRow {
    /// Trusted as stored (the store wrote it): not re-parsed on read.
    pub id: VmId,
    pub launch_id: LaunchId,
    pub launch_index: i64,
    /// Who launched it.
    pub user: UserName,
    /// The project it belongs to (whose members see and act on it).
    pub project: ProjectName,
    /// Parsed on read, as `state`.
    pub instance: InstanceName,
    #[serde(skip)]
    pub credential_id: CredentialId,
    pub client_token: ClientToken,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub instance_type: String,
    /// Parsed on read: a stored state that is no [`VmStatus`] is a decode error.
    pub state: VmStatus,
    pub cloud_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub error: Option<String>,
    pub tags: Tags,
    /// The user's key pair it was launched with (EC2's `KeyName`).
    pub key_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every write: what [`Store::observe_vm`] compares.
    #[serde(skip)]
    pub version: i64,
    /// Its lease, if it has one.
    pub lease: Option<Lease>,
}

/// A VM record as the database writes it; also read from a JSON array in
/// column order (see [`Store::vm_rows`]).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct VmDb {
    id: String,
    launch_id: String,
    launch_index: i64,
    user_name: String,
    instance: String,
    credential_id: String,
    client_token: String,
    name: String,
    image: String,
    image_id: String,
    instance_type: String,
    state: String,
    cloud_id: Option<String>,
    private_ip: Option<String>,
    public_ip: Option<String>,
    error: Option<String>,
    tags: String,
    key_name: Option<String>,
    created_at: i64,
    updated_at: i64,
    version: i64,
    project: String,
    lease_expires_at: Option<i64>,
    lease_action: Option<String>,
    lease_warned_at: Option<i64>,
    lease_done_at: Option<i64>,
    lease_note: Option<String>,
}

pub(crate) type VmTuple = VmDb;

/// `COLS` as the database's JSON array constructor's arguments.
const JSON_COLS: &str = "id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, cloud_id, private_ip, public_ip, error, tags, key_name, created_at, updated_at, version, project, lease_expires_at, lease_action, lease_warned_at, lease_done_at, lease_note";

pub(crate) const COLS: &str = "id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, cloud_id, private_ip, public_ip, error, tags, key_name, created_at, updated_at, version, project, lease_expires_at, lease_action, lease_warned_at, lease_done_at, lease_note";

pub(crate) fn vm(t: VmDb) -> Result<VmRow, StoreError> {
    let state = VmStatus::parse(&t.state)
        .map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM {}: column state: {}", t.id, e.message).into())))?;
    let instance = InstanceName::parse(&t.instance)
        .map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM {}: column instance: {e}", t.id).into())))?;
    let lease = match (t.lease_expires_at, t.lease_action.as_deref()) {
        (Some(at), Some(action)) => Some(Lease {
            expires_at: ms_to_time(at),
            action: LeaseAction::parse(action)
                .map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM {}: column lease_action: {}", t.id, e.message).into())))?,
            warned_at: t.lease_warned_at.map(ms_to_time),
            ended_at: t.lease_done_at.map(ms_to_time),
            note: t.lease_note,
        }),
        _ => None,
    };
    Ok(VmRow {
        id: VmId::from_stored(t.id),
        launch_id: LaunchId::from_stored(t.launch_id),
        launch_index: t.launch_index,
        user: UserName::from_stored(t.user_name),
        project: ProjectName::from_stored(t.project),
        instance,
        credential_id: CredentialId::from_stored(t.credential_id),
        client_token: ClientToken::from_stored(t.client_token),
        name: t.name,
        image: t.image,
        image_id: t.image_id,
        instance_type: t.instance_type,
        state,
        cloud_id: t.cloud_id,
        private_ip: t.private_ip,
        public_ip: t.public_ip,
        error: t.error,
        tags: Tags::from_stored(serde_json::from_str(&t.tags).unwrap_or_default()),
        key_name: t.key_name,
        created_at: ms_to_time(t.created_at),
        updated_at: ms_to_time(t.updated_at),
        version: t.version,
        lease,
    })
}

/// A VM record from a row of `SELECT {COLS}` read directly (`sqlite_read`).
fn vm_db_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<VmDb> {
    Ok(VmDb {
        id: r.get(0)?,
        launch_id: r.get(1)?,
        launch_index: r.get(2)?,
        user_name: r.get(3)?,
        instance: r.get(4)?,
        credential_id: r.get(5)?,
        client_token: r.get(6)?,
        name: r.get(7)?,
        image: r.get(8)?,
        image_id: r.get(9)?,
        instance_type: r.get(10)?,
        state: r.get(11)?,
        cloud_id: r.get(12)?,
        private_ip: r.get(13)?,
        public_ip: r.get(14)?,
        error: r.get(15)?,
        tags: r.get(16)?,
        key_name: r.get(17)?,
        created_at: r.get(18)?,
        updated_at: r.get(19)?,
        version: r.get(20)?,
        project: r.get(21)?,
        lease_expires_at: r.get(22)?,
        lease_action: r.get(23)?,
        lease_warned_at: r.get(24)?,
        lease_done_at: r.get(25)?,
        lease_note: r.get(26)?,
    })
}

/// A VM record from a row of `SELECT {COLS}` read directly on PostgreSQL
/// (`pg_read`): by column position, not by name.
fn vm_db_of_pg(r: &sqlx::postgres::PgRow) -> Result<VmDb, sqlx::Error> {
    use sqlx::Row;
    Ok(VmDb {
        id: r.try_get(0)?,
        launch_id: r.try_get(1)?,
        launch_index: r.try_get(2)?,
        user_name: r.try_get(3)?,
        instance: r.try_get(4)?,
        credential_id: r.try_get(5)?,
        client_token: r.try_get(6)?,
        name: r.try_get(7)?,
        image: r.try_get(8)?,
        image_id: r.try_get(9)?,
        instance_type: r.try_get(10)?,
        state: r.try_get(11)?,
        cloud_id: r.try_get(12)?,
        private_ip: r.try_get(13)?,
        public_ip: r.try_get(14)?,
        error: r.try_get(15)?,
        tags: r.try_get(16)?,
        key_name: r.try_get(17)?,
        created_at: r.try_get(18)?,
        updated_at: r.try_get(19)?,
        version: r.try_get(20)?,
        project: r.try_get(21)?,
        lease_expires_at: r.try_get(22)?,
        lease_action: r.try_get(23)?,
        lease_warned_at: r.try_get(24)?,
        lease_done_at: r.try_get(25)?,
        lease_note: r.try_get(26)?,
    })
}

/// The rows of a JSON array of VM records in [`JSON_COLS`] order (`None`:
/// the aggregate over no rows).
fn vm_rows(json: Option<String>, order: Order) -> Result<Vec<VmRow>, StoreError> {
    let Some(json) = json else { return Ok(Vec::new()) };
    let mut rows: Vec<VmDb> = serde_json::from_str(&json)
        .map_err(|e| StoreError::Db(sqlx::Error::Decode(format!("VM records aggregated as JSON: {e}").into())))?;
    // The aggregate keeps its input's order in practice, which SQL does not
    // promise: sorted here (a stable sort of sorted rows is one pass).
    sort_rows(&mut rows, order);
    rows.into_iter().map(vm).collect()
}

/// Rows in `order`, their keys compared byte by byte (as keyset pages
/// compare them), whatever the database's collation sorted them by.
fn sort_rows(rows: &mut [VmDb], order: Order) {
    match order {
        Order::Oldest => {
            rows.sort_by(|a, b| (a.created_at, &a.launch_id, a.launch_index).cmp(&(b.created_at, &b.launch_id, b.launch_index)))
        }
        Order::Newest => rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id))),
    }
}

/// The orders lists of VMs come in.
#[derive(Clone, Copy)]
enum Order {
    /// Creation time, then launch and index: a launch's VMs together.
    Oldest,
    /// Newest first (creation time, then id, both descending): pages.
    Newest,
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Order::Oldest => "created_at, launch_id, launch_index",
            Order::Newest => "created_at DESC, id DESC",
        }
    }
}

/// A write of the broker's own act on one VM ([`Store::update_vm`]): the
/// state always; the cloud id only when given (a known one is kept); the
/// addresses and the error as given (`None` clears them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmUpdate<'a> {
    pub id: &'a VmId,
    pub state: VmStatus,
    pub cloud_id: Option<&'a str>,
    pub private_ip: Option<&'a str>,
    pub public_ip: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl<'a> VmUpdate<'a> {
    /// Sets `state`, keeps the cloud id, clears the addresses and the error;
    /// name other fields with `VmUpdate { .., ..VmUpdate::state(id, state) }`.
    pub fn state(id: &'a VmId, state: VmStatus) -> Self {
        Self { id, state, cloud_id: None, private_ip: None, public_ip: None, error: None }
    }
}

/// Filters for listing VMs.
#[derive(Clone, Debug, Default)]
pub struct VmFilter {
    pub user: Option<String>,
    /// Only this project's VMs.
    pub project: Option<String>,
    pub instance: Option<String>,
    pub state: Option<String>,
    pub name: Option<String>,
    pub launch_id: Option<String>,
    pub client_token: Option<String>,
    /// A tag that must be present with this value.
    pub tag: Option<(String, String)>,
    /// Only VMs that are live, or ended (terminated, failed) at or after this
    /// time (ms): what an EC2 client still sees of its history.
    pub ended_after: Option<i64>,
}

impl Store {
    /// `inner` (a `SELECT {COLS} ...`) as one row holding a JSON array of
    /// its rows in `order` (NULL when there are none). A list of VMs then
    /// crosses from the database as one value instead of a row each: the
    /// driver's per-row cost (a message between its worker and the caller,
    /// a conversion per column) was most of what a page of VMs cost.
    /// `inner` must not order its rows unless it limits them (then in `order`).
    fn json_rows(&self, inner: &str, order: Order) -> String {
        let by = order.sql();
        match self.backend() {
            // Ordered in the subquery (an ORDER BY in the aggregate would sort
            // the rows a second time); the caller sorts again (`vm_rows`).
            crate::Backend::Sqlite if inner.contains(" ORDER BY ") => {
                format!("SELECT json_group_array(json_array({JSON_COLS})) FROM ({inner}) AS v")
            }
            crate::Backend::Sqlite => format!("SELECT json_group_array(json_array({JSON_COLS})) FROM ({inner} ORDER BY {by}) AS v"),
            crate::Backend::Postgres => {
                format!("SELECT json_agg(json_build_array({JSON_COLS}) ORDER BY {by})::text FROM ({inner}) AS v")
            }
        }
    }

    /// The VMs `filter_sql` (conditions on `vms` with `binds` as $1..)
    /// selects, oldest first (for the metering queries of `metering.rs`).
    pub(crate) async fn vms_where(
        &self,
        conn: &mut sqlx::AnyConnection,
        filter_sql: &str,
        binds: &[crate::metering::Bind],
    ) -> Result<Vec<VmRow>, StoreError> {
        let sql = self.json_rows(&format!("SELECT {COLS} FROM vms WHERE {filter_sql}"), Order::Oldest);
        let mut q = sqlx::query_as::<_, (Option<String>,)>(&sql);
        for b in binds {
            q = match b {
                crate::metering::Bind::Text(s) => q.bind(s.clone()),
                crate::metering::Bind::Int(i) => q.bind(*i),
            };
        }
        vm_rows(q.fetch_one(&mut *conn).await?.0, Order::Oldest)
    }

    /// A VM by broker id.
    pub async fn get_vm(&self, id: &VmId) -> Result<Option<VmRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM vms WHERE id = $1");
        if let Some(rows) = self.sqlite_reader().and_then(|r| r.rows(&sql, &[Bind::Text(id.as_str())], 1, vm_db_of)) {
            return rows.into_iter().next().map(vm).transpose();
        }
        if let Some(reader) = self.pg_reader() {
            if let Some(rows) = reader.rows_with(&sql, &[Bind::Text(id.as_str())], 1, vm_db_of_pg).await {
                return rows.into_iter().next().map(vm).transpose();
            }
        }
        let r: Option<VmTuple> = sqlx::query_as(&sql).bind(id).fetch_optional(self.pool()).await?;
        r.map(vm).transpose()
    }

    /// VMs matching a filter, oldest first.
    pub async fn list_vms(&self, f: &VmFilter) -> Result<Vec<VmRow>, StoreError> {
        let mut sql = format!("SELECT {COLS} FROM vms WHERE 1 = 1");
        let mut binds: Vec<&str> = Vec::new();
        for (col, v) in [
            ("user_name", &f.user),
            ("project", &f.project),
            ("instance", &f.instance),
            ("state", &f.state),
            ("name", &f.name),
            ("launch_id", &f.launch_id),
            ("client_token", &f.client_token),
        ] {
            if let Some(v) = v {
                binds.push(v);
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        let sql = self.json_rows(&sql, Order::Oldest);
        let mut q = sqlx::query_as::<_, (Option<String>,)>(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = vm_rows(q.fetch_one(self.pool()).await?.0, Order::Oldest)?.into_iter();
        Ok(match &f.tag {
            Some((k, v)) => rows.filter(|r| r.tags.get(k) == Some(v.as_str())).collect(),
            None => rows.collect(),
        })
    }

    /// How many VMs are in each of the given states, per connector instance:
    /// (instance, state, count). Counted on the (state, instance) index alone
    /// (unlike [`Store::vm_counts`], which groups by user too).
    pub async fn vm_counts_by_instance(&self, states: &[VmStatus]) -> Result<Vec<(String, String, i64)>, StoreError> {
        let list = (1..=states.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT instance, state, COUNT(*) FROM vms WHERE state IN ({list}) GROUP BY instance, state");
        let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql);
        for s in states {
            q = q.bind(*s);
        }
        Ok(q.fetch_all(self.pool()).await?)
    }

    /// VMs in the given states (reconciliation passes the live ones).
    pub async fn vms_in_states(&self, states: &[VmStatus]) -> Result<Vec<VmRow>, StoreError> {
        let list = (1..=states.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let sql = self.json_rows(&format!("SELECT {COLS} FROM vms WHERE state IN ({list})"), Order::Oldest);
        let mut q = sqlx::query_as::<_, (Option<String>,)>(&sql);
        for s in states {
            q = q.bind(*s);
        }
        vm_rows(q.fetch_one(self.pool()).await?.0, Order::Oldest)
    }

    /// One page of VMs matching a filter, newest first (by creation time,
    /// then id), starting after `after` (the previous page's last item).
    /// Costs what it returns: the filter and the keyset use indexed columns.
    pub async fn page_vms(&self, f: &VmFilter, after: Option<(i64, &VmId)>, limit: i64) -> Result<Vec<VmRow>, StoreError> {
        let mut sql = format!("SELECT {COLS} FROM vms WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        for (col, v) in [
            ("user_name", &f.user),
            ("project", &f.project),
            ("instance", &f.instance),
            ("state", &f.state),
            ("name", &f.name),
            ("launch_id", &f.launch_id),
            ("client_token", &f.client_token),
        ] {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        if let Some((k, val)) = &f.tag {
            binds.push(k.clone());
            binds.push(val.clone());
            let (kp, vp) = (binds.len() - 1, binds.len());
            sql.push_str(&match self.backend() {
                crate::Backend::Sqlite => {
                    format!(" AND EXISTS (SELECT 1 FROM json_each(vms.tags) j WHERE j.key = ${kp} AND j.value = ${vp})")
                }
                crate::Backend::Postgres => {
                    format!(" AND EXISTS (SELECT 1 FROM jsonb_each_text(vms.tags::jsonb) j WHERE j.key = ${kp} AND j.value = ${vp})")
                }
            });
        }
        if let Some(ms) = f.ended_after {
            binds.push(ms.to_string());
            let p = binds.len();
            let cast = match self.backend() {
                crate::Backend::Sqlite => format!("CAST(${p} AS INTEGER)"),
                crate::Backend::Postgres => format!("CAST(${p} AS BIGINT)"),
            };
            sql.push_str(&format!(" AND (state NOT IN ('terminated', 'failed') OR updated_at >= {cast})"));
        }
        let mut after_ms = None;
        if let Some((ms, id)) = after {
            binds.push(id.to_string());
            let idp = binds.len();
            after_ms = Some(ms);
            sql.push_str(&format!(" AND (created_at < ${a} OR (created_at = ${a} AND id < ${idp}))", a = idp + 1));
        }
        let limit_p = binds.len() + if after_ms.is_some() { 2 } else { 1 };
        sql.push_str(&format!(" ORDER BY {} LIMIT ${limit_p}", Order::Newest.sql()));
        let mut direct: Vec<Bind<'_>> = binds.iter().map(|b| Bind::Text(b)).collect();
        direct.extend(after_ms.map(Bind::Int));
        direct.push(Bind::Int(limit));
        // SQLite: the rows straight from the file, on this thread (see `sqlite_read`).
        if let Some(reader) = self.sqlite_reader() {
            let room = usize::try_from(limit).unwrap_or(0).min(1001);
            if let Some(rows) = reader.rows(&sql, &direct, room, vm_db_of) {
                return rows.into_iter().map(vm).collect();
            }
        }
        // PostgreSQL: the rows themselves (binary, decoded by position), one
        // round trip on a connection of this thread's (see `pg_read`); no
        // aggregate, which cost the server more than the page's rows.
        if let Some(reader) = self.pg_reader() {
            let room = usize::try_from(limit).unwrap_or(0).min(1001);
            if let Some(mut rows) = reader.rows_with(&sql, &direct, room, vm_db_of_pg).await {
                sort_rows(&mut rows, Order::Newest);
                return rows.into_iter().map(vm).collect();
            }
        }
        let sql = self.json_rows(&sql, Order::Newest);
        let mut q = sqlx::query_as::<_, (Option<String>,)>(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        if let Some(ms) = after_ms {
            q = q.bind(ms);
        }
        vm_rows(q.bind(limit).fetch_one(self.pool()).await?.0, Order::Newest)
    }

    /// The VM with this cloud id on an instance.
    pub async fn vm_by_cloud_id(&self, instance: &InstanceName, cloud_id: &str) -> Result<Option<VmRow>, StoreError> {
        let r: Option<VmTuple> = sqlx::query_as(&format!("SELECT {COLS} FROM vms WHERE instance = $1 AND cloud_id = $2"))
            .bind(instance)
            .bind(cloud_id)
            .fetch_optional(self.pool())
            .await?;
        r.map(vm).transpose()
    }

    /// Gives a `requested` VM its cloud id, unless the cloud id is already
    /// taken or the VM is no longer `requested` (two replicas adopting at
    /// once). Returns whether it was assigned.
    pub async fn adopt_vm(
        &self,
        id: &VmId,
        cloud_id: &str,
        state: VmStatus,
        private_ip: Option<&str>,
        public_ip: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET cloud_id = $1, state = $2, private_ip = $3, public_ip = $4, updated_at = $5, state_since = NULL, version = version + 1 \
             WHERE id = $6 AND cloud_id IS NULL AND NOT EXISTS (SELECT 1 FROM vms v2 WHERE v2.instance = vms.instance AND v2.cloud_id = $1)",
        )
        .bind(cloud_id)
        .bind(state)
        .bind(private_ip)
        .bind(public_ip)
        .bind(self.clock_ms())
        .bind(id)
        .execute(self.pool())
        .await;
        match r {
            Ok(r) => Ok(r.rows_affected() == 1),
            // Another replica recorded this cloud VM between our check and our write.
            Err(e) => match StoreError::from(e) {
                e if e.is_unique_violation() => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Records a VM found in the cloud that the broker has no row for.
    /// Returns false when the cloud VM is already recorded (by another replica).
    pub async fn insert_adopted_vm(&self, row: &VmRow) -> Result<bool, StoreError> {
        let now = self.clock_ms();
        let r = sqlx::query(
            "INSERT INTO vms (id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, cloud_id, private_ip, public_ip, created_at, updated_at, tags, project) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18)",
        )
        .bind(&row.id)
        .bind(&row.launch_id)
        .bind(row.launch_index)
        .bind(&row.user)
        .bind(&row.instance)
        .bind(&row.credential_id)
        .bind(&row.client_token)
        .bind(&row.name)
        .bind(&row.image)
        .bind(&row.image_id)
        .bind(&row.instance_type)
        .bind(row.state)
        .bind(&row.cloud_id)
        .bind(&row.private_ip)
        .bind(&row.public_ip)
        .bind(now)
        .bind(serde_json::to_string(&row.tags).unwrap_or_else(|_| "{}".into()))
        .bind(&row.project)
        .execute(self.pool())
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) => match StoreError::from(e) {
                e if e.is_unique_violation() => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Sets the state (and, when given, cloud id and addresses) of a VM,
    /// whatever was written since it was read: for the broker's own acts
    /// (an action's answer from the cloud, a launch's failure). What a
    /// listing of the cloud reported goes through [`Store::observe_vm`].
    pub async fn update_vm(&self, u: &VmUpdate<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE vms SET state = $1, cloud_id = COALESCE($2, cloud_id), private_ip = $3, public_ip = $4, error = $5, updated_at = $6, \
             state_since = NULL, version = version + 1 WHERE id = $7",
        )
        .bind(u.state)
        .bind(u.cloud_id)
        .bind(u.private_ip)
        .bind(u.public_ip)
        .bind(u.error)
        .bind(self.clock_ms())
        .bind(u.id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records what the cloud reported of a VM (state, addresses, why it
    /// ended), only if the record is still at `version`: the version read
    /// before the cloud was asked. A write in between (the user's terminate,
    /// another replica's newer report) is newer than this report and is kept.
    /// Returns whether it was written (false: the caller's report is stale,
    /// or the record is gone; the next pass asks the cloud again).
    pub async fn observe_vm(
        &self,
        id: &VmId,
        version: i64,
        state: VmStatus,
        private_ip: Option<&str>,
        public_ip: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.observe_vm_since(id, version, state, (private_ip, public_ip), error, None).await
    }

    /// [`Store::observe_vm`] with the time the cloud says `state` began
    /// (`since`, when it gives one): a state change is then recorded in the
    /// VM's history at that time, never later than now and never earlier
    /// than the VM's previous entry (migration 0027 clamps it), so a stop
    /// the broker learns late is billed until the cloud's time.
    pub async fn observe_vm_since(
        &self,
        id: &VmId,
        version: i64,
        state: VmStatus,
        (private_ip, public_ip): (Option<&str>, Option<&str>),
        error: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE vms SET state = $1, private_ip = $2, public_ip = $3, error = $4, updated_at = $5, state_since = $8, \
             version = version + 1 WHERE id = $6 AND version = $7",
        )
        .bind(state)
        .bind(private_ip)
        .bind(public_ip)
        .bind(error)
        .bind(self.clock_ms())
        .bind(id)
        .bind(version)
        .bind(since.map(|t| t.timestamp_millis()))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Sets only a VM's public address (an Elastic IP associated or let
    /// go), leaving its state as whoever last wrote it left it.
    pub async fn set_vm_public_ip(&self, id: &VmId, public_ip: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE vms SET public_ip = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(public_ip)
            .bind(self.clock_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Renames a VM (its `Name` tag changed).
    pub async fn set_vm_name(&self, id: &VmId, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE vms SET name = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(name)
            .bind(self.clock_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces a VM's user tags.
    pub async fn set_vm_tags(&self, id: &VmId, tags: &std::collections::BTreeMap<String, String>) -> Result<(), StoreError> {
        let json = serde_json::to_string(tags).map_err(|e| StoreError::Config(format!("tags: {e}")))?;
        sqlx::query("UPDATE vms SET tags = $1, updated_at = $2, version = version + 1 WHERE id = $3")
            .bind(json)
            .bind(self.clock_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Store {
    /// VMs whose lease is not yet dealt with and ends at or before
    /// `before_ms`, soonest first, at most `limit` (the Governance page's
    /// "leases due soon"). One range read of the `vms_lease_due` partial
    /// index: the leases already dealt with are not in it.
    pub async fn vm_leases_due(&self, before_ms: i64, limit: i64) -> Result<Vec<VmRow>, StoreError> {
        let rows: Vec<VmTuple> = sqlx::query_as(&format!(
            "SELECT {COLS} FROM vms WHERE lease_expires_at IS NOT NULL AND lease_done_at IS NULL AND lease_expires_at <= $1 \
             ORDER BY lease_expires_at, id LIMIT $2"
        ))
        .bind(before_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(vm).collect()
    }
}
