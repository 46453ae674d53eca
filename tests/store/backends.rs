//! The backends the store tests run on, a fresh migrated database of each,
//! and [`on_each_backend!`], which runs a test body once per backend and
//! reports each run on its own (`accounts::sqlite::name`,
//! `accounts::postgres::name`).

use jidgate::config::DatabaseConfig;
use jidgate::db::Db;
use tempfile::TempDir;

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database (removed with its temp dir, or with the
/// tests' PostgreSQL server).
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let (url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                (url, Some(dir))
            }
            Backend::Postgres => (
                tokio::task::spawn_blocking(crate::postgres::new_database)
                    .await
                    .unwrap(),
                None,
            ),
        };
        let db = Db::connect(&config(&url, 8)).await.unwrap();
        db.migrate().await.unwrap();
        TestDb { db, url, _dir: dir }
    }

    /// A second handle on the same database (another instance's pool).
    pub async fn another(&self) -> Db {
        Db::connect(&config(&self.url, 8)).await.unwrap()
    }
}

pub fn config(url: &str, max_connections: u32) -> DatabaseConfig {
    toml::from_str(&format!(
        "url = \"{url}\"\nmax_connections = {max_connections}\n"
    ))
    .unwrap()
}

/// Runs each named `async fn name(db: &Db)` once per backend, as
/// `sqlite::name` and `postgres::name`.
macro_rules! on_each_backend {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let t = $crate::backends::TestDb::new($crate::backends::Backend::Sqlite).await;
                    super::$test(&t).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let t = $crate::backends::TestDb::new($crate::backends::Backend::Postgres).await;
                    super::$test(&t).await
                }
            )+
        }
    };
}
pub(crate) use on_each_backend;
