//! A broker (no HTTP) on a fresh database, SQLite or PostgreSQL, with two
//! sandbox instances `sb` and `sb2` that boot at once.
#![allow(dead_code)]

use cloudbroker_connector_api::Connectors;
use cloudbroker_core::{Broker, Config};

/// The connectors core's tests start brokers with: the sandbox only (core
/// names no connector; the binary registers the ones it ships).
pub fn connectors() -> Connectors {
    Connectors::new().with(cloudbroker_connector_sandbox::SandboxBuilder)
}
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};

pub struct TestBroker {
    pub broker: Broker,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start(db_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conn = dir.path().join("connectors.d");
        std::fs::create_dir_all(&conn).unwrap();
        std::fs::write(
            conn.join("sb.conf"),
            "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\n",
        )
        .unwrap();
        let mut config = Config::for_tests(dir.path(), db_url);
        config.admin_password = Some(cloudbroker_connector_api::SecretString::new("super-password-1"));
        let broker = Broker::start(config, connectors()).await.unwrap();
        Self { broker, dir }
    }

    pub async fn sqlite() -> Self {
        Self::start(None).await
    }

    pub async fn postgres() -> Option<Self> {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
            return None;
        };
        Some(Self::start(Some(TestDb::create_postgres_database(&base).await.unwrap())).await)
    }
}

/// Runs a test body on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! broker_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = common::TestBroker::sqlite().await;
                ($body)(t.broker.clone()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(t) = common::TestBroker::postgres().await {
                    ($body)(t.broker.clone()).await;
                }
            }
        }
    };
}
