//! The `[facade]` section: the mobile JSON facade over WebSocket (`/ws`).

use serde::Deserialize;

/// Limits and switches of the WebSocket facade (see `docs/facade.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FacadeConfig {
    /// Serve `/ws` at all.
    pub enabled: bool,
    /// Most facade sessions (WebSockets with their XMPP sessions) at once.
    pub max_sessions: usize,
    /// Largest frame accepted from a client, in bytes (after inflating).
    pub max_frame_bytes: usize,
    /// Longest message `content` (and other free texts), in characters.
    pub max_content_chars: usize,
    /// Most items one list call returns (`count` is capped to this).
    pub max_list_count: usize,
    /// Requests per second one session may send (burst of the same size);
    /// beyond, errno 4 ("too fast").
    pub requests_per_second: u32,
    /// Seconds without any frame from the client (requests, pongs) before
    /// the WebSocket is closed; jidgate pings at a third of it.
    pub idle_timeout: u64,
    /// Seconds the XMPP session is kept after the WebSocket drops, for
    /// `session.resume`.
    pub resume_timeout: u64,
    /// Pushes not yet acknowledged by the client before the queue is
    /// full: jidgate then leaves archived chat messages to the archive
    /// (for a catch-up in the session), drops chat states, and lets other
    /// stanzas wait in an overflow line of a quarter as many; past that it
    /// stops reading from the XMPP server (backpressure).
    pub max_unacked: usize,
    /// Most archived messages one login catches up on (pushed as
    /// `newmsg` with `delayed`) after the newest one the phone
    /// acknowledged; 0 turns the catch-up off (docs/facade.md).
    pub catchup_max: usize,
    /// Several facade logins of one user at once, each with its own XMPP
    /// resource; when false, a new login replaces the previous one.
    pub multi_login: bool,
    /// Refuse messages to users that are not in the sender's roster.
    pub friends_only: bool,
    /// `user.search` also matches user-name prefixes (personal data: off).
    pub search_prefix: bool,
    /// Seconds a facade session keeps trying to log in again after its
    /// XMPP stream dropped before it ends (push `session_end`).
    pub reconnect_timeout: u64,
    /// First delay before logging in again, in milliseconds; it doubles
    /// with each failed attempt (with jitter: each delay is drawn from its
    /// upper half).
    pub reconnect_delay_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    pub reconnect_max_delay_ms: u64,
}

impl Default for FacadeConfig {
    fn default() -> FacadeConfig {
        FacadeConfig {
            enabled: true,
            max_sessions: 10_000,
            max_frame_bytes: 64 * 1024,
            max_content_chars: 4000,
            max_list_count: 100,
            requests_per_second: 20,
            idle_timeout: 120,
            resume_timeout: 120,
            max_unacked: 400,
            catchup_max: 2000,
            multi_login: false,
            friends_only: false,
            search_prefix: false,
            reconnect_timeout: 300,
            reconnect_delay_ms: 500,
            reconnect_max_delay_ms: 30_000,
        }
    }
}
