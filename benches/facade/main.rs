//! The facade against a direct XMPP path, and its memory per idle session.
//!
//! Run: `cargo bench --bench facade` (needs `prosody`; `scripts/test.sh`
//! installs it). Optional: `FACADE_BENCH_SESSIONS=1000,10000` (the idle
//! session counts measured, cumulative), `FACADE_BENCH_CHAT=0` (memory
//! only).
//!
//! 1. Starts a Prosody of its own from `config/prosody.cfg.lua` and jidgate
//!    as a child process (`jidgate serve`, release build), so jidgate's
//!    memory is measured apart from the clients'.
//! 2. Chat, four paths through the same Prosody, one after the other:
//!    two plain XMPP clients (jidgate's own session layer, TCP_NODELAY) and
//!    two facade users (WebSocket → jidgate → Prosody → jidgate →
//!    WebSocket), acknowledging every push, and again acknowledging every
//!    20 pushes (`facade ack/20`); between them, two
//!    more plain-client paths: the facade's message stanza without receipts
//!    (`direct+stanza`), and that stanza with XEP-0198 and a receipt for
//!    every message (`direct+rcpt`). Latency: messages
//!    one at a time, p50 and p99 from send to arrival. Throughput: messages
//!    with 100 in flight.
//! 3. Idle sessions: registers device accounts, then opens sessions up to
//!    each count and reads jidgate's and Prosody's VmRSS before and after:
//!    the difference over the count is the memory per session.

mod chat;
mod memory;
mod setup;

use setup::Servers;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("install the rustls provider");
    // Each session is two sockets in jidgate (WebSocket, XMPP): room for
    // 10,000 needs more than 20,000 open files. Raise the limit if we may
    // (children inherit it); else measure as many as fit, and say so.
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, 65536, 65536);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|l| l.0)
        .unwrap_or(1024);
    let fit = (limit.saturating_sub(300) / 2) as usize;
    let counts: Vec<usize> = std::env::var("FACADE_BENCH_SESSIONS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|c| c.trim().parse().expect("FACADE_BENCH_SESSIONS: counts"))
        .map(|c: usize| {
            if c > fit {
                println!("open files limit {limit}: {c} sessions do not fit, measuring {fit}");
            }
            c.min(fit)
        })
        .collect();
    let servers = Servers::start().await;
    let names: Vec<String> = (0..10).map(|i| format!("SN-CHAT-{i}")).collect();
    let chat_users = setup::accounts(servers.http_port, names, 10).await;

    let chat = std::env::var("FACADE_BENCH_CHAT").map_or(true, |v| v != "0");
    if chat {
        chat_figures(&servers, &chat_users).await;
    }
    idle_sessions(&servers, &counts).await;
}

async fn chat_figures(servers: &Servers, chat_users: &[setup::Account]) {
    let direct = chat::direct(&servers.connector(), &chat_users[0], &chat_users[1], false).await;
    let stanza = chat::direct(&servers.connector(), &chat_users[6], &chat_users[7], true).await;
    let receipts =
        chat::direct_with_receipts(&servers.connector(), &chat_users[4], &chat_users[5]).await;
    let facade = chat::facade(servers.http_port, &chat_users[2], &chat_users[3], 1).await;
    let facade20 = chat::facade(servers.http_port, &chat_users[8], &chat_users[9], 20).await;
    println!(
        "chat, {} messages one at a time, {} with 100 in flight:",
        chat::LATENCY_N,
        chat::THROUGHPUT_N
    );
    for (what, f) in [
        ("direct XMPP", &direct),
        ("direct+stanza", &stanza),
        ("direct+rcpt", &receipts),
        ("facade", &facade),
        ("facade ack/20", &facade20),
    ] {
        println!(
            "  {what:<13} {:>8.0} msg/s   p50 {:.3} ms   p99 {:.3} ms",
            f.per_sec,
            ms(f.p50),
            ms(f.p99)
        );
    }
    for (name, f) in [("facade", &facade), ("facade ack/20", &facade20)] {
        for (what, base) in [
            ("direct", &direct),
            ("direct+stanza", &stanza),
            ("direct+rcpt", &receipts),
        ] {
            println!(
                "  {name}/{what:<13} throughput {:.2}x, p99 {:+.3} ms",
                f.per_sec / base.per_sec,
                ms(f.p99) - ms(base.p99)
            );
        }
    }
}

async fn idle_sessions(servers: &Servers, counts: &[usize]) {
    let max = counts.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return;
    }
    let t = std::time::Instant::now();
    let names: Vec<String> = (0..max).map(|i| format!("SN-IDLE-{i}")).collect();
    let users = setup::accounts(servers.http_port, names, 32).await;
    println!(
        "registered {max} accounts in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let (j0, p0) = memory::rss(servers).await;
    let mut clients = Vec::new();
    for &count in counts {
        let t = std::time::Instant::now();
        let have = clients.len();
        memory::open_all(servers, &users[have..count], have, &mut clients).await;
        let (j, p) = memory::rss(servers).await;
        println!(
            "{count} idle sessions (opened in {:.0} s): jidgate {:.1} KB each ({} MB total), Prosody {:.1} KB each ({} MB total)",
            t.elapsed().as_secs_f64(),
            (j - j0) as f64 * 1.024 / count as f64,
            j / 1024,
            (p - p0) as f64 * 1.024 / count as f64,
            p / 1024
        );
    }
}
