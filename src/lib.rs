//! jidgate: accounts and matching XMPP identities for phones, devices and
//! WeChat users; phones bound to their devices as real roster entries;
//! access tokens that other services verify over TCP.
//!
//! [`Service::build`] takes a [`Config`] and (optionally) listeners that are
//! already bound, so tests start the whole service on port 0;
//! [`Service::run_until`] serves until a shutdown future resolves.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod app;
pub mod binding;
pub mod captcha;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod faults;
pub mod fields;
pub mod params;
pub mod provisioner;
pub mod ratelimit;
pub mod reconcile;
pub mod server;
pub mod signing;
pub mod token_service;
pub mod tokens;
pub mod xmpp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use xmpp_parsers::jid::BareJid;

pub use app::App;
pub use clock::now;
pub use config::Config;
pub use faults::{FaultHook, Faults};

/// The HTTP routes of every module.
pub fn router(app: App) -> Router {
    let timeout = Duration::from_secs(app.config.http.request_timeout.max(1));
    Router::new()
        .merge(captcha::router())
        .merge(accounts::router())
        .merge(binding::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(api::finish_answers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(app)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "no such endpoint\n")
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Stuck rows listed by `/readyz` at most.
const READYZ_STUCK_ROWS: i64 = 20;

/// The database answers and the XMPP admin session is up (200, else 503).
/// Rows the reconciler keeps failing on are listed under `stuck` but do not
/// make the instance unready: a load balancer must not take away an
/// instance that serves everyone else because one row needs an operator.
async fn readyz(State(app): State<App>) -> impl IntoResponse {
    let db = app.db.ping().await;
    let xmpp = app.provisioner.is_ready();
    let status = if db && xmpp {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({ "database": db, "xmpp": xmpp });
    let threshold = i64::from(app.config.reconcile.alert_after);
    if db
        && let Ok((count, rows)) =
            db::repair_attempt::stuck(&app.db, threshold, READYZ_STUCK_ROWS).await
    {
        body["stuck"] = serde_json::json!({ "count": count, "rows": rows });
    }
    (status, axum::Json(body))
}

/// Listeners and test hooks for [`Service::build`].
#[derive(Default)]
pub struct Options {
    /// The register API listener; default: bind `http.listen`.
    pub http: Option<TcpListener>,
    /// The token service listener; default: bind `token_service.listen`
    /// (if not empty).
    pub token_service: Option<TcpListener>,
    pub faults: Faults,
    /// Do not start the reconciler loop (tests drive it themselves).
    pub no_reconciler: bool,
}

/// A built service, ready to run.
pub struct Service {
    app: App,
    http: TcpListener,
    token_service: Option<TcpListener>,
    stop: CancellationToken,
    no_reconciler: bool,
}

/// Builds the shared state: database (migrated), keys, XMPP admin session
/// (connecting in the background), limits.
pub async fn build_app(
    config: Config,
    faults: Faults,
    stop: CancellationToken,
) -> anyhow::Result<App> {
    let db = db::Db::connect(&config.database).await?;
    db.migrate().await?;
    let jid_key = config.jid_key()?;
    let connector = xmpp::Connector::from_config(&config.xmpp)?;
    let admin_jid = BareJid::new(&config.xmpp.admin_jid)?;
    let provisioner = provisioner::XmppProvisioner::start(
        connector.clone(),
        admin_jid,
        config.xmpp.admin_password.clone(),
        format!("{}-admin", config.xmpp.resource),
        {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        },
    );
    let inner = app::AppInner {
        keyring: signing::Keyring::new(&config.apps, config.signing.window),
        hasher: crypto::PasswordPool::new(&config.passwords)?,
        jid_cipher: crypto::JidCipher::new(&jid_key),
        provisioner,
        xmpp: connector,
        tokens: tokens::Tokens::new(db.clone(), &config.tokens, faults.clone()),
        limits: ratelimit::Limits::new(&config.rate_limits),
        faults,
        db,
        config,
    };
    Ok(App(Arc::new(inner)))
}

impl Service {
    pub async fn build(config: Config, options: Options) -> anyhow::Result<Service> {
        let http = match options.http {
            Some(l) => l,
            None => TcpListener::bind(config.http.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.http.listen))?,
        };
        let token_service = match options.token_service {
            Some(l) => Some(l),
            None if config.token_service.listen.is_empty() => None,
            None => Some(
                TcpListener::bind(&config.token_service.listen)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("cannot listen on {}: {e}", config.token_service.listen)
                    })?,
            ),
        };
        let stop = CancellationToken::new();
        let app = build_app(config, options.faults, stop.clone()).await?;
        Ok(Service {
            app,
            http,
            token_service,
            stop,
            no_reconciler: options.no_reconciler,
        })
    }

    pub fn app(&self) -> App {
        self.app.clone()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener")
    }

    pub fn token_service_addr(&self) -> Option<SocketAddr> {
        self.token_service
            .as_ref()
            .map(|l| l.local_addr().expect("bound listener"))
    }

    /// Serves until `shutdown` resolves, then stops every task.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Service {
            app,
            http,
            token_service,
            stop,
            no_reconciler,
        } = self;
        let tls = if app.config.tls.enabled() {
            Some(load_tls(&app.config.tls)?)
        } else {
            None
        };
        if let Some(listener) = token_service {
            tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "token service listening");
            // The same certificate, without HTTP's ALPN.
            let acceptor = tls.as_ref().map(|t| {
                let mut plain = (**t).clone();
                plain.alpn_protocols.clear();
                tokio_rustls::TlsAcceptor::from(Arc::new(plain))
            });
            tokio::spawn(token_service::serve(
                app.clone(),
                listener,
                acceptor,
                stop.clone(),
            ));
        }
        if !no_reconciler {
            tokio::spawn(reconcile::run(app.clone(), stop.clone()));
        }
        let addr = http.local_addr()?;
        tracing::info!(%addr, tls = tls.is_some(), "register API listening");
        let http_config = app.config.http.clone();
        let routes = router(app);
        let stopper = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.cancel();
        });
        server::serve_http(routes, http, tls, &http_config, stop.clone()).await;
        stop.cancel();
        Ok(())
    }
}

/// The server TLS configuration (rustls, ring) from PEM files.
pub fn load_tls(cfg: &config::TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = rustls_pemfile::certs(&mut std::fs::read(&cfg.cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::fs::read(&cfg.key)?.as_slice())?
        .ok_or_else(|| anyhow::anyhow!("no private key in {}", cfg.key))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
