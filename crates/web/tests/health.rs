//! The real server on port 0.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

use cloudbroker_core::{Broker, Config};
use cloudbroker_web::Application;

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
    std::fs::write(dir.path().join("connectors.d/sb.conf"), "cloud.connector.class = sb:sandbox\n").unwrap();
    let broker = Broker::start(Config::for_tests(dir.path(), None), cloudbroker::connectors()).await.unwrap();
    let app = Application::build(broker.clone()).unwrap();
    let base = format!("http://{}", app.addr());
    assert_ne!(app.addr().port(), 0);
    let handle = app.handle();
    tokio::spawn(app.run());

    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let r: serde_json::Value = reqwest::get(format!("{base}/readyz")).await.unwrap().json().await.unwrap();
    assert_eq!(r["status"], "ready");
    assert_eq!(r["database"], "sqlite");
    assert_eq!(r["connectors"]["ready"], 1);

    broker.close().await;
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503, "a closed database is not ready");
    handle.stop(true).await;
}
