//! Memory per idle facade session: jidgate's and Prosody's resident
//! memory before and after opening many sessions (each one WebSocket and
//! one XMPP c2s session), from several 127.0.0.x source addresses
//! (loopback has about 28k ports per address pair).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::setup::{Account, Servers};

/// Source addresses the clients cycle through.
const SOURCES: u8 = 8;

pub type Client = WebSocketStream<TcpStream>;

/// Opens an idle session for `u` from 127.0.0.`2 + k % SOURCES`, and waits
/// until it answers (its XMPP session is up).
async fn open(http_port: u16, u: &Account, k: usize) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    let src = Ipv4Addr::new(127, 0, 0, 2 + (k % SOURCES as usize) as u8);
    socket.bind(SocketAddr::from((src, 0))).unwrap();
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], http_port)))
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{http_port}/ws?access_token={}", u.token);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let ping = r#"{"func":"session.ping","cdata":1}"#;
    ws.send(Message::Text(ping.into())).await.unwrap();
    while let Some(Ok(f)) = ws.next().await {
        if f.to_text().is_ok_and(|t| t.contains("\"cdata\":1")) {
            return ws;
        }
    }
    panic!("session {k} did not start");
}

/// Opens sessions for `users` (concurrency 32) and adds them to `open`.
pub async fn open_all(
    servers: &Servers,
    users: &[Account],
    first: usize,
    clients: &mut Vec<Client>,
) {
    let port = servers.http_port;
    let opened: Vec<Client> = futures::stream::iter(users.iter().enumerate())
        .map(|(k, u)| open(port, u, first + k))
        .buffer_unordered(32)
        .collect()
        .await;
    clients.extend(opened);
}

/// (jidgate KiB, Prosody KiB) resident, after things settle.
pub async fn rss(servers: &Servers) -> (u64, u64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    (servers.jidgate.rss_kib(), servers.prosody.rss_kib())
}
