//! A real broker on port 0, on SQLite or PostgreSQL.
#![allow(dead_code)]

use cloudbroker_connector_api::SecretString;
use cloudbroker_core::{Broker, Config};
use cloudbroker_store::testing::{TestDb, POSTGRES_ENV};
use cloudbroker_web::Application;
use serde_json::Value;

pub mod ui;

pub const SUPER_PW: &str = "super-password-1";

pub struct TestApp {
    pub base: String,
    pub broker: Broker,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub http: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

/// A fresh PostgreSQL database of the test server named by `POSTGRES_ENV`;
/// `None` (saying the PostgreSQL half is skipped) when none is named.
pub async fn postgres_db() -> Option<String> {
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        eprintln!("NOTICE: {POSTGRES_ENV} is not set: the PostgreSQL half of this test was SKIPPED");
        return None;
    };
    Some(TestDb::create_postgres_database(&base).await.unwrap())
}

impl TestApp {
    pub async fn start(db_url: Option<String>, dir: tempfile::TempDir) -> Result<Self, String> {
        Self::start_with(db_url, dir, |_| {}).await
    }

    /// A broker whose connector instance `aws` (kind `ec2`, region
    /// us-east-1) is `moto`, with `extra_conf` lines added to its conf file.
    pub async fn on_moto(db_url: Option<String>, moto: &cloudbroker_testkit::MotoServer, extra_conf: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("connectors.d")).unwrap();
        std::fs::write(
            dir.path().join("connectors.d/aws.conf"),
            format!("cloud.connector.class = aws:ec2\naws.region = us-east-1\naws.endpoint = {}\n{extra_conf}", moto.endpoint()),
        )
        .unwrap();
        Self::start(db_url, dir).await.unwrap()
    }

    pub async fn start_with(db_url: Option<String>, dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Result<Self, String> {
        let conn = dir.path().join("connectors.d");
        std::fs::create_dir_all(&conn).unwrap();
        if !conn.join("sb.conf").exists() {
            std::fs::write(
                conn.join("sb.conf"),
                "cloud.connector.class = sb:sandbox, sb2:sandbox\nsb.boot.delay.ms = 0\nsb2.boot.delay.ms = 0\n",
            )
            .unwrap();
        }
        let mut config = Config::for_tests(dir.path(), db_url.clone());
        config.admin_password = Some(SecretString::new(SUPER_PW));
        tweak(&mut config);
        let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
        let app = Application::build(broker.clone()).unwrap();
        let base = format!("http://{}", app.addr());
        let handle = app.handle();
        tokio::spawn(app.run());
        let db_url = broker.config.database_url.clone();
        Ok(Self { base, broker, dir, db_url, http: reqwest::Client::builder().cookie_store(true).build().unwrap(), handle })
    }

    pub async fn sqlite() -> Self {
        Self::start(None, tempfile::tempdir().unwrap()).await.unwrap()
    }

    pub async fn postgres() -> Option<Self> {
        let url = postgres_db().await?;
        Some(Self::start(Some(url), tempfile::tempdir().unwrap()).await.unwrap())
    }

    pub async fn stop(self) -> (tempfile::TempDir, String) {
        self.handle.stop(true).await;
        self.broker.close().await;
        (self.dir, self.db_url)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A bearer token via Basic auth.
    pub async fn token(&self, user: &str, pw: &str) -> String {
        let r = self.http.post(self.url("/api/v1/tokens")).basic_auth(user, Some(pw)).send().await.unwrap();
        assert_eq!(r.status(), 201, "token for {user}: {}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Creates a user and returns a token for them.
    pub async fn user(&self, admin_token: &str, name: &str) -> String {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/users",
                admin_token,
                Some(serde_json::json!({"name": name, "password": format!("{name}-password")})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        self.token(name, &format!("{name}-password")).await
    }

    /// Every byte the database holds as text: the SQLite file with its WAL, or
    /// every row of every PostgreSQL table cast to text.
    pub async fn database_text(&self) -> String {
        if self.db_url.starts_with("sqlite") {
            let path = self.db_url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                all.extend(std::fs::read(format!("{path}{suffix}")).unwrap_or_default());
            }
            String::from_utf8_lossy(&all).into_owned()
        } else {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&self.db_url).await.unwrap();
            let tables: Vec<(String,)> =
                sqlx::query_as("SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            assert!(tables.len() > 5, "{tables:?}");
            let mut out = String::new();
            for (t,) in tables {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT CAST(x AS TEXT) FROM \"{t}\" x")).fetch_all(&pool).await.unwrap();
                for r in rows {
                    out.push_str(&r.0);
                }
            }
            pool.close().await;
            out
        }
    }

    /// An EC2 Query call to `/ec2` with a form `body`, SigV4-signed in the
    /// `Authorization` header with `key` (id, secret) for `region`, now.
    pub async fn ec2_call(&self, key: &(String, String), region: &str, body: &str) -> (u16, String) {
        let host = self.base.trim_start_matches("http://").to_string();
        let headers =
            vec![("host".to_string(), host), ("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string())];
        let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, region, "ec2", chrono::Utc::now());
        let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
        let mut r = self.http.post(self.url("/ec2")).body(body.to_string());
        for (k, v) in headers.iter().chain(added.iter()).filter(|(k, _)| k != "host") {
            r = r.header(k.as_str(), v.as_str());
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

/// Runs a test body on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! app_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let app = common::TestApp::sqlite().await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(app) = common::TestApp::postgres().await {
                    ($body)(app).await;
                }
            }
        }
    };
}

/// Runs a scenario taking the database URL (`None`: a fresh SQLite) as the
/// tests `$name::sqlite` and `$name::postgres` (the latter when the test
/// environment names a PostgreSQL, else it says it skipped).
#[macro_export]
macro_rules! db_url_test {
    ($name:ident, $scenario:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $scenario(None).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(url) = super::common::postgres_db().await else { return };
                $scenario(Some(url)).await;
            }
        }
    };
}
