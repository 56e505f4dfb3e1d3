//! The database goes away under a running broker and comes back: requests
//! fail cleanly (503 with the API's JSON shape and `Retry-After`, EC2's
//! `Unavailable`, `/readyz` 503; never 401, 500 or a hang), nothing is
//! half-written, and service resumes without restarting the broker. The
//! outage is real at the TCP level: the broker reaches PostgreSQL through a
//! loopback relay that drops every open connection and refuses new ones, as
//! a restarting server does; then PostgreSQL itself terminates the
//! broker's sessions (`pg_terminate_backend`), as after a failover.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to `upstream` that can be cut (open connections dropped, new
/// ones closed at once) and restored.
struct Relay {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refused, as by a server that is not listening yet
                    continue;
                }
                let mut gen = cut2.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = gen.changed() => {} // cut: both sockets are dropped
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn vm_count(app: &TestApp, token: &str) -> (u16, usize) {
    let (s, b) = app.call(Method::GET, "/api/v1/vms", token, None).await;
    (s, b["vms"].as_array().map(Vec::len).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_going_away_answers_503_and_service_resumes() {
    let Ok(base) = std::env::var(cloudbroker_store::testing::POSTGRES_ENV) else {
        eprintln!("NOTICE: {} is not set: this PostgreSQL outage test was SKIPPED", cloudbroker_store::testing::POSTGRES_ENV);
        return;
    };
    let direct = cloudbroker_store::testing::TestDb::create_postgres_database(&base).await.unwrap();
    let mut u = url::Url::parse(&direct).unwrap();
    let upstream = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432));
    let relay = Relay::start(upstream).await;
    u.set_port(Some(relay.addr.port())).unwrap();
    u.set_host(Some("127.0.0.1")).unwrap();
    let app = TestApp::start(Some(u.to_string()), tempfile::tempdir().unwrap()).await.unwrap();

    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/alice/access-keys", &alice, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());
    let launch = json!({"instance": "sb", "image": "ubuntu", "count": 1});
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch.clone())).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(vm_count(&app, &alice).await, (200, 1));
    assert_eq!(app.ec2_call(&key, "sb", "Action=DescribeInstances").await.0, 200);

    // The database goes away.
    relay.down();
    let mut calls = Vec::new();
    for i in 0..12 {
        let (http, url, token, launch) = (app.http.clone(), app.url("/api/v1/vms"), alice.clone(), launch.clone());
        calls.push(tokio::spawn(async move {
            let r = if i % 3 == 0 { http.post(&url).json(&launch) } else { http.get(&url) };
            let r = r.bearer_auth(token).timeout(std::time::Duration::from_secs(60)).send().await.expect("no answer: the broker hung");
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    for c in calls {
        let (status, retry, body) = c.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        assert_eq!(retry.as_deref(), Some("5"));
        // No internals (addresses, driver messages) reach the caller.
        assert!(!body.to_string().contains("127.0.0.1") && !body.to_string().contains("os error"), "{body}");
    }
    let (s, body) = app.ec2_call(&key, "sb", "Action=DescribeInstances").await;
    assert!(s == 503 && body.contains("<Code>Unavailable</Code>"), "not an AuthFailure, not a 500: {s} {body}");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // A password sign-in is not counted as a failure while the database is away.
    let r = app.http.post(app.url("/api/v1/tokens")).basic_auth("alice", Some("alice-password")).send().await.unwrap();
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());

    // It comes back: the same broker serves again, and the refused launches left nothing.
    relay.restore();
    let mut back = false;
    for _ in 0..60 {
        if vm_count(&app, &alice).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(back, "the broker did not recover after the database came back");
    assert_eq!(vm_count(&app, &alice).await, (200, 1), "a launch refused during the outage left a record");
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch.clone())).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(app.ec2_call(&key, "sb", "Action=DescribeInstances").await.0, 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);

    // PostgreSQL ends every session of the broker (as after a failover): the
    // next requests find dead connections in the pool and replace them.
    let db = u.path().trim_start_matches('/').to_string();
    sqlx::any::install_default_drivers();
    let mut admin_db = <sqlx::AnyConnection as sqlx::Connection>::connect(&base).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) t",
    )
    .bind(&db)
    .fetch_one(&mut admin_db)
    .await
    .unwrap();
    assert!(killed > 0, "the broker had no session open");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(vm_count(&app, &alice).await);
    }
    assert!(statuses.iter().all(|s| *s == (200, 2)), "{statuses:?}");
    app.stop().await;
}

/// Sets or clears the immutable attribute (`chattr`), which makes a file
/// read-only even for root; `false` when the filesystem or the process
/// cannot (the caller then skips, and says so).
fn immutable(path: &std::path::Path, on: bool) -> bool {
    if !path.exists() {
        return true;
    }
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_sqlite_file_refuses_writes_clearly_and_keeps_what_it_had() {
    let app = TestApp::sqlite().await;
    let admin = app.token("super", SUPER_PW).await;
    let image = json!({"name": "ubuntu", "mappings": {"sb": {"image_id": "ami-sandbox-ubuntu-2204"}}});
    assert_eq!(app.call(Method::POST, "/api/v1/images", &admin, Some(image)).await.0, 201);
    let alice = app.user(&admin, "alice").await;
    let launch = json!({"instance": "sb", "image": "ubuntu"});
    assert_eq!(app.call(Method::POST, "/api/v1/vms", &alice, Some(launch.clone())).await.0, 201);
    let path = app.db_url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
    let files: Vec<std::path::PathBuf> = ["", "-wal", "-shm"].iter().map(|s| std::path::PathBuf::from(format!("{path}{s}"))).collect();
    if !files.iter().all(|f| immutable(f, true)) {
        files.iter().for_each(|f| {
            immutable(f, false);
        });
        eprintln!("NOTICE: chattr +i is not possible here: the read-only SQLite test was SKIPPED");
        return;
    }
    let (s, b) = app.call(Method::POST, "/api/v1/vms", &alice, Some(launch.clone())).await;
    let (s2, b2) = app.call(Method::PUT, "/api/v1/users/alice/ssh-key", &alice, Some(json!({"ssh_public_key": null}))).await;
    files.iter().for_each(|f| assert!(immutable(f, false)));
    assert_eq!((s, b["error"]["code"].as_str()), (503, Some("database_unavailable")), "{b}");
    assert_eq!((s2, b2["error"]["code"].as_str()), (503, Some("database_unavailable")), "{b2}");
    // Nothing of the refused launch was kept, and reads still work.
    assert_eq!(vm_count(&app, &alice).await, (200, 1));
    // Writable again, after a restart (connections SQLite opened while the
    // file was read-only stay read-only until the pool recycles them; see
    // the README): writes work and nothing was half-written.
    let (dir, db_url) = app.stop().await;
    let app = TestApp::start(Some(db_url), dir).await.unwrap();
    let alice = app.token("alice", "alice-password").await;
    assert_eq!(vm_count(&app, &alice).await, (200, 1));
    assert_eq!(app.call(Method::POST, "/api/v1/vms", &alice, Some(launch)).await.0, 201);
    assert_eq!(vm_count(&app, &alice).await, (200, 2));
    app.stop().await;
}
