//! The launcher: [`Service::build`] takes a [`Config`] and (optionally)
//! listeners that are already bound, so tests start the whole service on
//! port 0; [`Service::run_until`] serves the register API ([`http`], routes
//! from [`router`]), the token service and the reconciler until a shutdown
//! future resolves, and the metrics on their own listener ([`metrics`]).

pub mod files;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::jid::BareJid;

use crate::app::{self, App};
use crate::config::Config;
use crate::db::Db;
use crate::faults::Faults;
use crate::{crypto, provisioner, ratelimit, reconcile, signing, token_service, tokens, xmpp};

/// Listeners and test hooks for [`Service::build`].
#[derive(Default)]
pub struct Options {
    /// The register API listener; default: bind `http.listen`.
    pub http: Option<TcpListener>,
    /// The token service listener; default: bind `token_service.listen`
    /// (if not empty).
    pub token_service: Option<TcpListener>,
    /// The metrics listener; default: bind `metrics.listen` (if not empty).
    pub metrics: Option<TcpListener>,
    pub faults: Faults,
    /// Do not start the reconciler loop (tests drive it themselves).
    pub no_reconciler: bool,
}

/// A built service, ready to run.
pub struct Service {
    app: App,
    http: TcpListener,
    token_service: Option<TcpListener>,
    metrics: Option<TcpListener>,
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
    let db = Db::connect(&config.database).await?;
    db.migrate().await?;
    let instance_id = config.instance.resolve();
    tracing::info!(instance = %instance_id, backend = ?db.backend(), "starting");
    let jid_key = config.jid_key()?;
    let connector = xmpp::Connector::from_config(&config.xmpp)?;
    let admin_jid = BareJid::new(&config.xmpp.admin_jid)?;
    let provisioner = provisioner::XmppProvisioner::start(
        connector.clone(),
        admin_jid,
        config.xmpp.admin_password.clone(),
        app::own_resource(&config, "admin", &instance_id),
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
        tokens: tokens::Tokens::new(db.clone(), &config.tokens, faults.clone())
            .with_notices(config.database.notify),
        limits: ratelimit::Limits::for_instances(
            &config.rate_limits,
            Some(&db),
            config.instance.count,
        ),
        faults,
        db,
        config,
        instance_id,
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
        let metrics = match options.metrics {
            Some(l) => Some(l),
            None if config.metrics.listen.is_empty() => None,
            None => Some(
                TcpListener::bind(&config.metrics.listen)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("cannot listen on {}: {e}", config.metrics.listen)
                    })?,
            ),
        };
        let stop = CancellationToken::new();
        let app = build_app(config, options.faults, stop.clone()).await?;
        Ok(Service {
            app,
            http,
            token_service,
            metrics,
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

    /// The metrics listener's address, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
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
            metrics,
            stop,
            no_reconciler,
        } = self;
        let tls = if app.config.tls.enabled() {
            Some(tls::load(&app.config.tls)?)
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
        if let Some(listener) = metrics {
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            tokio::spawn(metrics::serve(app.clone(), listener, stop.clone()));
        }
        if !no_reconciler {
            tokio::spawn(reconcile::run(app.clone(), stop.clone()));
        }
        {
            let (app, stop) = (app.clone(), stop.clone());
            tokio::spawn(async move {
                let notify = app.config.database.notify;
                tokens::notices::follow(&app.tokens, &app.db, notify, stop).await
            });
        }
        let addr = http.local_addr()?;
        tracing::info!(%addr, tls = tls.is_some(), "register API listening");
        let http_config = app.config.http.clone();
        let routes = router::router(app);
        let stopper = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.cancel();
        });
        http::serve(routes, http, tls, &http_config, stop.clone()).await;
        stop.cancel();
        Ok(())
    }
}
