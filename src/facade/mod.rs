//! The mobile JSON facade over WebSocket (`/ws`, `docs/facade.md`): phone
//! apps speak seed 003's envelope, and jidgate carries everything over
//! XMPP as that user, so facade users, bound devices and any XMPP client
//! chat with each other through the XMPP server.
//!
//! A transport adapter on top of the domains: nothing below imports it.
//!
//! - [`envelope`]: request, reply and push frames; the errnos.
//! - [`codec`]: JSON text frames, or raw deflate binary frames (`?usezlib=1`).
//! - [`session`]: one WebSocket: authentication, limits, dispatch, pings.
//! - [`live`]: the XMPP side of a session, which outlives its socket for
//!   `facade.resume_timeout`.
//! - [`inbound`]: XMPP stanzas as pushes.
//! - [`delivery`]: pids, acknowledgements, replay on resume.
//! - [`catchup`]: at login, what the archive holds after the newest
//!   message the phone acknowledged.
//! - [`names`]: uids ↔ JIDs.
//! - [`newmsg`]: what a `newmsg` push carries.
//! - [`unread`]: the unread counts, written in order per account.
//! - [`functions`]: the functions, one file per family.

pub mod catchup;
pub mod codec;
pub mod delivery;
pub mod envelope;
pub mod functions;
pub mod inbound;
pub mod live;
pub mod names;
pub mod newmsg;
pub mod session;
pub mod unread;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::app::App;
use live::{Live, lock};

/// The facade's shared state on one instance.
pub struct Facade {
    pub app: App,
    /// One slot per session (`facade.max_sessions`), held until its XMPP
    /// side ends.
    pub slots: Arc<Semaphore>,
    /// Live sessions by resume token.
    lives: Mutex<HashMap<String, Arc<Live>>>,
    /// Unread counts.
    pub unread: unread::Unread,
}

impl Facade {
    pub fn new(app: App) -> Arc<Facade> {
        let max = app.config.facade.max_sessions.max(1);
        Arc::new(Facade {
            slots: Arc::new(Semaphore::new(max)),
            lives: Mutex::default(),
            unread: unread::Unread::new(app.db.clone()),
            app,
        })
    }

    fn register(&self, live: &Arc<Live>) {
        lock(&self.lives).insert(live.resume_token.clone(), live.clone());
    }

    fn forget(&self, live: &Live) {
        lock(&self.lives).remove(&live.resume_token);
    }

    /// True if another live session of `live`'s user started on this
    /// instance (without `facade.multi_login`): logging in again would
    /// kick it off the XMPP server.
    fn replaced(&self, live: &Live) -> bool {
        !self.app.config.facade.multi_login
            && lock(&self.lives).values().any(|l| {
                l.account.id == live.account.id
                    && l.resume_token != live.resume_token
                    && !l.stop.is_cancelled()
            })
    }

    /// The live session a resume token names.
    pub fn find(&self, resume_token: &str) -> Option<Arc<Live>> {
        lock(&self.lives).get(resume_token).cloned()
    }
}

/// `/ws` query parameters.
#[derive(Debug, Deserialize)]
struct WsQuery {
    access_token: Option<String>,
    usezlib: Option<String>,
    resume_token: Option<String>,
    last_pid: Option<u64>,
}

/// The `/ws` route (nothing when `facade.enabled` is false).
pub fn router(app: &App) -> Router<App> {
    if !app.config.facade.enabled {
        return Router::new();
    }
    let facade = Facade::new(app.clone());
    Router::new().route(
        "/ws",
        get(
            move |ws: WebSocketUpgrade, q: Query<WsQuery>, State(_): State<App>| {
                upgrade(facade.clone(), ws, q)
            },
        ),
    )
}

async fn upgrade(facade: Arc<Facade>, ws: WebSocketUpgrade, Query(q): Query<WsQuery>) -> Response {
    let cfg = &facade.app.config.facade;
    let codec = codec::Codec {
        zlib: q.usezlib.as_deref() == Some("1"),
        max_frame: cfg.max_frame_bytes,
    };
    // The codec answers frames over `max_frame_bytes` with an error and
    // the session goes on; twice that (on the wire) ends the socket.
    let hard = cfg.max_frame_bytes * 2 + 4096;
    let start = session::Start {
        access_token: q.access_token,
        resume_token: q.resume_token,
        last_pid: q.last_pid.unwrap_or(0),
    };
    // Small buffers: most sessions are idle (tungstenite's defaults are
    // 128 KiB each way); frames go out as soon as they are written.
    ws.max_message_size(hard)
        .max_frame_size(hard)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session::serve(facade, socket, codec, start))
}
