//! Commands.

use clap::{Args, Parser, Subcommand};
use cloudbroker_connector_api::conf::load_dir;
use cloudbroker_core::registry::{Origin, Status};
use cloudbroker_core::{Broker, Config, LogFormat, RawConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// cloudbroker: a multi-cloud management broker.
#[derive(Parser, Debug)]
#[command(name = "cloudbroker", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command (flags win over the environment, which
/// wins over the configuration file).
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "CLOUDBROKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    pub listen: Option<String>,
    /// Data directory [default: ./data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL, sqlite://PATH or postgres://... [default: sqlite://<data-dir>/cloudbroker.db].
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Directory of connector .conf files [default: ./connectors.d].
    #[arg(long, global = true)]
    pub connectors_dir: Option<PathBuf>,
    /// Log format: human or json [default: human].
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or cloudbroker=debug [default: info].
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the broker (HTTP server and background tasks).
    Serve,
    /// Apply database migrations and exit.
    Migrate {
        /// Only report pending migrations, apply nothing (exit 1 if some are pending, 2 if the schema is newer than this binary).
        #[arg(long)]
        check: bool,
    },
    /// Write a consistent copy of the live SQLite database (the master key is not in it).
    Backup {
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the SQLite database of a stopped data directory with a backup.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing database (it is kept as `<db>.pre-restore`).
        #[arg(long)]
        force: bool,
    },
    /// Connector instances.
    #[command(subcommand)]
    Connectors(ConnectorsCmd),
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Master keys of the credential vault.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Print the version.
    Version,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password is read from stdin (one line) or prompted for.
    Add {
        name: cloudbroker_core::domain::UserName,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password (read from stdin).
    Passwd { name: cloudbroker_core::domain::UserName },
    /// List users.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an API token for a user and print it (shown once).
    Create {
        user: cloudbroker_core::domain::UserName,
        /// A name for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime in seconds (default: no expiry).
        #[arg(long)]
        expires_in: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a new master key, re-seal every secret under it in one transaction, drop unused keys.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum ConnectorsCmd {
    /// Validate connectors.d files; print the instances or the errors (exit 1 on error).
    Check,
    /// List the effective connector instances (files and UI), with the origin of every value.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running broker (pid file in the data dir) to reload its configuration (SIGHUP).
    Reload,
}

impl GlobalArgs {
    fn raw(&self) -> RawConfig {
        RawConfig {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            connectors_dir: self.connectors_dir.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            ..RawConfig::default()
        }
    }
}

/// file, then environment, then flags.
pub fn load_config(g: &GlobalArgs) -> Result<Config, String> {
    let file = match &g.config {
        Some(p) => RawConfig::from_file(p).map_err(|e| e.to_string())?,
        None => RawConfig::default(),
    };
    let env = RawConfig::from_env(std::env::vars()).map_err(|e| e.to_string())?;
    file.merge(env).merge(g.raw()).finish().map_err(|e| e.to_string())
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Runs a command; returns the process exit code.
pub async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Version => {
            println!("cloudbroker {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors(ConnectorsCmd::Check) => {
            let config = load_config(&cli.global)?;
            Ok(check(&config.connectors_dir))
        }
        Command::Migrate { check: true } => {
            let config = load_config(&cli.global)?;
            crate::dbtools::migrate_check(&config.database_url).await
        }
        Command::Backup { to } => {
            let config = load_config(&cli.global)?;
            crate::dbtools::backup(&config.database_url, &to).await
        }
        Command::Restore { from, force } => {
            let config = load_config(&cli.global)?;
            crate::dbtools::restore(&config.database_url, &config.data_dir, &from, force).await
        }
        Command::Migrate { check: false } => {
            let config = load_config(&cli.global)?;
            init_logging(&config);
            crate::dbtools::refuse_newer_schema(&config.database_url).await?;
            let store = cloudbroker_store::Store::open(&config.database_url).await.map_err(|e| e.to_string())?;
            let applied = store.applied_migrations().await.map_err(|e| e.to_string())?;
            println!(
                "database {} is at migration {} ({} applied)",
                store.backend().as_str(),
                applied.last().copied().unwrap_or(0),
                applied.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors(ConnectorsCmd::List { json }) => {
            let config = load_config(&cli.global)?;
            let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
            let snap = broker.registry.snapshot();
            if json {
                println!("{}", serde_json::to_string_pretty(&*snap).map_err(|e| e.to_string())?);
            } else {
                for i in &snap.instances {
                    let state = match &i.status {
                        Status::Ready => "ready".to_string(),
                        Status::Error { errors } => format!("error: {}", errors.join("; ")),
                    };
                    println!("{}:{}  [{}]  declared by {}", i.name, i.kind, state, origin(&i.declared_by));
                    for p in &i.params {
                        println!("    {} = {}  ({})", p.key, p.value.as_deref().unwrap_or(""), origin(&p.origin));
                    }
                }
                for e in snap.file_errors.iter().chain(snap.errors.iter()) {
                    println!("error: {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Connectors(ConnectorsCmd::Reload) => {
            let config = load_config(&cli.global)?;
            let pid_file = config.data_dir.join("cloudbroker.pid");
            let pid = std::fs::read_to_string(&pid_file).map_err(|e| format!("no running broker found ({}: {e})", pid_file.display()))?;
            let pid = pid.trim();
            let ok = std::process::Command::new("kill").args(["-HUP", pid]).status().map_err(|e| e.to_string())?.success();
            if !ok {
                return Err(format!("could not signal broker process {pid} (stale {}?)", pid_file.display()));
            }
            println!("asked broker process {pid} to reload its configuration");
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => {
            let config = load_config(&cli.global)?;
            let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
            let sys = cloudbroker_core::Actor::system();
            match cmd {
                UserCmd::Add { name, admin } => {
                    let pw = read_password()?;
                    broker.identity.create_user(&sys, &name, &pw, admin).await.map_err(|e| e.to_string())?;
                    println!("created user {name}{}", if admin { " (admin)" } else { "" });
                }
                UserCmd::Passwd { name } => {
                    let pw = read_password()?;
                    broker.identity.set_password(&sys, &name, None, &pw, None).await.map_err(|e| e.to_string())?;
                    println!("password of {name} changed");
                }
                UserCmd::List => {
                    for u in broker.identity.list_users(&sys).await.map_err(|e| e.to_string())? {
                        println!("{}\t{}\t{}", u.name, if u.is_admin { "admin" } else { "user" }, u.created_at.format("%Y-%m-%d %H:%M:%S"));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCmd::Create { user, name, expires_in }) => {
            let config = load_config(&cli.global)?;
            let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
            let (token, row) = broker
                .identity
                .create_token(&cloudbroker_core::Actor::system(), &user, &name, expires_in.map(std::time::Duration::from_secs))
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("token {} for {} (shown once):", row.id, row.user_name);
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCmd::Rotate) => {
            let config = load_config(&cli.global)?;
            init_logging(&config);
            let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
            let r = broker.vault.rotate(&cloudbroker_core::Actor::system()).await.map_err(|e| e.to_string())?;
            let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
            println!(
                "current master key: {}; {} secret(s) re-sealed; retired (kept {} days): {}; dropped: {}",
                r.current_key,
                r.resealed,
                cloudbroker_core::vault::RETIRED_KEY_GRACE.as_secs() / 86_400,
                list(&r.retired_keys),
                list(&r.dropped_keys)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let config = load_config(&cli.global)?;
            init_logging(&config);
            serve(config).await.map(|_| ExitCode::SUCCESS)
        }
    }
}

/// Reads a password: one line from stdin.
fn read_password() -> Result<cloudbroker_connector_api::SecretString, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| e.to_string())?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err("no password given on stdin".into());
    }
    Ok(cloudbroker_connector_api::SecretString::new(pw))
}

fn origin(o: &Origin) -> String {
    match o {
        Origin::File { file, line } => format!("{}:{line}", file.display()),
        Origin::Ui { updated_by, updated_at } => format!("UI, {updated_by} at {}", updated_at.format("%Y-%m-%d %H:%M:%S")),
        Origin::Default => "default".into(),
    }
}

/// `connectors check`: files only, no database.
fn check(dir: &std::path::Path) -> ExitCode {
    let load = load_dir(dir, &cloudbroker::connectors());
    println!("{} file(s) in {}", load.files.len(), dir.display());
    for i in &load.instances {
        let set: Vec<String> = i.params.iter().map(|(k, p)| format!("{k}={}", p.value.as_deref().unwrap_or(""))).collect();
        println!("ok     {}:{}  ({})  {}", i.declaration.instance, i.declaration.kind, i.location, set.join(" "));
    }
    for r in &load.rejected {
        println!("reject {r}  (see errors)");
    }
    for e in &load.errors {
        eprintln!("error: {e}");
    }
    if load.errors.is_empty() {
        println!("{} instance(s), no errors", load.instances.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} instance(s) ok, {} error(s)", load.instances.len(), load.errors.len());
        ExitCode::FAILURE
    }
}

/// `serve`: runs until SIGTERM or SIGINT, then stops in order: `/readyz`
/// turns 503 (draining), after `shutdown_delay_secs` (default 0) the
/// listener closes, in-flight requests get up to
/// [`cloudbroker_web::SHUTDOWN_TIMEOUT_SECS`] to finish while the background
/// workers finish their step in progress (same deadline, concurrently), the
/// replica's reconcile leases are released (another replica takes over at
/// once), the database pool closes, and the process exits 0. Launches still waiting for
/// the cloud at the deadline are crash-safe: the next start (or another
/// replica) reconciles them. SIGHUP reloads the connector configuration and
/// the TLS certificate.
async fn serve(config: Config) -> Result<(), String> {
    cloudbroker_core::metrics::install();
    crate::dbtools::refuse_newer_schema(&config.database_url).await?;
    let broker = Broker::start(config, cloudbroker::connectors()).await.map_err(|e| e.to_string())?;
    let pid_file = broker.config.data_dir.join("cloudbroker.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(|e| format!("cannot write {}: {e}", pid_file.display()))?;
    let app = match cloudbroker_web::Application::build(broker.clone()) {
        Ok(app) => app,
        Err(e) => {
            let _ = std::fs::remove_file(&pid_file);
            return Err(format!("cannot serve on {}: {e}", broker.config.listen));
        }
    };
    tracing::info!(
        addr = %app.addr(),
        database = broker.backend(),
        connectors_dir = %broker.config.connectors_dir.display(),
        "cloudbroker listening on {}://{}",
        app.scheme(),
        app.addr()
    );
    let tls = app.tls();
    let handle = app.handle();
    let draining = app.draining();
    let background = broker.spawn_background();
    let mut server = tokio::spawn(app.run());

    use tokio::signal::unix::{signal, SignalKind};
    let (mut hup, mut term, mut int) =
        match (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(h), Ok(t), Ok(i)) => (h, t, i),
            _ => return Err("cannot install signal handlers".into()),
        };
    let early = loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading connector configuration");
                if let Err(e) = broker.registry.reload().await { tracing::error!(error = %e, "reload failed"); }
                match tls.as_ref().map(|t| t.reload()) {
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Some(Err(e)) => tracing::error!(error = %e, "TLS certificate not reloaded; the current one stays"),
                    None => {}
                }
            }
            _ = term.recv() => break None,
            _ = int.recv() => break None,
            r = &mut server => break Some(r),
        }
    };
    let deadline = std::time::Duration::from_secs(cloudbroker_web::SHUTDOWN_TIMEOUT_SECS);
    let result = match early {
        Some(r) => {
            tracing::error!("the HTTP server stopped by itself");
            let _ = background.shutdown(deadline).await;
            r.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()))
        }
        None => {
            // Readiness turns 503 before the line says so (a watcher of the log
            // must not find the broker still ready).
            draining.start();
            tracing::info!(deadline_secs = deadline.as_secs(), "shutting down: draining in-flight requests, stopping background work");
            let delay = std::time::Duration::from_secs(broker.config.shutdown_delay_secs);
            if !delay.is_zero() {
                tracing::info!(delay_secs = delay.as_secs(), "readiness is 503; still accepting until the delay ends");
                tokio::time::sleep(delay).await;
            }
            let http = async {
                handle.stop(true).await;
                (&mut server).await
            };
            let (served, busy) = tokio::join!(http, background.shutdown(deadline));
            if busy.is_empty() {
                match broker.release_leases().await {
                    Ok(n) => tracing::info!(released = n, "reconcile leases released for the other replicas"),
                    Err(e) => tracing::warn!(error = %e, "could not release the reconcile leases; they expire by themselves"),
                }
            } else {
                // A step still running would retake a released lease: let them expire instead.
                tracing::warn!(workers = ?busy, "background work still running at the deadline (it is crash-safe)");
            }
            served.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()))
        }
    };
    broker.close().await;
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("stopped");
    result
}
