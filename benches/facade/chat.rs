//! Chat throughput and latency, facade → XMPP → facade against a direct
//! XMPP client → client path through the same Prosody.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jidgate::xmpp::chat::{self, Chat, Incoming, Kind, Media};
use jidgate::xmpp::{Connector, Session, SessionOptions};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Lang, Message};
use xmpp_parsers::presence::Presence;
use xmpp_parsers::stanza::Stanza;

use crate::setup::Account;

/// Messages timed one at a time (latency).
pub const LATENCY_N: usize = 1000;
/// Messages sent with a window in flight (throughput). Together with
/// LATENCY_N under Prosody's default archive limit per user with internal
/// storage (`storage_archive_item_limit`, 10,000), past which every new
/// message makes Prosody rewrite the archive (seconds-long stalls); with
/// receipts (archived too) a user archives two items per message.
pub const THROUGHPUT_N: usize = 3000;
const WINDOW: usize = 100;

/// What one path achieved.
pub struct Figures {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// The median of `v` (the upper one of an even count).
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

impl Figures {
    /// Each figure's median over `runs`.
    pub fn median(runs: &[Figures]) -> Figures {
        Figures {
            per_sec: median(runs.iter().map(|f| f.per_sec).collect()),
            p50: median(runs.iter().map(|f| f.p50).collect()),
            p99: median(runs.iter().map(|f| f.p99).collect()),
        }
    }
}

/// Sends message `i`.
type Send = Box<dyn FnMut(usize) -> futures::future::BoxFuture<'static, ()> + std::marker::Send>;

/// Times a path: `send(i)` sends message i; `arrivals` says when i arrived.
async fn measure(
    mut send: Send,
    arrivals: &mut mpsc::UnboundedReceiver<(usize, Instant)>,
) -> Figures {
    let mut lat = Vec::with_capacity(LATENCY_N);
    let mut late = 0;
    for i in 0..LATENCY_N {
        let t0 = Instant::now();
        send(i).await;
        // A message more than 5 s late is reported (and waited for).
        let (j, t) = loop {
            match tokio::time::timeout(Duration::from_secs(5), arrivals.recv()).await {
                Ok(got) => break got.expect("arrival"),
                Err(_) => {
                    late += 1;
                    eprintln!("message {i} not there after {:?}", t0.elapsed());
                    assert!(late < 5, "messages do not arrive");
                }
            }
        };
        assert_eq!(i, j, "messages out of order");
        lat.push(t - t0);
    }
    lat.sort_unstable();
    let base = LATENCY_N;
    let start = Instant::now();
    let mut got = 0;
    for i in 0..THROUGHPUT_N {
        while i - got >= WINDOW {
            arrivals.recv().await.expect("arrival");
            got += 1;
        }
        send(base + i).await;
        if std::env::var("FACADE_BENCH_DEBUG").is_ok() && i % 1000 == 0 {
            eprintln!("throughput {i} {:?}", start.elapsed());
        }
    }
    let mut last = start;
    while got < THROUGHPUT_N {
        last = arrivals.recv().await.expect("arrival").1;
        got += 1;
    }
    Figures {
        per_sec: THROUGHPUT_N as f64 / (last - start).as_secs_f64(),
        p50: lat[lat.len() / 2],
        p99: lat[lat.len() * 99 / 100],
    }
}

/// `a` and `b` logged in as plain XMPP clients (lossless, with or without
/// stream management), available, their initial presences handled.
async fn online_pair(
    conn: &Connector,
    a: &Account,
    b: &Account,
    stream_management: bool,
) -> (Session, Session) {
    let opts = SessionOptions {
        lossless: true,
        stream_management,
    };
    let login = |u: &Account| {
        let jid = BareJid::new(&u.jid).unwrap();
        let pw = u.jid_pwd.clone();
        async move { conn.login_with(&jid, &pw, "bench", opts).await.unwrap() }
    };
    let sa = login(a).await;
    let sb = login(b).await;
    sa.send(Presence::available()).await.unwrap();
    sb.send(Presence::available()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    (sa, sb)
}

/// Message `i` as the facade sends it (`chat::build`): text `i`, id `m{i}`.
fn facade_stanza_for(to: &BareJid, i: usize) -> Message {
    let c = Chat {
        id: format!("m{i}"),
        kind: Kind::Text,
        content: i.to_string(),
        media: Media::default(),
        location: None,
    };
    chat::build(to, &c)
}

/// Two plain XMPP clients (jidgate's own session layer), no stream
/// management, no receipts: bare `<body/>` messages, or with
/// `facade_stanza` the facade's own message stanza (`chat::build`: a
/// receipt request, a marker, a chat state), so that the price of those
/// elements at the XMPP server shows apart from the facade's.
pub async fn direct(conn: &Connector, a: &Account, b: &Account, facade_stanza: bool) -> Figures {
    let (sa, mut sb) = online_pair(conn, a, b, false).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(st) = sb.next_event().await {
            if let Stanza::Message(m) = st
                && let Some(i) = m.bodies.values().next().and_then(|b| b.parse().ok())
            {
                let _ = tx.send((i, Instant::now()));
            }
        }
    });
    let to = Jid::from(BareJid::new(&b.jid).unwrap());
    let handle = sa.handle();
    let send: Send = Box::new(move |i| {
        let (handle, to) = (handle.clone(), to.clone());
        Box::pin(async move {
            let m = if facade_stanza {
                facade_stanza_for(&to.to_bare(), i)
            } else {
                let mut m = Message::chat(Some(to));
                m.bodies.insert(Lang::default(), i.to_string());
                m
            };
            handle.send(m).await.unwrap();
        })
    });
    let figures = measure(send, &mut rx).await;
    drop(sa);
    figures
}

/// Two plain XMPP clients doing what the facade does for its users: the
/// same message stanzas (a receipt request, jidgate's own builder),
/// XEP-0198 stream management, and a receipt for every message received.
pub async fn direct_with_receipts(conn: &Connector, a: &Account, b: &Account) -> Figures {
    let (mut sa, mut sb) = online_pair(conn, a, b, true).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let from_a = BareJid::new(&a.jid).unwrap();
    let hb = sb.handle();
    tokio::spawn(async move {
        while let Some(inbound) = sb.next_inbound().await {
            if let Stanza::Message(m) = &inbound.stanza
                && let Some(Incoming::Chat { chat, .. }) = chat::read(m, String::new)
                && let Ok(i) = chat.content.parse()
            {
                let _ = tx.send((i, Instant::now()));
                let _ = hb.send(chat::receipt(&from_a, &chat.id)).await;
            }
            hb.handled(inbound.seq);
        }
    });
    // a reads (and handles) the receipts.
    let handle = sa.handle();
    let ha = sa.handle();
    tokio::spawn(async move {
        while let Some(inbound) = sa.next_inbound().await {
            ha.handled(inbound.seq);
        }
    });
    let to = BareJid::new(&b.jid).unwrap();
    let send: Send = Box::new(move |i| {
        let (handle, to) = (handle.clone(), to.clone());
        Box::pin(async move {
            handle.send(facade_stanza_for(&to, i)).await.unwrap();
        })
    });
    measure(send, &mut rx).await
}

/// Two facade users over WebSockets; both acknowledge every `every`
/// pushes (cumulative `session.ack`). jidgate sends the receipts
/// (XEP-0184) of the messages an acknowledgement covers when it comes, so
/// the cadence shapes the latency tail.
pub async fn facade(http_port: u16, a: &Account, b: &Account, every: u64) -> Figures {
    let url = |u: &Account| format!("ws://127.0.0.1:{http_port}/ws?access_token={}", u.token);
    // TCP_NODELAY on the client sockets too (a phone's stack decides its
    // own; Nagle would add up to 40 ms to small frames).
    let connect = |u| tokio_tungstenite::connect_async_with_config(u, None, true);
    let (wa, _) = connect(url(a)).await.unwrap();
    let (wb, _) = connect(url(b)).await.unwrap();
    let (mut sink_a, mut read_a) = wa.split();
    let (mut sink_b, mut read_b) = wb.split();
    let ping = json!({"func": "session.ping", "cdata": "ready"}).to_string();
    for (sink, read) in [(&mut sink_a, &mut read_a), (&mut sink_b, &mut read_b)] {
        sink.send(WsMessage::Text(ping.clone().into()))
            .await
            .unwrap();
        while let Some(Ok(f)) = read.next().await {
            if f.to_text().is_ok_and(|t| t.contains("\"ready\"")) {
                break;
            }
        }
    }
    // Both initial presences handled before the first message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // a's replies are dropped; its pushes (receipts) are acknowledged
    // like b's.
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Some(Ok(f)) = read_a.next().await {
            let Ok(t) = f.to_text() else { continue };
            let f: Value = serde_json::from_str(t).unwrap_or_default();
            if let Some(pid) = f["pid"].as_u64().filter(|p| p % every == 0) {
                let _ = ack_tx.send(pid);
            }
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = read_b.next().await {
            let t = match frame {
                Ok(WsMessage::Text(t)) => t,
                Ok(WsMessage::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let f: Value = serde_json::from_str(&t).unwrap();
            if std::env::var("FACADE_BENCH_DEBUG").is_ok() {
                eprintln!("b got {f}");
            }
            if f["type"] != "newmsg" {
                continue;
            }
            let i = f["data"]["message"]["content"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let _ = tx.send((i, Instant::now()));
            let pid = f["pid"].as_u64().unwrap();
            if pid % every == 0 {
                let ack = json!({"func": "session.ack", "parm": {"pid": pid}, "cdata": pid});
                if sink_b
                    .send(WsMessage::Text(ack.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    });
    let to = b.name.clone();
    let sink = std::sync::Arc::new(tokio::sync::Mutex::new(sink_a));
    let acker = sink.clone();
    tokio::spawn(async move {
        while let Some(pid) = ack_rx.recv().await {
            let ack = json!({"func": "session.ack", "parm": {"pid": pid}, "cdata": "ack"});
            let frame = WsMessage::Text(ack.to_string().into());
            if acker.lock().await.send(frame).await.is_err() {
                break;
            }
        }
    });
    let send: Send = Box::new(move |i| {
        let (sink, to) = (sink.clone(), to.clone());
        Box::pin(async move {
            let req = json!({"func": "message.send", "parm": {"to": to, "content": i.to_string()}, "cdata": i});
            sink.lock()
                .await
                .send(WsMessage::Text(req.to_string().into()))
                .await
                .unwrap();
        })
    });
    measure(send, &mut rx).await
}
