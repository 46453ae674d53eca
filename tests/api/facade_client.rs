//! A WebSocket client of the facade for the tests: requests with numbered
//! `cdata`, pushes kept aside until asked for, optional deflate.

#![allow(dead_code)] // a harness: each test uses part of it

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::TestApp;

pub struct Ws {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub zlib: bool,
    next: u64,
    pub pushes: VecDeque<Value>,
    replies: VecDeque<Value>,
}

/// How long a test waits for a frame.
pub const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    /// Connects to `/ws?{query}`.
    pub async fn connect(app: &TestApp, query: &str) -> Ws {
        Self::connect_to(app.addr, query).await
    }

    /// Connects to `/ws?{query}` of the jidgate at `addr`.
    pub async fn connect_to(addr: std::net::SocketAddr, query: &str) -> Ws {
        let url = format!("ws://{addr}/ws?{query}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Ws {
            ws,
            zlib: query.contains("usezlib=1"),
            next: 0,
            pushes: VecDeque::new(),
            replies: VecDeque::new(),
        }
    }

    /// Connects with the token in the query.
    pub async fn login(app: &TestApp, token: &str) -> Ws {
        Self::connect(app, &format!("access_token={token}")).await
    }

    /// Connects with the token in the query and starts the session
    /// (`session.start` answered with errno 0).
    pub async fn started(app: &TestApp, token: &str) -> Ws {
        let mut ws = Self::login(app, token).await;
        ws.ok("session.start", json!({})).await;
        ws
    }

    /// Sends a raw frame.
    pub async fn send_raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("ws send");
    }

    /// Sends JSON text (compressed in zlib mode).
    pub async fn send_json(&mut self, text: &str) {
        let msg = if self.zlib {
            Message::Binary(deflate(text.as_bytes()).into())
        } else {
            Message::Text(text.to_owned().into())
        };
        self.send_raw(msg).await;
    }

    /// The next frame as JSON (`None` once closed).
    pub async fn frame(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame in time")?;
            match msg.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
                Message::Binary(b) => {
                    assert!(self.zlib, "binary frame without usezlib");
                    let text = inflate(&b);
                    return Some(serde_json::from_slice(&text).unwrap());
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The reply with `cdata`, keeping pushes aside.
    pub async fn reply_to(&mut self, cdata: &Value) -> Value {
        if let Some(i) = self.replies.iter().position(|r| &r["cdata"] == cdata) {
            return self.replies.remove(i).unwrap();
        }
        loop {
            let f = self.frame().await.expect("socket closed before the reply");
            if f["push"] == true {
                self.pushes.push_back(f);
            } else if &f["cdata"] == cdata {
                return f;
            } else {
                self.replies.push_back(f);
            }
        }
    }

    /// Calls `func` and returns the whole reply.
    pub async fn call(&mut self, func: &str, parm: Value) -> Value {
        self.next += 1;
        let cdata = json!(format!("c{}", self.next));
        let req = json!({"func": func, "parm": parm, "cdata": cdata});
        self.send_json(&req.to_string()).await;
        self.reply_to(&cdata).await
    }

    /// Calls `func`, asserts errno 0 and returns `result`.
    pub async fn ok(&mut self, func: &str, parm: Value) -> Value {
        let r = self.call(func, parm).await;
        assert_eq!(r["errno"], 0, "{func}: {r}");
        r["result"].clone()
    }

    /// The next push of `type_` (earlier pushes of other types stay).
    pub async fn push(&mut self, type_: &str) -> Value {
        if let Some(i) = self.pushes.iter().position(|p| p["type"] == type_) {
            return self.pushes.remove(i).unwrap();
        }
        loop {
            let f = self
                .frame()
                .await
                .unwrap_or_else(|| panic!("socket closed waiting for push {type_}"));
            if f["push"] != true {
                self.replies.push_back(f);
            } else if f["type"] == type_ {
                return f;
            } else {
                self.pushes.push_back(f);
            }
        }
    }

    /// The next push matching `pred` (others stay).
    pub async fn push_where(&mut self, type_: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self
            .pushes
            .iter()
            .position(|p| p["type"] == type_ && pred(&p["data"]))
        {
            return self.pushes.remove(i).unwrap();
        }
        loop {
            let f = self
                .frame()
                .await
                .unwrap_or_else(|| panic!("socket closed waiting for push {type_}"));
            if f["push"] != true {
                self.replies.push_back(f);
            } else if f["type"] == type_ && pred(&f["data"]) {
                return f;
            } else {
                self.pushes.push_back(f);
            }
        }
    }

    /// Acknowledges every push up to `pid`.
    pub async fn ack(&mut self, pid: &Value) {
        self.ok("session.ack", json!({ "pid": pid })).await;
    }

    /// Closes the socket abruptly (no close frame).
    pub fn drop_abruptly(self) {
        drop(self.ws);
    }

    /// Waits for the server to close the socket; returns the frames it
    /// sent before.
    pub async fn closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(f) = self.frame().await {
            frames.push(f);
        }
        frames
    }
}

pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}
