//! The storage seam: [`Db`], one handle over the pool of one backend, and
//! every query jidgate makes, one file per entity.
//!
//! Each query is written once, in SQL that SQLite and PostgreSQL both
//! accept (`$1`…`$n` placeholders, `returning`, `on conflict`), inside
//! `on_pool!`, which expands the same body for each backend's pool: SQLite
//! (the embedded default, `sqlite://`) and PostgreSQL (`postgres://`, for
//! several instances), each with its migrations folder
//! (`migrations/sqlite/`, `migrations/postgres/`, kept equivalent). Rows
//! are typed structs; states and user types are enums stored as text and
//! integers. What only PostgreSQL does for several instances (revocation
//! notices, the reconciler's lock) is in [`shared`]; the rate limits they
//! share are in [`rate_limit`]. A statement's result is reduced to what
//! callers need inside `on_pool!` (e.g. `rows_affected`), so both arms
//! have one type. No other module uses sqlx.

/// Runs `$body` with `$pool` bound to the backend's pool (a reference to
/// `sqlx::Pool<DB>`), whichever backend `$db` has: the body is written once
/// and compiled for each.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

pub mod account;
pub mod audit;
pub mod bind_code;
pub mod binding;
pub mod captcha;
pub mod console;
pub mod facade;
pub mod nonce;
pub mod operator;
pub mod rate_limit;
pub mod repair_attempt;
pub mod session;
pub mod shared;
pub mod stats;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::DatabaseConfig;
use crate::error::Error;

pub use account::{Account, AccountState, NewAccount, UserType};
pub use binding::{Binding, BindingState};

/// The database: cheap to clone, shared by every task.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
}

/// The pool of the configured backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Which backend a database is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Opens (creating if needed) the database named by `database.url`.
    /// Does not migrate.
    pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<Db> {
        if cfg.url.starts_with("postgres:") || cfg.url.starts_with("postgresql:") {
            return Self::connect_postgres(cfg).await;
        }
        anyhow::ensure!(
            cfg.url.starts_with("sqlite:"),
            "database.url must be sqlite://PATH or postgres://… (got {:?})",
            cfg.url
        );
        if let Some(path) = cfg.url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
        }
        let options = SqliteConnectOptions::from_str(&cfg.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .connect_with(options)
            .await?;
        Ok(Db {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Opens a PostgreSQL pool with the configured sizes, timeouts and TLS.
    async fn connect_postgres(cfg: &DatabaseConfig) -> anyhow::Result<Db> {
        let mut options = PgConnectOptions::from_str(&cfg.url)?;
        if !cfg.sslmode.is_empty() {
            options = options.ssl_mode(PgSslMode::from_str(&cfg.sslmode)?);
        }
        if !cfg.ssl_root_cert.is_empty() {
            options = options.ssl_root_cert(&cfg.ssl_root_cert);
        }
        if cfg.statement_timeout_ms > 0 {
            let ms = cfg.statement_timeout_ms.to_string();
            options = options.options([("statement_timeout", ms.as_str())]);
        }
        let options = options.application_name("jidgate");
        let idle = (cfg.idle_timeout > 0).then(|| Duration::from_secs(cfg.idle_timeout));
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .min_connections(cfg.min_connections.min(cfg.max_connections))
            .acquire_timeout(Duration::from_secs(cfg.acquire_timeout.max(1)))
            .idle_timeout(idle)
            .connect_with(options)
            .await?;
        Ok(Db {
            pool: Pool::Postgres(pool),
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies pending migrations (`migrations/<backend>/`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// True if the database answers.
    pub async fn ping(&self) -> bool {
        on_pool!(self, pool => sqlx::query("select 1").execute(pool).await.is_ok())
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Database failures are code 3; their detail is logged, never answered.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Db(Box::new(e))
    }
}
