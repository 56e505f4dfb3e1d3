//! Domain types below the store: a typed value bound through the store reads
//! back equal, and a stored value that breaks its type's rules (written by
//! raw SQL, as an old or hand-edited database may hold) is a decode error
//! naming the column, not a panic and not an unchecked value. Runs on SQLite
//! always and on PostgreSQL when CLOUDBROKER_TEST_POSTGRES_URL is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cloudbroker_model::{CredentialId, InstanceName, ProjectName, UserName, VmId, VmStatus};
use cloudbroker_store::testing::TestDb;
use sqlx::Row;

/// The databases to run on: SQLite, and PostgreSQL when configured.
async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await.unwrap()];
    dbs.extend(TestDb::postgres().await.unwrap());
    dbs
}

/// A raw connection pool on a test database (the store keeps its own private).
async fn raw(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

async fn key_pairs_are_owned_by_a_user_name(db: TestDb) {
    let s = &db.store;
    s.create_user("alice", "h", false).await.unwrap();
    let alice = UserName::parse("alice").unwrap();
    let mine = ProjectName::personal(&alice);
    let row = s.insert_key_pair(&mine, &alice, "k1", "ssh-ed25519 AAAA", "SHA256:x").await.unwrap();
    assert_eq!((&row.created_by, &row.project), (&alice, &mine));
    let read = s.key_pair(&mine, "k1").await.unwrap().unwrap();
    assert_eq!(read, row, "what was written reads back equal");
    assert_eq!(s.key_pairs(&mine).await.unwrap(), vec![row]);
    let bob = UserName::parse("bob").unwrap();
    assert!(s.key_pairs(&ProjectName::personal(&bob)).await.unwrap().is_empty());
    assert!(s.delete_key_pair(&mine, "k1").await.unwrap());
    assert!(!s.delete_key_pair(&mine, "k1").await.unwrap());
}

async fn typed_values_round_trip_and_bad_ones_fail_to_decode(db: TestDb) {
    let pool = raw(&db).await;
    sqlx::query("CREATE TABLE typed_probe (n BIGINT NOT NULL, who TEXT NOT NULL, vm TEXT, state TEXT, cred TEXT, instance TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let (who, vm, cred) = (UserName::parse("alice.b-1").unwrap(), VmId::generate(), CredentialId::from_stored("anonymous:alice".into()));
    let instance = InstanceName::parse("ec2-eu-central-1").unwrap();
    sqlx::query("INSERT INTO typed_probe (n, who, vm, state, cred, instance) VALUES (1, $1, $2, $3, $4, $5)")
        .bind(&who)
        .bind(&vm)
        .bind(VmStatus::ShuttingDown)
        .bind(&cred)
        .bind(&instance)
        .execute(&pool)
        .await
        .unwrap();
    let back: (UserName, Option<VmId>, VmStatus, CredentialId, InstanceName) =
        sqlx::query_as("SELECT who, vm, state, cred, instance FROM typed_probe WHERE n = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(back, (who.clone(), Some(vm), VmStatus::ShuttingDown, cred, instance));
    // Bound as itself, a typed value finds its row.
    let n: i64 = sqlx::query_scalar("SELECT n FROM typed_probe WHERE who = $1").bind(&who).fetch_one(&pool).await.unwrap();
    assert_eq!(n, 1);
    // The broker's own name is stored (audit entries by `system`) and reads back.
    sqlx::query("INSERT INTO typed_probe (n, who) VALUES (2, 'system')").execute(&pool).await.unwrap();
    let sys: UserName = sqlx::query_scalar("SELECT who FROM typed_probe WHERE n = 2").fetch_one(&pool).await.unwrap();
    assert_eq!(sys, UserName::system());

    // What breaks the rules: an over-long name, a malformed one, an unknown state.
    let long = "a".repeat(65);
    for (n, sql) in [
        (3, format!("INSERT INTO typed_probe (n, who) VALUES (3, '{long}')")),
        (4, "INSERT INTO typed_probe (n, who) VALUES (4, 'Robert''); DROP')".to_string()),
    ] {
        sqlx::query(&sql).execute(&pool).await.unwrap();
        let row = sqlx::query("SELECT who FROM typed_probe WHERE n = $1").bind(n as i64).fetch_one(&pool).await.unwrap();
        match row.try_get::<UserName, _>("who") {
            Err(sqlx::Error::ColumnDecode { index, source }) => {
                assert!(index.contains("who"), "the column is named: {index}");
                assert!(source.to_string().starts_with("stored UserName is invalid: user name '"), "{source}");
            }
            other => panic!("row {n}: expected a decode error, got {other:?}"),
        }
    }
    sqlx::query("INSERT INTO typed_probe (n, who, vm, state) VALUES (5, 'carol', 'i-123', 'RUNNING')").execute(&pool).await.unwrap();
    let e = sqlx::query_as::<_, (UserName, VmId)>("SELECT who, vm FROM typed_probe WHERE n = 5").fetch_one(&pool).await.unwrap_err();
    assert!(e.to_string().contains("stored VmId is invalid: 'i-123' is not a VM id"), "{e}");
    let row = sqlx::query("SELECT state FROM typed_probe WHERE n = 5").fetch_one(&pool).await.unwrap();
    let e = row.try_get::<VmStatus, _>("state").unwrap_err();
    assert!(matches!(&e, sqlx::Error::ColumnDecode { index, .. } if index.contains("state")), "{e}");
    assert!(e.to_string().contains("unknown state 'RUNNING'"), "{e}");
    sqlx::query("INSERT INTO typed_probe (n, who, instance) VALUES (6, 'dave', 'EC2_eu')").execute(&pool).await.unwrap();
    let e = sqlx::query_scalar::<_, InstanceName>("SELECT instance FROM typed_probe WHERE n = 6").fetch_one(&pool).await.unwrap_err();
    assert!(e.to_string().contains("stored InstanceName is invalid: instance name 'EC2_eu' is not kebab-case"), "{e}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pairs_typed_round_trip() {
    for db in databases().await {
        key_pairs_are_owned_by_a_user_name(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_columns_round_trip_and_refuse_bad_values() {
    for db in databases().await {
        typed_values_round_trip_and_bad_ones_fail_to_decode(db).await;
    }
}
