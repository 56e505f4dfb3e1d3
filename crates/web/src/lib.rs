//! The HTTP edge: health probes, the JSON API (`api/`) and the web UI
//! (`ui/`), over what they share (`common/`). Handlers parse input into the
//! core's domain types, call the broker's services (`cloudbroker-core`) and
//! map their errors back, one mapping per front-end; nothing here reaches
//! the store (this crate does not depend on it). Every request passes
//! [`observe::observe`] (request id, span, log line, metrics).

pub mod api;
pub mod common;
pub mod health;
pub mod observe;
pub mod tls;
pub mod ui;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use cloudbroker_core::Broker;
use std::net::{SocketAddr, TcpListener};

/// A bound, not yet running, HTTP server.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    draining: observe::Draining,
    tls: Option<std::sync::Arc<tls::CertReloader>>,
}

/// How long a graceful stop waits for in-flight requests and background
/// work (seconds; the stop timeouts in deploy/ are a little above it).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 30;

impl Application {
    /// Binds the configured address (port 0 picks a free port) and builds the
    /// server; call [`Application::run`] to serve.
    pub fn build(broker: Broker) -> std::io::Result<Self> {
        let tls = match &broker.config.tls {
            Some((cert, key)) => Some(tls::CertReloader::load(cert, key).map_err(std::io::Error::other)?),
            None => None,
        };
        let listener = TcpListener::bind(broker.config.listen)?;
        let addr = listener.local_addr()?;
        cloudbroker_core::metrics::install();
        let data = web::Data::new(broker);
        let draining = observe::Draining::default();
        let drain = web::Data::new(draining.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(drain.clone())
                .wrap(actix_web::middleware::from_fn(observe::observe))
                .configure(routes)
        })
        .workers(2)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .disable_signals();
        let server = match &tls {
            Some(t) => server.listen_rustls_0_23(listener, t.server_config().map_err(std::io::Error::other)?)?,
            None => server.listen(listener)?,
        }
        .run();
        Ok(Self { addr, server, draining, tls })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The flag that turns `/readyz` to 503 once shutdown begins.
    pub fn draining(&self) -> observe::Draining {
        self.draining.clone()
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The certificate reloader, when serving TLS (SIGHUP calls it).
    pub fn tls(&self) -> Option<std::sync::Arc<tls::CertReloader>> {
        self.tls.clone()
    }

    /// Serves until stopped.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// All routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(observe::metrics))
        .route("/client/cloudbroker-client.sh", web::get().to(api::exchange::client_script))
        .configure(api::routes)
        .configure(cloudbroker_ec2_api::routes)
        .configure(ui::public_routes)
        .configure(ui::signed_in_routes);
}
