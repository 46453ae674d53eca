//! At-least-once delivery to the phone (seed 001's ack and queue).
//!
//! Every push gets a `pid` (1, 2, …) and stays queued until the client
//! acknowledges it with `session.ack(pid)` (cumulative). Only then is the
//! XMPP stanza it came from marked handled, so the `<a h=…/>` jidgate
//! gives the XMPP server (XEP-0198, `xmpp::sm`) never covers a stanza the
//! phone has not confirmed, except an archived chat message the reader
//! leaves to the archive when the queue is full (`facade::catchup`).
//! While the WebSocket is away the queue waits for `session.resume`,
//! which replays it in order.
//!
//! Past `facade.max_unacked` queued pushes the queue is full. A push from
//! the XMPP server then goes to a short overflow line (a quarter of
//! `max_unacked`) that gets pids and goes out, in order, as the phone
//! acknowledges; its stanzas stay unacknowledged to the server meanwhile,
//! so nothing is lost. A push with a key (a contact's presence) replaces
//! the one of the same key waiting there: only the newest state matters.
//! Only when the overflow line is full too does a push wait (and with it
//! the XMPP stream: backpressure, never loss). Chat states are dropped
//! while the queue is full (`facade::inbound`), and archived chat
//! messages are left to the archive (`facade::catchup`), so neither
//! comes this far.

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

/// A push from the XMPP server waiting for room in the queue (no pid yet).
#[derive(Debug)]
struct Overflow {
    type_: String,
    data: Value,
    origin: Origin,
    key: Option<String>,
}

#[derive(Default)]
struct State {
    next_pid: u64,
    queue: VecDeque<Pending>,
    overflow: VecDeque<Overflow>,
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
    /// XMPP stanza or the archive waits while the queue is full (a stanza's
    /// in the overflow line while that has room).
    pub async fn push(&self, type_: &str, data: &Value, origin: Origin) {
        self.push_keyed(type_, data, origin, None).await;
    }

    /// [`Delivery::push`]; a push from an XMPP stanza with a `key`
    /// replaces the overflowed push of the same key, if one waits, and
    /// returns that push's origin: its stanza is settled by this one.
    pub async fn push_keyed(
        &self,
        type_: &str,
        data: &Value,
        origin: Origin,
        key: Option<String>,
    ) -> Option<Origin> {
        let waits = origin.seq.is_some() || origin.archive.is_some();
        // Only stanzas overflow: the catch-up pushes as room comes.
        let overflows = origin.seq.is_some();
        let mut origin = Some(origin);
        loop {
            let room = self.room.notified();
            {
                let mut st = self.state();
                if !waits || (st.queue.len() < self.max_unacked && st.overflow.is_empty()) {
                    let origin = origin.take().unwrap_or_default();
                    st.enqueue(type_, data, origin);
                    return None;
                }
                if overflows {
                    if let Some(k) = &key
                        && let Some(o) = st.overflow.iter_mut().find(|o| o.key.as_ref() == Some(k))
                    {
                        o.data = data.clone();
                        let origin = origin.take().unwrap_or_default();
                        return Some(std::mem::replace(&mut o.origin, origin));
                    }
                    if st.overflow.len() < self.overflow_room() {
                        st.overflow.push_back(Overflow {
                            type_: type_.to_owned(),
                            data: data.clone(),
                            origin: origin.take().unwrap_or_default(),
                            key,
                        });
                        return None;
                    }
                }
            }
            room.await;
        }
    }

    /// How many pushes the overflow line holds.
    fn overflow_room(&self) -> usize {
        (self.max_unacked / 4).max(1)
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
        while st.queue.len() < self.max_unacked
            && let Some(o) = st.overflow.pop_front()
        {
            st.enqueue(&o.type_, &o.data, o.origin);
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
        let st = self.state();
        st.queue.len() >= self.max_unacked || !st.overflow.is_empty()
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

    /// The archive ids of the pushes waiting for acknowledgement (or for
    /// room).
    pub fn pending_archived(&self) -> HashSet<String> {
        let st = self.state();
        let queued = st.queue.iter().map(|p| &p.origin);
        queued
            .chain(st.overflow.iter().map(|o| &o.origin))
            .filter_map(|o| o.archive.clone())
            .collect()
    }

    /// Lets the waiting pushes of archived messages from the server move
    /// the catch-up cursor when acknowledged, unless a push from the
    /// archive (a catch-up's) waits too: then a newer message acknowledged
    /// first could carry the cursor past it. Whether they may.
    pub fn release_cursor(&self) -> bool {
        let mut st = self.state();
        let from_archive = |o: &Origin| o.seq.is_none() && o.archive.is_some();
        if st.queue.iter().any(|p| from_archive(&p.origin)) {
            return false;
        }
        let State {
            queue, overflow, ..
        } = &mut *st;
        let waiting = queue
            .iter_mut()
            .map(|p| &mut p.origin)
            .chain(overflow.iter_mut().map(|o| &mut o.origin));
        for o in waiting {
            if o.archive.is_some() {
                o.moves_cursor = true;
            }
        }
        true
    }

    /// How many pushes wait in the overflow line (no pid yet).
    pub fn overflowed(&self) -> usize {
        self.state().overflow.len()
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

impl State {
    /// Gives a push its pid, queues it and sends it if a socket is attached.
    fn enqueue(&mut self, type_: &str, data: &Value, origin: Origin) {
        self.next_pid += 1;
        let pid = self.next_pid;
        let frame = envelope::push(type_, data, pid);
        if let Some(out) = &self.out {
            let _ = out.send(Out::Frame(frame.clone()));
        }
        self.queue.push_back(Pending { pid, frame, origin });
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

    /// `msgack` pushes `{i}` from stanzas `i`, in order.
    async fn receipts(d: &Delivery, ids: std::ops::Range<u64>) {
        for i in ids {
            d.push("msgack", &serde_json::json!({ "i": i }), Origin::stanza(i))
                .await;
        }
    }

    fn frames(rx: &mut mpsc::UnboundedReceiver<Out>) -> Vec<Value> {
        let mut v = Vec::new();
        while let Ok(Out::Frame(f)) = rx.try_recv() {
            v.push(serde_json::from_str(&f).unwrap());
        }
        v
    }

    #[tokio::test]
    async fn a_full_queue_overflows_in_order_and_sends_as_room_comes() {
        let d = Delivery::new(8);
        let (tx, mut rx) = mpsc::unbounded_channel();
        d.attach(tx, 0);
        receipts(&d, 0..10).await;
        // 8 queued and sent, 2 waiting without pids.
        assert_eq!(frames(&mut rx).len(), 8);
        assert_eq!(d.overflowed(), 2);
        assert!(d.is_full());
        // A catch-up push (from the archive) waits behind them.
        let archived = Origin {
            archive: Some("A".into()),
            ..Origin::default()
        };
        let waiting = tokio::time::timeout(
            Duration::from_millis(50),
            d.push("newmsg", &serde_json::json!({"i": "A"}), archived),
        )
        .await;
        assert!(waiting.is_err(), "an archive push must wait for room");
        d.ack(3);
        let sent = frames(&mut rx);
        let got: Vec<(u64, u64)> = sent
            .iter()
            .map(|f| (f["pid"].as_u64().unwrap(), f["data"]["i"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, [(9, 8), (10, 9)]);
        assert_eq!(d.overflowed(), 0);
        assert!(!d.is_full());
    }

    #[tokio::test]
    async fn a_keyed_push_replaces_the_one_waiting_and_returns_its_origin() {
        let d = Delivery::new(8);
        receipts(&d, 0..8).await;
        let key = || Some("presence\nb@x".to_owned());
        let on = serde_json::json!({"online": true});
        let off = serde_json::json!({"online": false});
        assert!(
            d.push_keyed("presence", &on, Origin::stanza(10), key())
                .await
                .is_none()
        );
        d.push("msgack", &serde_json::json!({"i": 11}), Origin::stanza(11))
            .await;
        let older = d
            .push_keyed("presence", &off, Origin::stanza(12), key())
            .await;
        assert_eq!(older.and_then(|o| o.seq), Some(10));
        assert_eq!(d.overflowed(), 2);
        let (tx, mut rx) = mpsc::unbounded_channel();
        d.attach(tx, 2);
        let sent = frames(&mut rx);
        let sent = &sent[6..];
        // The presence keeps its place in line, with the newest state.
        assert_eq!(sent[0]["type"], "presence");
        assert_eq!(sent[0]["data"]["online"], false);
        assert_eq!(sent[1]["data"]["i"], 11);
        let acked = d.ack(10);
        let seqs: Vec<_> = acked.iter().map(|p| p.origin.seq).collect();
        assert_eq!(seqs[6..], [Some(12), Some(11)]);
    }

    #[tokio::test]
    async fn a_push_waits_when_the_overflow_line_is_full_too() {
        let d = Delivery::new(4);
        // 4 queued, 1 overflowed (a quarter of 4).
        receipts(&d, 0..5).await;
        let data = serde_json::json!({"i": 5});
        let sixth = d.push("msgack", &data, Origin::stanza(5));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sixth)
                .await
                .is_err()
        );
        // Replies and session pushes never wait.
        d.push("xmpp_state", &serde_json::json!({}), Origin::default())
            .await;
        assert_eq!(d.last_pid(), 5);
    }
}
