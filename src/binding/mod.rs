//! Binding phones (and WeChat users) to the devices they own, as real XMPP
//! roster entries: a mutual presence subscription (`both`), the device in
//! the owner's group `devices`, the owner in the device's group `owners`.
//! The database says who is bound; both rosters are made to match.
//!
//! - [`routes`]: the endpoints;
//! - [`codes`]: one-time bind codes;
//! - [`pair`]: the pair engine: the handshake, dissolving, pair state, and
//!   list calls run concurrently;
//! - [`sessions`]: XMPP sessions as accounts (login with the stored JID
//!   password, and its repair), shared within one operation;
//! - [`view`]: an account's roster beside the database.

pub mod codes;
pub mod pair;
pub mod routes;
pub mod sessions;
pub mod view;

pub use pair::{
    GROUP_DEVICES, GROUP_OWNERS, PairState, accounts_of, counterpart_of, dissolve, establish,
    forget_account, pair_state, unbind_row,
};
pub use routes::{ALIASES, ApiDoc, router};
pub use sessions::{Sessions, login_as, login_with};
