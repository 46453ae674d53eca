//! Load and connection floods against the real `jidgate serve` binary
//! (issue 11; figures in docs/reliability.md).
//!
//! Run: `cargo bench --bench load` (environment: `LOAD_CLIENTS`, default
//! 1000; `LOAD_SECS`, default 60; `FLOOD_CONNS`, default 10000;
//! `FLOOD_SECS`, default 30).
//!
//! 1. **Load**: `LOAD_CLIENTS` concurrent HTTP clients, each its own
//!    device, for `LOAD_SECS`: login, `/get_users`, `/verify_access_token`
//!    in turn. Every answer must be `result` 0; prints p50/p99 per call.
//! 2. **Floods**, one after the other, each while 20 normal clients run the
//!    same mix and a token-service client verifies tokens: `FLOOD_CONNS`
//!    idle token-service connections (each said its hello), then
//!    `FLOOD_CONNS` slowloris HTTP connections (a request line and headers
//!    trickled one byte per second, reopened when the server closes them).
//!    The flood connections come from 127.0.0.2–127.0.0.21, opened by a
//!    separate process (this binary with `LOAD_FLOOD_CHILD` set) at
//!    `nice -n FLOOD_NICE` (default 10), so that the attacker neither
//!    shares the normal clients' runtime nor takes CPU from the server at
//!    its priority (a real one is on other machines); the slowloris
//!    connections are driven by 20 tasks, not one timer each. The normal
//!    clients' p99 must stay within their p99 without a flood + 50 ms, with
//!    no error.
//!
//! No XMPP server is needed: these calls do not touch it.

#![forbid(unsafe_code)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(kind) = std::env::var("LOAD_FLOOD_CHILD") {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        return rt.block_on(flood_child(&kind));
    }
    let clients = env("LOAD_CLIENTS", 1000) as usize;
    let load_secs = env("LOAD_SECS", 60);
    let flood = env("FLOOD_CONNS", 10_000) as usize;
    let flood_secs = env("FLOOD_SECS", 30);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = Server::start(clients.max(NORMAL_CLIENTS + 1)).await;

        // 1. Load.
        println!("load: {clients} clients for {load_secs} s");
        let mut stats = run_clients(&server, 0..clients, Duration::from_secs(load_secs), None).await;
        stats.print("load");
        assert_eq!(stats.errors(), 0, "errors under load");

        // 2. Floods: a baseline, then each flood.
        let normal = || 0..NORMAL_CLIENTS;
        let span = Duration::from_secs(flood_secs);
        let mut base = run_clients(&server, normal(), span, Some(&server)).await;
        base.print("baseline (20 clients + 1 token-service client)");
        for kind in [Flood::TokenServiceIdle, Flood::HttpSlowloris] {
            let stop = Arc::new(AtomicBool::new(false));
            let closed = Arc::new(AtomicUsize::new(0));
            let opened = Arc::new(AtomicUsize::new(0));
            let flooding = tokio::spawn(run_flood(
                server.clone_addrs(),
                kind,
                flood,
                stop.clone(),
                opened.clone(),
                closed.clone(),
            ));
            // Let the flood build up before measuring.
            let ramp = Instant::now();
            while opened.load(Ordering::SeqCst) < flood && ramp.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let held = opened.load(Ordering::SeqCst) - closed.load(Ordering::SeqCst);
            let mut during = run_clients(&server, normal(), span, Some(&server)).await;
            let held_after = opened.load(Ordering::SeqCst) - closed.load(Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            flooding.await.unwrap();
            during.print(&format!(
                "during {kind:?}: {held} flood connections open when measuring began, {held_after} at its end; \
                 {} opened in all, {} closed by the server",
                opened.load(Ordering::SeqCst),
                closed.load(Ordering::SeqCst)
            ));
            assert_eq!(during.errors(), 0, "normal clients failed during {kind:?}");
            for (op, b, d) in base.compare(&during) {
                assert!(
                    d <= b + 50_000,
                    "{op}: p99 {d} µs during {kind:?}, {b} µs without a flood"
                );
            }
        }
        println!("all held");
    });
}
