//! The `jidgate` command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::{AppKind, Config, LogFormat};
use crate::signing::{SigningKey, canonical_request, canonical_text};

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
    /// Log format; default: `log.format` of the configuration (`text`).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
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
    /// Manage operators of the console (/console).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Add an operator; the password is prompted for (or read as one line
    /// from standard input when it is not a terminal).
    Add {
        name: String,
        /// Set the password of an existing operator instead.
        #[arg(long)]
        replace: bool,
    },
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
    /// The endpoint, e.g. /register (the signature covers it: a request
    /// signed for one endpoint is refused at any other).
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

/// Log targets whose verbose levels print protocol payloads, and the most
/// verbose level each may ever log at, whatever `RUST_LOG` says.
///
/// - the XMPP stack: tokio-xmpp logs every stanza sent and received at
///   `trace` (`SEND <iq>…` with the add-user form and its JID password) and
///   raw stream data at `debug`; xmpp-parsers, xso, rxml, minidom and sasl
///   (SASL credentials) are capped with it (not `jid`: a target prefix, it
///   would also cap `jidgate`);
/// - rustls: handshake messages at `trace` (certificates, session tickets).
///
/// Checked and left alone, because they never print values: sqlx (SQL text
/// with `?` placeholders; bound values are never logged), hyper and h2
/// (sizes and states; h2 leaves header fields and data out of its `Debug`),
/// axum (connection addresses). Request parameters, tokens and passwords
/// are never logged by jidgate itself.
pub const PAYLOAD_LOG_CAPS: &[(&str, tracing::Level)] = &[
    ("tokio_xmpp", tracing::Level::ERROR),
    ("xmpp_parsers", tracing::Level::WARN),
    ("xso", tracing::Level::WARN),
    ("rxml", tracing::Level::WARN),
    ("minidom", tracing::Level::WARN),
    ("sasl", tracing::Level::WARN),
    ("rustls", tracing::Level::DEBUG),
    ("tokio_rustls", tracing::Level::DEBUG),
];

/// The filter that enforces [`PAYLOAD_LOG_CAPS`]; everything else passes.
pub fn payload_log_caps() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_default(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_targets(PAYLOAD_LOG_CAPS.iter().copied())
}

/// Logs to standard error at the levels of `RUST_LOG` (default `info`),
/// never above [`PAYLOAD_LOG_CAPS`]: an event must pass both filters, so no
/// `RUST_LOG` can turn stanza logging back on. Records of the `log` crate
/// (tokio-xmpp, rustls) go through the same filters.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let env = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(env).with_filter(payload_log_caps()))
        .try_init();
}

/// Runs the command line; returns the process exit code.
pub async fn main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    if let Command::GenKey = cli.command {
        println!("{}", hex::encode(crate::crypto::random_bytes::<32>()));
        return Ok(0);
    }
    let config = Config::load(cli.config.as_deref())?;
    init_tracing(cli.log_format.unwrap_or(config.log.format));
    match cli.command {
        Command::Serve => {
            crate::server::files::raise_open_files_limit(&config);
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
            let db = crate::db::Db::connect(&config.database).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(0)
        }
        Command::Sign(args) => {
            println!("{}", sign(&config, &args, crate::clock::now())?);
            Ok(0)
        }
        Command::Reconcile(args) => reconcile(config, args).await,
        Command::Operator(OperatorCommand::Add { name, replace }) => {
            let password = read_password(&format!("password for operator {name}: "))?;
            let db = crate::db::Db::connect(&config.database).await?;
            db.migrate().await?;
            let hasher = crate::crypto::PasswordPool::new(&config.passwords)?;
            crate::console::add_operator(&db, &hasher, &name, password, replace)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "operator {name} {}",
                if replace { "updated" } else { "added" }
            );
            Ok(0)
        }
        Command::GenKey => unreachable!("handled above"),
    }
}

/// A password: prompted for without echo on a terminal, else one line of
/// standard input.
fn read_password(prompt: &str) -> anyhow::Result<secrecy::SecretString> {
    use std::io::IsTerminal;
    let text = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(secrecy::SecretString::from(text))
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
    let endpoint = if args.endpoint.starts_with('/') {
        args.endpoint.clone()
    } else {
        format!("/{}", args.endpoint)
    };
    let pairs = || params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let signature = key.sign(canonical_text(&endpoint, pairs()).as_bytes());
    // The query is the parameter line of the canonical text (already
    // percent-encoded), plus the signature.
    let query = format!("{}&param_sign={signature}", canonical_request(pairs()));
    if args.form {
        return Ok(query);
    }
    let base = args
        .base
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
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
        let rows = crate::db::stats::drift_rows(&app.db).await?;
        let mut progress = crate::progress::Progress::new("reading rosters", rows.max(0) as u64);
        let found = crate::reconcile::drift_each(&app, |n| progress.advance(n)).await;
        progress.finish();
        actions.extend(found?);
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
    // On PostgreSQL, not beside a running instance's reconciler.
    let Some(_lock) = crate::db::shared::Leadership::try_take(&app.db).await? else {
        stop.cancel();
        anyhow::bail!("a running instance holds the reconciler's lock: it repairs these itself");
    };
    let mut progress = crate::progress::Progress::new("reconcile", actions.len() as u64);
    let report = crate::reconcile::apply_each(&app, &actions, |ok| progress.step(ok)).await;
    progress.finish();
    println!("done: {}, failed: {}", report.done, report.failed);
    stop.cancel();
    Ok(if report.failed == 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::signing::Keyring;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn sign_prints_a_request_signed_for_its_endpoint() {
        let config = Config::from_toml(&format!(
            "[secrets]\njid_key = \"{KEY}\"\n\
             [[apps]]\napp_id = \"lamp\"\nsecret = \"{KEY}\"\nkind = \"device\""
        ))
        .unwrap();
        let args = SignArgs {
            app: "lamp".into(),
            key: None,
            base: Some("http://h:1/".into()),
            form: false,
            endpoint: "get_bind_code".into(),
            params: vec!["user_name=SN 1".into(), "access_token=jgt_x".into()],
        };
        let now = crate::clock::now();
        let url = sign(&config, &args, now).unwrap();
        let (path, query) = url
            .strip_prefix("http://h:1")
            .unwrap()
            .split_once('?')
            .unwrap();
        assert_eq!(path, "/get_bind_code");
        let pairs: Vec<(String, String)> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap();
                (k.to_owned(), v.into_owned())
            })
            .collect();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let all = || pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let keyring = Keyring::new(&config.apps, 300);
        let who = keyring
            .verify(Some("/get_bind_code"), get, all(), now)
            .unwrap();
        assert_eq!(who.app_id, "lamp");
        assert!(matches!(
            keyring.verify(Some("/get_user_banding"), get, all(), now),
            Err(Error::Sign)
        ));
    }

    use tracing::Level;

    #[test]
    fn payload_targets_are_capped_at_every_level_and_module() {
        let caps = payload_log_caps();
        for target in [
            "tokio_xmpp",
            "tokio_xmpp::xmlstream::capture",
            "tokio_xmpp::xmlstream::common",
            "xmpp_parsers::message",
            "sasl::client",
            "rustls::server::hs",
            "tokio_rustls",
        ] {
            assert!(!caps.would_enable(target, &Level::TRACE), "{target}");
        }
        for target in ["tokio_xmpp::xmlstream", "xso", "rxml", "minidom"] {
            assert!(!caps.would_enable(target, &Level::DEBUG), "{target}");
        }
        assert!(!caps.would_enable("tokio_xmpp::stanzastream", &Level::WARN));
        assert!(caps.would_enable("tokio_xmpp", &Level::ERROR));
        assert!(caps.would_enable("rustls::client", &Level::DEBUG));
    }

    #[test]
    fn other_targets_keep_every_level() {
        let caps = payload_log_caps();
        for target in [
            "jidgate::reconcile",
            "sqlx::query",
            "hyper::proto",
            "h2",
            "axum",
        ] {
            assert!(caps.would_enable(target, &Level::TRACE), "{target}");
        }
    }
}
