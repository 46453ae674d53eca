//! At-least-once delivery to the phone (seed 001's ack and queue).
//!
//! Every push gets a `pid` (1, 2, …) and stays queued until the client
//! acknowledges it with `session.ack(pid)` (cumulative). Only then is the
//! XMPP stanza it came from marked handled, so the `<a h=…/>` jidgate
//! gives the XMPP server (XEP-0198, `xmpp::sm`) never covers a stanza the
//! phone has not confirmed, except an archived chat message the reader
//! leaves to the archive when the queue is full (`facade::catchup`).
//! While the WebSocket is away the queue waits for `session.resume`,
//! which replays it in order; past `facade.max_unacked` queued pushes, a
//! push from the XMPP server waits (and with it the XMPP stream:
//! backpressure, never loss).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use xmpp_parsers::jid::BareJid;

use super::envelope;

/// What goes to the WebSocket writer.
#[derive(Debug)]
pub enum Out {
    /// A reply or push, as JSON text.
    Frame(String),
    /// Close the socket (after the frames before it).
    Close,
}

/// Where a push came from: what its acknowledgement settles.
#[derive(Debug, Default)]
pub struct Origin {
    /// The inbound stanza it came from (for `SessionHandle::handled`).
    pub seq: Option<u64>,
    /// A receipt (XEP-0184) to send once the phone has the message.
    pub receipt: Option<(BareJid, String)>,
    /// The message's id in the user's archive (`facade::catchup`).
    pub archive: Option<String>,
    /// Acknowledging it moves the catch-up cursor to `archive`.
    pub moves_cursor: bool,
}

impl Origin {
    /// A push from inbound stanza `seq`.
    pub fn stanza(seq: u64) -> Origin {
        Origin {
            seq: Some(seq),
            ..Origin::default()
        }
    }
}

/// A push waiting for its acknowledgement.
#[derive(Debug)]
pub struct Pending {
    pub pid: u64,
    frame: String,
    pub origin: Origin,
}

#[derive(Default)]
struct State {
    next_pid: u64,
    queue: VecDeque<Pending>,
    out: Option<mpsc::UnboundedSender<Out>>,
    detached_at: Option<Instant>,
}

/// One facade session's push queue.
pub struct Delivery {
    state: Mutex<State>,
    room: Notify,
    max_unacked: usize,
}

impl Delivery {
    pub fn new(max_unacked: usize) -> Delivery {
        Delivery {
            state: Mutex::new(State::default()),
            room: Notify::new(),
            max_unacked: max_unacked.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a push and sends it if a socket is attached. A push from an
    /// XMPP stanza or the archive waits while the queue is full.
    pub async fn push(&self, type_: &str, data: &Value, origin: Origin) -> u64 {
        let waits = origin.seq.is_some() || origin.archive.is_some();
        let mut origin = Some(origin);
        loop {
            let room = self.room.notified();
            {
                let mut st = self.state();
                if !waits || st.queue.len() < self.max_unacked {
                    st.next_pid += 1;
                    let pid = st.next_pid;
                    let frame = envelope::push(type_, data, pid);
                    if let Some(out) = &st.out {
                        let _ = out.send(Out::Frame(frame.clone()));
                    }
                    st.queue.push_back(Pending {
                        pid,
                        frame,
                        origin: origin.take().unwrap_or_default(),
                    });
                    return pid;
                }
            }
            room.await;
        }
    }

    /// Sends a reply (or any frame not to be replayed) to the attached
    /// socket, if any.
    pub fn send(&self, out: Out) {
        if let Some(tx) = &self.state().out {
            let _ = tx.send(out);
        }
    }

    /// Acknowledges every push up to `pid`; returns them.
    pub fn ack(&self, pid: u64) -> Vec<Pending> {
        let mut st = self.state();
        let mut done = Vec::new();
        while st.queue.front().is_some_and(|p| p.pid <= pid) {
            done.extend(st.queue.pop_front());
        }
        drop(st);
        if !done.is_empty() {
            self.room.notify_waiters();
        }
        done
    }

    /// The queue holds `facade.max_unacked` pushes: one from the XMPP
    /// server would wait.
    pub fn is_full(&self) -> bool {
        self.state().queue.len() >= self.max_unacked
    }

    /// Waits until at most `n` pushes wait for acknowledgement.
    pub async fn wait_until_at_most(&self, n: usize) {
        loop {
            let room = self.room.notified();
            if self.state().queue.len() <= n {
                return;
            }
            room.await;
        }
    }

    /// The archive ids of the pushes waiting for acknowledgement.
    pub fn pending_archived(&self) -> HashSet<String> {
        let st = self.state();
        st.queue
            .iter()
            .filter_map(|p| p.origin.archive.clone())
            .collect()
    }

    /// The highest pid given out so far.
    pub fn last_pid(&self) -> u64 {
        self.state().next_pid
    }

    /// Attaches a socket: acknowledges up to `last_pid`, then replays
    /// what is still queued, in order, before any newer push.
    pub fn attach(&self, out: mpsc::UnboundedSender<Out>, last_pid: u64) -> Vec<Pending> {
        let done = self.ack(last_pid);
        let mut st = self.state();
        for p in &st.queue {
            let _ = out.send(Out::Frame(p.frame.clone()));
        }
        st.out = Some(out);
        st.detached_at = None;
        done
    }

    /// The socket went away (only if `out` is still the attached one).
    pub fn detach(&self, out: &mpsc::UnboundedSender<Out>) {
        let mut st = self.state();
        if st.out.as_ref().is_some_and(|o| o.same_channel(out)) {
            st.out = None;
            st.detached_at = Some(Instant::now());
        }
    }

    /// How long no socket has been attached (`None` while one is).
    pub fn detached_for(&self) -> Option<Duration> {
        self.state().detached_at.map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unacked_pushes_replay_in_order_on_a_new_socket() {
        let d = Delivery::new(10);
        let (tx, mut rx) = mpsc::unbounded_channel();
        d.attach(tx.clone(), 0);
        for i in 0..3 {
            d.push("newmsg", &serde_json::json!({ "i": i }), Origin::stanza(i))
                .await;
        }
        let acked = d.ack(1);
        assert_eq!(
            acked.iter().map(|p| p.origin.seq).collect::<Vec<_>>(),
            [Some(0)]
        );
        d.detach(&tx);
        while rx.try_recv().is_ok() {}
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let acked = d.attach(tx2, 2);
        assert_eq!(acked.len(), 1);
        let Out::Frame(f) = rx2.try_recv().unwrap() else {
            panic!()
        };
        assert!(f.contains("\"pid\":3"), "{f}");
        assert!(rx2.try_recv().is_err());
    }
}
