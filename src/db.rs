//! The database: a SQLite file through sqlx, schema in `migrations/`,
//! applied at start-up.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::DatabaseConfig;

/// The database handle every module uses.
pub type Db = SqlitePool;

/// Opens (creating if needed) the database. Does not migrate.
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
    Ok(pool)
}

/// Applies pending migrations.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations").run(db).await?;
    Ok(())
}
