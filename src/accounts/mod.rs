//! Accounts: who exists and how they prove it. Every account has a JID on
//! the XMPP server; the database row is written as `creating` before the
//! JID is created and `active` after; cancelling marks it `deleting` before
//! the JID is deleted and removes it after. A crash at any point leaves a
//! row the reconciler finishes or undoes.
//!
//! - [`routes`]: `/register`, `/login`, `/cancel`, `/get_users`,
//!   `/change_password`, and the session endpoints `/refresh_token`,
//!   `/logout`, `/verify_access_token`;
//! - [`register`]: creating an account and its JID;
//! - [`credentials`]: the credential check of login, cancel and password
//!   change;
//! - [`cancel`]: deleting an account, its JID and its bindings;
//! - [`password`]: password changes and new JID passwords;
//! - [`lookup`]: public information by name.

pub mod cancel;
pub mod credentials;
pub mod lookup;
pub mod password;
pub mod register;
pub mod routes;

pub use cancel::{delete_account, finish_deletion};
pub use lookup::{PublicUserInfo, lookup_users};
pub use password::rotate_jid_password;
pub use register::{create, new_localpart, undo_creation};
pub use routes::{ApiDoc, router};
