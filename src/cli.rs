//! The `jidgate` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::{AppKind, Config};
use crate::signing::{SigningKey, canonical_request};

#[derive(Parser, Debug)]
#[command(
    name = "jidgate",
    version,
    about = "Accounts and matching XMPP identities for phones, devices and WeChat users"
)]
pub struct Cli {
    /// Configuration file (on top of the embedded defaults; environment
    /// variables JIDGATE__SECTION__KEY override both).
    #[arg(long, global = true, env = "JIDGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the register API, the token service and the reconciler.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print a signed request URL, to try the API with curl.
    Sign(SignArgs),
    /// Finish or undo pending operations and repair roster drift.
    Reconcile(ReconcileArgs),
    /// Print a random 32-byte key as 64 hex digits (for secrets.jid_key or
    /// app secrets).
    GenKey,
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The app_id to sign as (its secret comes from the configuration).
    #[arg(long)]
    pub app: String,
    /// Sign with this key (hex) instead of the configured one, e.g. a
    /// device's own key.
    #[arg(long)]
    pub key: Option<String>,
    /// Base URL; default: http://<http.listen>.
    #[arg(long)]
    pub base: Option<String>,
    /// Print a form body for POST instead of a URL.
    #[arg(long)]
    pub form: bool,
    /// The endpoint, e.g. /register.
    pub endpoint: String,
    /// Parameters as name=value.
    pub params: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// List what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only pending operations older than this (seconds); default: the
    /// configured grace.
    #[arg(long)]
    pub grace: Option<u64>,
    /// Skip the roster comparison (drift).
    #[arg(long)]
    pub no_drift: bool,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the command line; returns the process exit code.
pub async fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    if let Command::GenKey = cli.command {
        println!("{}", hex::encode(crate::crypto::random_bytes::<32>()));
        return Ok(0);
    }
    init_tracing(cli.log_format);
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            crate::server::raise_open_files_limit(&config);
            let service = crate::Service::build(config, crate::Options::default()).await?;
            service
                .run_until(async {
                    shutdown_signal().await;
                    tracing::info!("shutting down");
                })
                .await?;
            Ok(0)
        }
        Command::Migrate => {
            let db = crate::db::connect(&config.database).await?;
            crate::db::migrate(&db).await?;
            println!("migrations applied");
            Ok(0)
        }
        Command::Sign(args) => {
            println!("{}", sign(&config, &args, crate::now())?);
            Ok(0)
        }
        Command::Reconcile(args) => reconcile(config, args).await,
        Command::GenKey => unreachable!("handled above"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Builds the signed URL (or form body) for `args`.
pub fn sign(config: &Config, args: &SignArgs, now: i64) -> anyhow::Result<String> {
    let app = config
        .apps
        .iter()
        .find(|a| a.app_id == args.app)
        .ok_or_else(|| anyhow::anyhow!("no app {:?} in the configuration", args.app))?;
    let mut params: Vec<(String, String)> = Vec::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("parameter {p:?} is not name=value"))?;
        params.push((k.to_owned(), v.to_owned()));
    }
    let user_name = params
        .iter()
        .find(|(k, _)| k == "user_name")
        .map(|(_, v)| v.clone());
    params.push(("app_id".into(), app.app_id.clone()));
    params.push(("ts".into(), now.to_string()));
    params.push(("nonce".into(), crate::crypto::random_token::<12>()));
    let key = match (&args.key, app.kind) {
        (Some(hex_key), _) => SigningKey::from_bytes(hex::decode(hex_key)?),
        (None, AppKind::Device) => {
            let user = user_name.ok_or_else(|| {
                anyhow::anyhow!(
                    "device apps sign with a key derived from user_name: give user_name=..."
                )
            })?;
            SigningKey::derive_device(app.secret.expose_secret().as_bytes(), &user)
        }
        (None, _) => SigningKey::from_bytes(app.secret.expose_secret().as_bytes()),
    };
    let canonical = canonical_request(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let signature = key.sign(canonical.as_bytes());
    let query = format!("{canonical}&param_sign={signature}");
    if args.form {
        return Ok(query);
    }
    let base = args
        .base
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
    let endpoint = if args.endpoint.starts_with('/') {
        args.endpoint.clone()
    } else {
        format!("/{}", args.endpoint)
    };
    Ok(format!("{}{endpoint}?{query}", base.trim_end_matches('/')))
}

async fn reconcile(config: Config, args: ReconcileArgs) -> anyhow::Result<i32> {
    let stop = CancellationToken::new();
    let app = crate::build_app(config, crate::Faults::none(), stop.clone()).await?;
    if !app.provisioner.wait_ready(Duration::from_secs(15)).await {
        anyhow::bail!("the XMPP admin session did not come up");
    }
    let grace = args.grace.unwrap_or(app.config.reconcile.grace);
    let mut actions = crate::reconcile::pending(&app, grace).await?;
    if !args.no_drift {
        actions.extend(crate::reconcile::drift(&app).await?);
    }
    if actions.is_empty() {
        println!("nothing to do: the XMPP server matches the database");
        stop.cancel();
        return Ok(0);
    }
    for a in &actions {
        println!("{}{a}", if args.dry_run { "would " } else { "" });
    }
    if args.dry_run {
        stop.cancel();
        return Ok(0);
    }
    let report = crate::reconcile::apply_all(&app, &actions).await;
    println!("done: {}, failed: {}", report.done, report.failed);
    stop.cancel();
    Ok(if report.failed == 0 { 0 } else { 1 })
}
