//! A database as the last binary before projects left it (schema 0021),
//! filled with the rows that binary's store wrote, statement for statement
//! (`git show fc12a3b:crates/store/src/<file>.rs`): two users with VMs
//! (live and terminated), addresses (held and released), volumes (live and
//! deleted), key pairs of one name, a private registered image, a personal
//! credential, a shared credential granted to one of them, an EC2 access
//! key, quota overrides and audit records. Shared by the store's migration
//! test and core's (which makes the cloud objects in the sandbox first and
//! seals the secrets with the broker's master key).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use sqlx::Connection;

/// The schema the fixture is written for: the last migration before projects.
pub const SCHEMA: i64 = 21;

/// What the cloud answered for the objects the rows record.
#[derive(Clone, Debug)]
pub struct Cloud {
    /// alice's running VM on `sb` (the sandbox's own account).
    pub alice_vm: String,
    /// alice's terminated VM on `sb`.
    pub alice_vm_done: String,
    /// alice's VM on `sb2`, launched with her own credential.
    pub alice_vm_own: String,
    /// bob's running VM on `sb`.
    pub bob_vm: String,
    /// bob's VM on `sb2`, launched with the shared credential granted to him.
    pub bob_vm_shared: String,
    /// (allocation id, public ip) of alice's address on `sb`, and of the one
    /// she released.
    pub alice_addr: (String, String),
    pub alice_addr_released: (String, String),
    pub bob_addr: (String, String),
    /// Volume ids on `sb`: alice's live one, her deleted one, bob's.
    pub alice_vol: String,
    pub alice_vol_deleted: String,
    pub bob_vol: String,
    /// The cloud image id alice registered as a private image (on `sb`).
    pub alice_image_id: String,
}

impl Cloud {
    /// Made-up ids, for a test that asks no cloud.
    pub fn fake() -> Self {
        let a = |ip: &str, n: &str| (format!("eipalloc-{n}"), ip.to_string());
        Self {
            alice_vm: "i-0a11ce000000001".into(),
            alice_vm_done: "i-0a11ce000000002".into(),
            alice_vm_own: "i-0a11ce000000003".into(),
            bob_vm: "i-0b0b00000000001".into(),
            bob_vm_shared: "i-0b0b00000000002".into(),
            alice_addr: a("198.51.100.7", "0a11ce01"),
            alice_addr_released: a("198.51.100.8", "0a11ce02"),
            bob_addr: a("198.51.100.9", "0b0b0001"),
            alice_vol: "vol-0a11ce01".into(),
            alice_vol_deleted: "vol-0a11ce02".into(),
            bob_vol: "vol-0b0b0001".into(),
            alice_image_id: "ami-sandbox-debian-12".into(),
        }
    }
}

/// Seals a secret bound to its associated data (the vault's master key in
/// core's test; any bytes in the store's).
pub type Seal<'a> = &'a (dyn Fn(&[u8], &str) -> Vec<u8> + Sync);

/// The associated data the vault bound a credential field to
/// (`master_keys::credential_aad` of that binary).
pub fn aad(scope: &str, owner: &str, instance: &str, field: &str) -> String {
    format!("cloudbroker/v1/credential/{scope}/{owner}/{instance}/{field}")
}

/// The ids of the rows written.
#[derive(Clone, Debug)]
pub struct Legacy {
    pub alice_vm: String,
    pub alice_vm_done: String,
    pub alice_vm_own: String,
    pub bob_vm: String,
    pub bob_vm_shared: String,
    /// alice's personal credential on `sb2`, and the shared one (`team`,
    /// granted to bob) on `sb2`.
    pub alice_credential: String,
    pub shared_credential: String,
    /// alice's EC2 access key and its secret.
    pub access_key_id: String,
    pub access_key_secret: String,
    /// The private image alice registered.
    pub alice_image: String,
    /// The access key ids the sandbox accounts are opened with.
    pub alice_own_account: String,
    pub shared_account: String,
}

/// How many rows of each table the fixture writes (checked again after the
/// migration: nothing lost).
pub const COUNTS: &[(&str, i64)] = &[
    ("users", 3),
    ("vms", 5),
    ("addresses", 3),
    ("volumes", 3),
    ("key_pairs", 3),
    ("images", 2),
    ("image_mappings", 2),
    ("credentials", 2),
    ("access_keys", 1),
    ("quota_overrides", 2),
    ("api_tokens", 1),
];

/// The same rows, counted as the fixture wrote them.
pub const AUDIT_ROWS: i64 = 9;

fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Writes the fixture into the database at `url` (at schema [`SCHEMA`]).
pub async fn fill(url: &str, cloud: &Cloud, seal: Seal<'_>, master_key_id: &str) -> Legacy {
    let mut c = sqlx::AnyConnection::connect(url).await.expect("connect to the 0021 database");
    let t0: i64 = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let q = |sql: &'static str| sqlx::query(sql);

    // identity.rs create_user; the admin `super` is the one `serve` makes on first start.
    for (i, (name, admin)) in [("super", true), ("alice", false), ("bob", false)].into_iter().enumerate() {
        q("INSERT INTO users (name, password_hash, is_admin, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(name)
            .bind("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .bind(i64::from(admin))
            .bind(t0 + i as i64)
            .execute(&mut c)
            .await
            .unwrap();
    }
    // An API token of alice's (identity.rs create_token).
    q("INSERT INTO api_tokens (id, user_name, name, token_hash, created_at, expires_at, parent_id) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(hex32())
        .bind("alice")
        .bind("laptop")
        .bind(hex32())
        .bind(t0)
        .bind(None::<i64>)
        .bind(None::<String>)
        .execute(&mut c)
        .await
        .unwrap();

    // credentials.rs put_credential: alice's own on sb2 (scope user), and the
    // shared `team` on sb2 (scope system, owner = its name).
    let alice_credential = hex32();
    let shared_credential = hex32();
    let alice_own_account = "sandbox-alice".to_string();
    let shared_account = "team-account".to_string();
    for (id, scope, owner, account) in
        [(&alice_credential, "user", "alice", &alice_own_account), (&shared_credential, "system", "team", &shared_account)]
    {
        let hint = format!("****{}", &account[account.len() - 4..]);
        q("INSERT INTO credentials (id, scope, owner, instance, access_key_hint, access_key_sealed, secret_sealed, key_id, status, status_message, checked_at, created_at, updated_at) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11)")
            .bind(id)
            .bind(scope)
            .bind(owner)
            .bind("sb2")
            .bind(hint)
            .bind(seal(account.as_bytes(), &aad(scope, owner, "sb2", "access_key_id")))
            .bind(seal(b"sandbox-secret-not-checked", &aad(scope, owner, "sb2", "secret_access_key")))
            .bind(master_key_id)
            .bind("verified")
            .bind("")
            .bind(t0)
            .execute(&mut c)
            .await
            .unwrap();
    }
    // credentials.rs set_grants: `team` granted to bob only.
    q("INSERT INTO credential_grants (credential_id, user_name) VALUES ($1, $2)")
        .bind(&shared_credential)
        .bind("bob")
        .execute(&mut c)
        .await
        .unwrap();

    // access_keys.rs insert_access_key (the secret sealed bound to the key).
    let access_key_id = "AKIAALICEPERSONALKEY".to_string();
    let access_key_secret = "aliceSecretKey0123456789abcdefghijklmnop".to_string();
    q("INSERT INTO access_keys (access_key_id, user_name, secret_sealed, master_key_id, state, created_at, updated_at, last_used_at, expires_at) \
       VALUES ($1, $2, $3, $4, $5, $6, $6, NULL, $7)")
        .bind(&access_key_id)
        .bind("alice")
        .bind(seal(access_key_secret.as_bytes(), &aad("ec2-access-key", "alice", &access_key_id, "secret_access_key")))
        .bind(master_key_id)
        .bind("active")
        .bind(t0)
        .bind(None::<i64>)
        .execute(&mut c)
        .await
        .unwrap();

    // quota.rs admit_launch_range (lock row, VM rows in `requested`, the
    // audit row), then vms.rs record_cloud_id and set_state.
    let vm = |user: &'static str, instance: &'static str, credential: String, cloud_id: String, end: Option<&'static str>| {
        (user, instance, credential, cloud_id, end, format!("vm-{}", hex32()))
    };
    let vms = vec![
        vm("alice", "sb", "anonymous:alice".into(), cloud.alice_vm.clone(), None),
        vm("alice", "sb", "anonymous:alice".into(), cloud.alice_vm_done.clone(), Some("terminated")),
        vm("alice", "sb2", alice_credential.clone(), cloud.alice_vm_own.clone(), None),
        vm("bob", "sb", "anonymous:bob".into(), cloud.bob_vm.clone(), None),
        vm("bob", "sb2", shared_credential.clone(), cloud.bob_vm_shared.clone(), None),
    ];
    for (n, (user, instance, credential, cloud_id, end, id)) in vms.iter().enumerate() {
        let at = t0 + 1000 + n as i64;
        q("INSERT INTO quota_locks (user_name, instance, version) VALUES ($1, $2, 0) ON CONFLICT (user_name, instance) DO UPDATE SET version = quota_locks.version + 1")
            .bind(*user)
            .bind(*instance)
            .execute(&mut c)
            .await
            .unwrap();
        q("INSERT INTO vms (id, launch_id, launch_index, user_name, instance, credential_id, client_token, name, image, image_id, instance_type, state, created_at, updated_at, tags, key_name) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)")
            .bind(id)
            .bind(hex32())
            .bind(0_i64)
            .bind(*user)
            .bind(*instance)
            .bind(credential)
            .bind(hex32())
            .bind(format!("{user}-{n}"))
            .bind("ubuntu-22.04")
            .bind("ami-sandbox-ubuntu-2204")
            .bind("t2.micro")
            .bind("requested")
            .bind(at)
            .bind(r#"{"team":"legacy"}"#)
            .bind(Some("laptop"))
            .execute(&mut c)
            .await
            .unwrap();
        q("INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(at)
            .bind(*user)
            .bind("vm.launch")
            .bind(id)
            .bind("ok")
            .bind(*instance)
            .execute(&mut c)
            .await
            .unwrap();
        q("UPDATE vms SET cloud_id = $1, state = $2, private_ip = $3, public_ip = $4, updated_at = $5, version = version + 1 \
           WHERE id = $6 AND cloud_id IS NULL AND NOT EXISTS (SELECT 1 FROM vms v2 WHERE v2.instance = vms.instance AND v2.cloud_id = $1)")
        .bind(cloud_id)
        .bind("running")
        .bind(Some(format!("10.0.0.{}", n + 10)))
        .bind(None::<String>)
        .bind(at + 1)
        .bind(id)
        .execute(&mut c)
        .await
        .unwrap();
        if let Some(state) = end {
            q("UPDATE vms SET state = $1, private_ip = $2, public_ip = $3, error = $4, updated_at = $5, version = version + 1 WHERE id = $6 AND version = $7")
                .bind(*state)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(at + 2)
                .bind(id)
                .bind(1_i64)
                .execute(&mut c)
                .await
                .unwrap();
            q("INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(at + 2)
                .bind(*user)
                .bind("vm.terminate")
                .bind(id)
                .bind("ok")
                .bind(*instance)
                .execute(&mut c)
                .await
                .unwrap();
        }
    }

    // resources.rs insert_address / release_address.
    for (user, (alloc, ip), released) in
        [("alice", &cloud.alice_addr, false), ("alice", &cloud.alice_addr_released, true), ("bob", &cloud.bob_addr, false)]
    {
        q("INSERT INTO addresses (instance, allocation_id, user_name, credential_id, public_ip, state, created_at, updated_at) \
           VALUES ($1, $2, $3, $4, $5, 'allocated', $6, $6)")
        .bind("sb")
        .bind(alloc)
        .bind(user)
        .bind(format!("anonymous:{user}"))
        .bind(ip)
        .bind(t0 + 2000)
        .execute(&mut c)
        .await
        .unwrap();
        if released {
            q("UPDATE addresses SET state = 'released', vm_id = NULL, association_id = NULL, private_ip = NULL, updated_at = $3, ended_at = $3 \
               WHERE instance = $1 AND allocation_id = $2")
                .bind("sb")
                .bind(alloc)
                .bind(t0 + 2001)
                .execute(&mut c)
                .await
                .unwrap();
        }
    }

    // resources.rs insert_volume / volume_deleted.
    for (user, vol, deleted) in
        [("alice", &cloud.alice_vol, false), ("alice", &cloud.alice_vol_deleted, true), ("bob", &cloud.bob_vol, false)]
    {
        q("INSERT INTO volumes (instance, volume_id, user_name, credential_id, size_gib, zone, volume_type, state, tags, created_at, updated_at) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)")
            .bind("sb")
            .bind(vol)
            .bind(user)
            .bind(format!("anonymous:{user}"))
            .bind(4_i64)
            .bind("sba")
            .bind(None::<String>)
            .bind("available")
            .bind("{}")
            .bind(t0 + 3000)
            .execute(&mut c)
            .await
            .unwrap();
        if deleted {
            q("UPDATE volumes SET state = 'deleted', vm_id = NULL, device = NULL, attach_state = NULL, updated_at = $3, ended_at = $3 \
               WHERE instance = $1 AND volume_id = $2")
            .bind("sb")
            .bind(vol)
            .bind(t0 + 3001)
            .execute(&mut c)
            .await
            .unwrap();
        }
    }

    // key_pairs.rs insert_key_pair: both users have a `laptop`; alice a `ci` too.
    for (user, name, key) in [
        ("alice", "laptop", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd7bS2eN0E0YV3m0kFb1cyF6y0Ua2S0wC3mQoWg5h9a alice@laptop"),
        ("alice", "ci", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0cB4f1G8xN0S5JtZy6oVb1rA2mQeTqL3wX9dC7uPz alice@ci"),
        ("bob", "laptop", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq2rT8vU1wX3yZ5aB7cD9eF1gH3iJ5kL7mN9oP1qR3s bob@laptop"),
    ] {
        q("INSERT INTO key_pairs (user_name, name, public_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(user)
            .bind(name)
            .bind(key)
            .bind(format!("SHA256:{user}-{name}"))
            .bind(t0 + 4000)
            .execute(&mut c)
            .await
            .unwrap();
        q("INSERT INTO audit_log (at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(t0 + 4000)
            .bind(user)
            .bind("key_pair.create")
            .bind(name)
            .bind("ok")
            .bind("")
            .execute(&mut c)
            .await
            .unwrap();
    }

    // images.rs put_image: a public image of the broker's and alice's
    // private registered one (owner set), each with its mapping on `sb`.
    let alice_image = "alice-debian".to_string();
    for (name, owner, cloud_id) in
        [("broker-ubuntu", None, "ami-sandbox-ubuntu-2204"), (alice_image.as_str(), Some("alice"), cloud.alice_image_id.as_str())]
    {
        q("INSERT INTO images (name, description, os, parent, created_at, updated_at, owner) VALUES ($1, $2, $3, $4, $5, $5, $6)")
            .bind(name)
            .bind("")
            .bind("")
            .bind(None::<String>)
            .bind(t0 + 5000)
            .bind(owner)
            .execute(&mut c)
            .await
            .unwrap();
        q("INSERT INTO image_mappings (image, instance, cloud_image_id, instance_type, security_group) VALUES ($1, $2, $3, $4, $5)")
            .bind(name)
            .bind("sb")
            .bind(cloud_id)
            .bind(None::<String>)
            .bind(None::<String>)
            .execute(&mut c)
            .await
            .unwrap();
    }
    q("INSERT INTO broker_meta (key, value) VALUES ('images_version', '1') \
       ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(broker_meta.value AS BIGINT) + 1 AS TEXT)")
    .execute(&mut c)
    .await
    .unwrap();

    // quota.rs set_quota_override.
    for (user, instance, limit) in [("alice", "sb", 7_i64), ("bob", "sb2", 3_i64)] {
        q("INSERT INTO quota_overrides (user_name, instance, vm_limit) VALUES ($1, $2, $3) ON CONFLICT (user_name, instance) DO UPDATE SET vm_limit = excluded.vm_limit")
            .bind(user)
            .bind(instance)
            .bind(limit)
            .execute(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();

    let ids: Vec<String> = vms.into_iter().map(|v| v.5).collect();
    Legacy {
        alice_vm: ids[0].clone(),
        alice_vm_done: ids[1].clone(),
        alice_vm_own: ids[2].clone(),
        bob_vm: ids[3].clone(),
        bob_vm_shared: ids[4].clone(),
        alice_credential,
        shared_credential,
        access_key_id,
        access_key_secret,
        alice_image,
        alice_own_account,
        shared_account,
    }
}

/// Row counts of `table` in the database at `url`.
pub async fn count(url: &str, table: &str) -> i64 {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}

/// Rows of `table` whose `project` differs from `owner_col` (every row of a
/// migrated table names its owner's personal project).
pub async fn rows_outside_personal_project(url: &str, table: &str, owner_col: &str) -> i64 {
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE project IS NULL OR project <> {owner_col}");
    let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    n
}
