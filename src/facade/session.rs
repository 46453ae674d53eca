//! One WebSocket: authentication (the `access_token` query parameter, or
//! a first frame `session.start` / `session.resume`; any other first frame
//! is errno 1 and the socket closes), then requests dispatched
//! concurrently under the session's limits, replies and pushes written in
//! the order they are ready, pings, the idle timeout and the token's
//! expiry. When the socket goes, the XMPP side waits
//! `facade.resume_timeout` for `session.resume`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::Facade;
use super::catchup;
use super::codec::{Codec, Incoming};
use super::delivery::{Origin, Out};
use super::envelope::{self, Failure, Request, errno};
use super::functions;
use super::inbound;
use super::live::{Live, lock};
use crate::clock::now;

/// How the socket asked to start.
#[derive(Debug, Default)]
pub struct Start {
    pub access_token: Option<String>,
    pub resume_token: Option<String>,
    pub last_pid: u64,
}

/// Requests of one socket in progress at once.
const IN_FLIGHT: usize = 32;

/// Serves one WebSocket until it closes.
pub async fn serve(facade: Arc<Facade>, socket: WebSocket, codec: Codec, start: Start) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let Ok(_slot) = facade.slots.clone().try_acquire_owned() else {
        let f = Failure::new(errno::BUSY, "too many sessions, retry later");
        let _ = sink
            .send(codec.encode(envelope::reply(Value::Null, Err(f))))
            .await;
        let _ = sink.send(Message::Close(None)).await;
        return;
    };
    let cfg = &facade.app.config.facade;
    let mut conn = Conn {
        facade: facade.clone(),
        out: out.clone(),
        live: None,
        bucket: Bucket::new(cfg.requests_per_second),
        in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
    };
    // Starting, requests and token checks are boxed: this task lives as
    // long as the socket and a future is as large as its largest state;
    // inline (the XMPP log-in above all) they made every idle session's
    // task about 17 KB.
    if let Some(token) = start.access_token.clone() {
        let started = match start.resume_token.as_deref() {
            Some(rt) => Box::pin(conn.resume(token.into(), rt, start.last_pid)).await,
            None => Box::pin(conn.start(token.into())).await.map(|_| ()),
        };
        if let Err(f) = started {
            let _ = out.send(Out::Frame(envelope::reply(Value::Null, Err(f))));
            let _ = out.send(Out::Close);
        }
    }
    let idle = Duration::from_secs(cfg.idle_timeout.max(3));
    let mut tick = tokio::time::interval(idle / 3);
    tick.tick().await;
    let mut last_seen = Instant::now();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else { break };
                last_seen = Instant::now();
                match codec.decode(frame) {
                    Ok(Incoming::Data(bytes)) => Box::pin(conn.request(&bytes)).await,
                    Ok(Incoming::Control) => {}
                    Ok(Incoming::Close) => break,
                    Err(f) => conn.reply(Value::Null, Err(f)),
                }
            }
            next = out_rx.recv() => match next {
                Some(Out::Frame(f)) => {
                    if sink.send(codec.encode(f)).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            _ = tick.tick() => {
                if last_seen.elapsed() > idle {
                    break;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
                if let Some(live) = &conn.live {
                    Box::pin(check_token(live)).await;
                }
            }
        }
    }
    if let Some(live) = conn.live.take() {
        live.delivery.detach(&out);
        if !live.stop.is_cancelled() {
            tokio::spawn(expire(live, Duration::from_secs(cfg.resume_timeout)));
        }
    }
}

/// Past the resume timeout without a socket, the XMPP session ends,
/// acknowledging only what the phone acknowledged.
async fn expire(live: Arc<Live>, after: Duration) {
    tokio::time::sleep(after).await;
    if live.delivery.detached_for().is_some_and(|d| d >= after) {
        live.end();
    }
}

/// An expired or revoked token ends the session (push `session_end`).
async fn check_token(live: &Arc<Live>) {
    let token = lock(&live.token).0.clone();
    let tokens = &live.app().tokens;
    if tokens.verify(token.expose_secret(), now()).await.is_err() {
        let data = json!({"reason": "access token expired or revoked"});
        live.delivery
            .push("session_end", &data, Origin::default())
            .await;
        live.delivery.send(Out::Close);
        live.end();
    }
}

/// A socket's state.
struct Conn {
    facade: Arc<Facade>,
    out: mpsc::UnboundedSender<Out>,
    live: Option<Arc<Live>>,
    bucket: Bucket,
    in_flight: Arc<Semaphore>,
}

impl Conn {
    fn reply(&self, cdata: Value, outcome: Result<Value, Failure>) {
        let _ = self.out.send(Out::Frame(envelope::reply(cdata, outcome)));
    }

    async fn request(&mut self, bytes: &[u8]) {
        let req = match envelope::parse(bytes) {
            Ok(req) => req,
            Err((f, cdata)) => {
                if self.live.is_none() {
                    return self.refuse(cdata);
                }
                return self.reply(cdata, Err(f));
            }
        };
        if !self.bucket.take() {
            let f = Failure::new(errno::TOO_FAST, "too fast");
            return self.reply(req.cdata, Err(f));
        }
        let Some(live) = self.live.clone() else {
            return self.first(req).await;
        };
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let out = self.out.clone();
        tokio::spawn(async move {
            let Request { func, parm, cdata } = req;
            let outcome = functions::call(&live, &func, &parm).await;
            let _ = out.send(Out::Frame(envelope::reply(cdata, outcome)));
            drop(permit);
        });
    }

    /// The first frame: `session.start` or `session.resume` with an
    /// `access_token`; anything else is errno 1 and the end.
    async fn first(&mut self, req: Request) {
        let token = match req.parm.get("access_token") {
            Some(Value::String(t)) => SecretString::from(t.clone()),
            _ => return self.refuse(req.cdata),
        };
        let outcome = match req.func.as_str() {
            "session.start" => match self.start(token).await {
                Ok(live) => functions::session::first_screen(&live).await,
                Err(f) => Err(f),
            },
            "session.resume" => {
                let rt = match req.parm.get("resume_token") {
                    Some(Value::String(t)) => t.clone(),
                    _ => return self.reply(req.cdata, Err(Failure::parm("resume_token"))),
                };
                let last = req
                    .parm
                    .get("last_pid")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                match self.resume(token, &rt, last).await {
                    Ok(()) => Ok(json!({"resumed": true})),
                    Err(f) => Err(f),
                }
            }
            _ => return self.refuse(req.cdata),
        };
        let failed = outcome.is_err();
        self.reply(req.cdata, outcome);
        if failed && self.live.is_none() {
            let _ = self.out.send(Out::Close);
        }
    }

    fn refuse(&self, cdata: Value) {
        let f = Failure::new(
            errno::SESSION,
            "start with session.start and an access_token",
        );
        self.reply(cdata, Err(f));
        let _ = self.out.send(Out::Close);
    }

    /// Checks the token and logs in to XMPP as its user.
    async fn start(&mut self, token: SecretString) -> Result<Arc<Live>, Failure> {
        let info = self
            .facade
            .app
            .tokens
            .verify(token.expose_secret(), now())
            .await?;
        let started = now();
        let (live, session) = Live::login(self.facade.clone(), token, info).await?;
        let sweep = catchup::sweep_begin(&live, session.software(), started);
        tokio::spawn(inbound::read(live.clone(), session));
        // Before initial presence, while the stream is still quiet; the
        // catch-up claims what it will push before the server's offline
        // delivery starts.
        let (user, found) = tokio::join!(functions::user::own_info(&live), catchup::collect(&live));
        *lock(&live.first_user) = user.ok();
        live.announce().await?;
        let acked = live.delivery.attach(self.out.clone(), 0);
        functions::session::acknowledged(&live, acked);
        catchup::deliver(&live, found);
        catchup::sweep(&live, sweep);
        self.live = Some(live.clone());
        Ok(live)
    }

    /// Takes over a live session of the token's own user.
    async fn resume(&mut self, token: SecretString, rt: &str, last: u64) -> Result<(), Failure> {
        let info = self
            .facade
            .app
            .tokens
            .verify(token.expose_secret(), now())
            .await?;
        let live = self
            .facade
            .find(rt)
            .filter(|l| !l.stop.is_cancelled())
            .ok_or_else(|| Failure::new(errno::NO_TARGET, "no such session: start a new one"))?;
        if live.account.id != info.account_id {
            return Err(Failure::new(errno::NOT_PERMITTED, "not your session"));
        }
        *lock(&live.token) = (token, info);
        let acked = live.delivery.attach(self.out.clone(), last);
        functions::session::acknowledged(&live, acked);
        self.live = Some(live);
        Ok(())
    }
}

/// Requests per second, with a burst of the same size.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_second: u32) -> Bucket {
        let rate = f64::from(per_second.max(1));
        Bucket {
            rate,
            tokens: rate,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let t = Instant::now();
        self.tokens =
            (self.tokens + t.duration_since(self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = t;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
