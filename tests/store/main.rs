//! Store behaviour tests: the storage seam (`jidgate::db`) against each
//! backend, SQLite and PostgreSQL, with the same test bodies
//! ([`on_each_backend!`]), and the two migration folders compared
//! (`schema`). PostgreSQL is the tests' own server (`support/postgres.rs`).

#[path = "../support/postgres.rs"]
mod postgres;

mod backends;

mod accounts;
mod concurrency;
mod schema;
mod sessions;
mod small_tables;
