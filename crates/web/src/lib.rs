//! The HTTP edge: health probes, the JSON API (`api/`) and the web UI
//! (`ui/`), over what they share (`common/`). Handlers parse input into the
//! core's domain types, call the broker's services (`cloudbroker-core`) and
//! map their errors back, one mapping per front-end; nothing here reaches
//! the store (this crate does not depend on it).

pub mod api;
pub mod common;
pub mod health;
pub mod ui;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use cloudbroker_core::Broker;
use std::net::{SocketAddr, TcpListener};

/// A bound, not yet running, HTTP server.
pub struct Application {
    addr: SocketAddr,
    server: Server,
}

impl Application {
    /// Binds the configured address (port 0 picks a free port) and builds the
    /// server; call [`Application::run`] to serve.
    pub fn build(broker: Broker) -> std::io::Result<Self> {
        let listener = TcpListener::bind(broker.config.listen)?;
        let addr = listener.local_addr()?;
        let data = web::Data::new(broker);
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).wrap(actix_web::middleware::Logger::new("%a \"%r\" %s %Dms")).configure(routes)
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self { addr, server })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
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
        .configure(api::routes)
        .configure(cloudbroker_ec2_api::routes)
        .configure(ui::public_routes)
        .configure(ui::signed_in_routes);
}
