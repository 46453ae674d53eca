//! The storage seam: [`Db`], one handle over the pool of one backend, and
//! every query jidgate makes, one file per entity.
//!
//! Each query is written once, in SQL that SQLite and PostgreSQL both
//! accept (`$1`…`$n` placeholders, `returning`, `on conflict`), inside
//! `on_pool!`, which expands the same body for each backend's pool. Today
//! there is one backend, SQLite; PostgreSQL is one more [`Pool`] arm, one
//! more line in `on_pool!` and a second migrations folder
//! (`migrations/postgres/`), and nothing changes in the callers. Rows are
//! typed structs; states and user types are enums stored as text and
//! integers. No other module uses sqlx.

/// Runs `$body` with `$pool` bound to the backend's pool (a reference to
/// `sqlx::Pool<DB>`), whichever backend `$db` has: the body is written once
/// and compiled for each.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
        }
    };
}

pub mod account;
pub mod audit;
pub mod bind_code;
pub mod binding;
pub mod captcha;
pub mod console;
pub mod nonce;
pub mod operator;
pub mod repair_attempt;
pub mod session;
pub mod stats;

use std::str::FromStr;
use std::time::Duration;

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
}

impl Db {
    /// Opens (creating if needed) the database named by `database.url`.
    /// Does not migrate.
    pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<Db> {
        anyhow::ensure!(
            cfg.url.starts_with("sqlite:"),
            "database.url must be sqlite://PATH (got {:?})",
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

    /// Applies pending migrations (`migrations/<backend>/`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
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
