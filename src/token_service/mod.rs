//! The token service: newline-delimited JSON over TCP (TLS when configured),
//! for other back-end services. In named parts, as mini-redis has them:
//! [`server`] accepts under a connection cap and hands connections to
//! threads; [`connection`] runs one (deadlines, requests in flight, caps
//! shared through [`limits`]);
//! [`request`] parses a line once into a [`request::Request`] (with
//! [`scanner`] as the fast path of the common verification line);
//! [`reply`] writes the answers.
//!
//! One JSON object per line; each carries a client `seq` (number or string)
//! that the reply echoes. Requests are pipelined: a client may send many
//! before reading, and replies may come back out of order (a verification
//! answered from memory overtakes one that needs the database).
//!
//! A connection first sends a signed `hello` (an app of kind `service`,
//! signed like an HTTP request: every member but `param_sign`, canonical
//! form, `ts` and `nonce` rules). Then: `verify_access_token`, `get_users`,
//! `ping`. Bad lines get an error reply and the connection stays usable.
//!
//! Limits, so that connections that authenticate nothing cannot hold the
//! service: a connection must complete a good hello within
//! `token_service.hello_timeout` of being accepted (TLS handshake included);
//! one that completes no request line for `token_service.idle_timeout` is
//! closed (bytes without a newline do not count); at most
//! `token_service.max_connections` are open over all threads (one more gets
//! a code 13 line and is closed); a connection has at most
//! `token_service.max_in_flight` requests waiting for the database, and the
//! service at most `token_service.max_db_tasks` look-ups in progress: at
//! either cap the connection handles and reads nothing more until one ends.

pub mod connection;
pub mod limits;
pub mod reply;
pub mod request;
pub mod scanner;
pub mod server;

pub use server::serve;
