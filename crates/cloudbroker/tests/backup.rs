//! `cloudbroker backup` / `restore` / `migrate --check` on the real binary:
//! a backup taken while launches run restores into a new data directory
//! where every VM, the image and the credential (still opened by the same
//! master key) are there; a restore refuses a running broker and a schema
//! newer than the binary, and so do `serve` and `migrate --check`.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PW: &str = "super-password-backup-1";
const CONF: &str = "cloud.connector.class = sb:sandbox\nsb.boot.delay.ms = 0\nsb.api.latency.ms = 20\n";

fn data_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(d.join("connectors.d")).unwrap();
    std::fs::write(d.join("connectors.d/sb.conf"), CONF).unwrap();
    d
}

fn start(dir: &Path) -> (common::Broker, String) {
    common::serve(dir, &["--data-dir", dir.to_str().unwrap(), "--connectors-dir", "connectors.d"], &[("CLOUDBROKER_ADMIN_PASSWORD", PW)])
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    common::bin().current_dir(dir).args(args).args(["--data-dir", dir.to_str().unwrap()]).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let r: Value = http.post(format!("{base}/api/v1/tokens")).basic_auth("super", Some(PW)).send().await.unwrap().json().await.unwrap();
    r["token"].as_str().unwrap().to_string()
}

async fn launch(http: &reqwest::Client, base: &str, t: &str, count: u32) -> (u16, Value) {
    let r = http
        .post(format!("{base}/api/v1/vms"))
        .bearer_auth(t)
        .json(&json!({"instance": "sb", "image": "img", "count": count}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_restores_vms_images_and_credentials() {
    let root = tempfile::tempdir().unwrap();
    let a = data_dir(root.path(), "a");
    let (mut broker, base) = start(&a);
    let http = reqwest::Client::new();
    let t = token(&http, &base).await;
    let r = http
        .put(format!("{base}/api/v1/users/super/credentials/sb"))
        .bearer_auth(&t)
        .json(&json!({"access_key_id": "AKIABACKUP0000000001", "secret_access_key": "backup-secret-1"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = http
        .post(format!("{base}/api/v1/images"))
        .bearer_auth(&t)
        .json(&json!({"name": "img", "mappings": {"sb": {"image_id": "ami-sandbox-debian-12"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut before = Vec::new();
    for _ in 0..5 {
        let (code, body) = launch(&http, &base, &t, 2).await;
        assert_eq!(code, 201, "{body}");
        before.extend(body["vms"].as_array().unwrap().iter().map(|v| (v["id"].as_str().unwrap().to_string(), v["cloud_id"].clone())));
    }

    // Launches keep going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (http, base, t, stop) = (http.clone(), base.clone(), t.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (code, body) = launch(&http, &base, &t, 3).await;
                assert_eq!(code, 201, "{body}");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let backup = root.path().join("cloudbroker-backup.db");
    let out = {
        let (a, backup) = (a.clone(), backup.clone());
        tokio::task::spawn_blocking(move || cli(&a, &["backup", "--to", backup.to_str().unwrap()])).await.unwrap()
    };
    stop.store(true, Ordering::SeqCst);
    let mut during = 0;
    for l in load {
        during += l.await.unwrap();
    }
    assert!(out.status.success(), "{}", text(&out));
    assert!(during > 0, "launches ran while the backup was taken");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600, "a backup is private");
    let again = cli(&a, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(!again.status.success() && text(&again).contains("never overwrites"), "{}", text(&again));
    assert!(common::stop(&mut broker).success());

    // Restore into a new data directory, with the same master key.
    let b = data_dir(root.path(), "b");
    std::fs::copy(a.join("master.key"), b.join("master.key")).unwrap();
    std::fs::set_permissions(b.join("master.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli(&b, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let check = cli(&b, &["migrate", "--check"]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));

    let (mut broker, base) = start(&b);
    let t = token(&http, &base).await;
    for (id, cloud_id) in &before {
        let r = http.get(format!("{base}/api/v1/vms/{id}")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), 200, "VM {id} is in the restored database");
        let v: Value = r.json().await.unwrap();
        assert_eq!(&v["cloud_id"], cloud_id);
    }
    let r = http.get(format!("{base}/api/v1/images/img")).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), 200, "the image is restored");
    let r: Value =
        http.get(format!("{base}/api/v1/users/super/credentials/sb")).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
    assert!(r.to_string().contains("0001"), "the credential is restored: {r}");
    let (code, body) = launch(&http, &base, &t, 1).await;
    assert_eq!(code, 201, "the restored credential opens with the key: {body}");

    // No restore under a running broker.
    let out = cli(&b, &["restore", "--from", backup.to_str().unwrap(), "--force"]);
    assert!(!out.status.success() && text(&out).contains("running"), "{}", text(&out));
    assert!(common::stop(&mut broker).success());

    // A replaced database is kept.
    let out = cli(&b, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("--force"), "{}", text(&out));
    let out = cli(&b, &["restore", "--from", backup.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(b.join("cloudbroker.db.pre-restore").exists());
}

#[tokio::test]
async fn newer_schemas_are_refused_and_pending_migrations_reported() {
    let root = tempfile::tempdir().unwrap();
    let a = data_dir(root.path(), "a");
    // No database yet: everything is pending, and nothing is created.
    let out = cli(&a, &["migrate", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("pending") && text(&out).contains("0001"), "{}", text(&out));
    assert!(!a.join("cloudbroker.db").exists(), "--check applies nothing");
    assert!(cli(&a, &["migrate"]).status.success());
    assert_eq!(cli(&a, &["migrate", "--check"]).status.code(), Some(0));

    // A database from a newer binary.
    let backup = root.path().join("b.db");
    assert!(cli(&a, &["backup", "--to", backup.to_str().unwrap()]).status.success());
    sqlx::any::install_default_drivers();
    {
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(&format!("sqlite://{}", backup.display())).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let b = data_dir(root.path(), "b");
    let out = cli(&b, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("9999"), "{}", text(&out));
    assert!(!b.join("cloudbroker.db").exists(), "nothing restored");

    std::fs::copy(&backup, b.join("cloudbroker.db")).unwrap();
    let out = cli(&b, &["migrate", "--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    for cmd in [&["migrate"][..], &["serve", "--listen", "127.0.0.1:0"][..]] {
        let out = cli(&b, cmd);
        assert!(!out.status.success() && text(&out).contains("newer"), "{cmd:?}: {}", text(&out));
    }
    let out = cli(&b, &["restore", "--from", "/etc/hostname", "--force"]);
    assert!(!out.status.success() && text(&out).contains("not a SQLite database"), "{}", text(&out));
    let pg = cli(&b, &["backup", "--to", "x.db", "--database-url", "postgres://u@127.0.0.1/db"]);
    assert!(!pg.status.success() && text(&pg).contains("pg_dump"), "{}", text(&pg));
}
