//! Test support: a blindrelay server started in-process on a free port, and a minimal
//! Socket.IO v5 client over a real WebSocket (Engine.IO v4 text frames).

#![allow(dead_code)]

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use blindrelay::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const WAIT: Duration = Duration::from_secs(5);

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            static_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/static").into(),
            // Departures are announced 1 s after a disconnect (default 20 s), as in the
            // JS harness, so tests of user-left need not wait.
            presence_grace: std::time::Duration::from_secs(1),
            ..Config::default()
        };
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(blindrelay::serve(listener, config, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn health(&self) -> Value {
        reqwest::get(self.url("/health"))
            .await
            .expect("health")
            .json()
            .await
            .expect("json")
    }

    pub async fn reserve(&self, session: &str, key: &str, mode: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/api/reserve-session"))
            .json(&json!({ "sessionId": session, "authKey": key, "chatMode": mode }))
            .send()
            .await
            .expect("reserve")
    }

    /// Triggers shutdown and returns how long `serve` took to return.
    pub async fn shutdown(mut self) -> Duration {
        let started = std::time::Instant::now();
        self.begin_shutdown();
        self.wait_stopped().await;
        started.elapsed()
    }

    /// Sends the shutdown signal (as SIGTERM would) without waiting.
    pub fn begin_shutdown(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
    }

    /// Waits for `serve` to return.
    pub async fn wait_stopped(&mut self) {
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("serve returned")
            .expect("joined")
            .expect("serve ok");
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A Socket.IO client speaking the protocol by hand, so the tests see every frame.
pub struct Client {
    out: mpsc::UnboundedSender<String>,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    /// Events read while waiting for another one.
    seen: VecDeque<(String, Value)>,
    acks: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_ack: u64,
    reader: JoinHandle<()>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket");
        let (mut sink, mut stream) = ws.split();
        let open = next_text(&mut stream).await;
        assert!(open.starts_with('0'), "engine.io open packet, got {open}");
        sink.send(WsMessage::text("40"))
            .await
            .expect("send connect");
        loop {
            match next_text(&mut stream).await.as_str() {
                "2" => sink.send(WsMessage::text("3")).await.expect("pong"),
                connected if connected.starts_with("40") => break,
                other => panic!("expected the socket.io connect packet, got {other}"),
            }
        }

        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if sink.send(WsMessage::text(frame)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (events_tx, events) = mpsc::unbounded_channel();
        let acks: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let reader = tokio::spawn({
            let acks = acks.clone();
            let out = out.clone();
            async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let WsMessage::Text(text) = msg else { continue };
                    let text = text.as_str();
                    if text == "2" {
                        let _ = out.send("3".into());
                    } else if let Some(rest) = text.strip_prefix("42") {
                        let arr: Vec<Value> = serde_json::from_str(rest).expect("event array");
                        let name = arr[0].as_str().expect("event name").to_owned();
                        let data = arr.get(1).cloned().unwrap_or(Value::Null);
                        let _ = events_tx.send((name, data));
                    } else if let Some(rest) = text.strip_prefix("43") {
                        let split = rest.find('[').expect("ack array");
                        let id: u64 = rest[..split].parse().expect("ack id");
                        let arr: Vec<Value> =
                            serde_json::from_str(&rest[split..]).expect("ack json");
                        if let Some(tx) = acks.lock().unwrap().remove(&id) {
                            let _ = tx.send(arr.into_iter().next().unwrap_or(Value::Null));
                        }
                    } else if text.starts_with("41") {
                        let _ = events_tx.send(("disconnect".into(), Value::Null));
                    }
                }
                let _ = events_tx.send(("transport-closed".into(), Value::Null));
            }
        });
        Client {
            out,
            events,
            seen: VecDeque::new(),
            acks,
            next_ack: 0,
            reader,
        }
    }

    /// Sends an event without asking for an ack, as old clients do.
    pub fn emit(&self, event: &str, data: Value) {
        self.send_raw(format!("42{}", json!([event, data])));
    }

    /// Sends an already-encoded Socket.IO packet (for malformed-input tests).
    pub fn send_raw(&self, frame: String) {
        self.out.send(frame).expect("connection open");
    }

    /// Sends an event with an ack and waits for the answer.
    pub async fn ack(&mut self, event: &str, data: Value) -> Value {
        self.ack_args(event, vec![data]).await
    }

    pub async fn ack_args(&mut self, event: &str, args: Vec<Value>) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, tx);
        let mut packet = vec![json!(event)];
        packet.extend(args);
        self.send_raw(format!("42{id}{}", Value::Array(packet)));
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event}"))
            .expect("ack")
    }

    /// The next `name` event (earlier events of other names stay queued).
    pub async fn next(&mut self, name: &str) -> Value {
        self.next_within(name, WAIT).await
    }

    /// The next `name` event within `wait` (for a bound the server sets, longer than [`WAIT`]).
    pub async fn next_within(&mut self, name: &str, wait: Duration) -> Value {
        if let Some(pos) = self.seen.iter().position(|(n, _)| n == name) {
            return self.seen.remove(pos).expect("present").1;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within {wait:?}; saw {:?}", self.seen));
            let (n, data) = got.expect("reader alive");
            if n == name {
                return data;
            }
            self.seen.push_back((n, data));
        }
    }

    /// Drops every event received so far.
    pub fn clear(&mut self) {
        self.seen.clear();
        while self.events.try_recv().is_ok() {}
    }

    /// Every `name` event received until now (after a round trip that orders them).
    pub async fn received(&mut self, name: &str) -> Vec<Value> {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push_back(e);
        }
        let (matching, rest): (VecDeque<_>, VecDeque<_>) =
            self.seen.drain(..).partition(|(n, _)| n == name);
        self.seen = rest;
        matching.into_iter().map(|(_, d)| d).collect()
    }

    pub fn close(self) {
        self.reader.abort();
        drop(self.out);
    }
}

async fn next_text<S>(stream: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        let msg = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("ok");
        if let WsMessage::Text(t) = msg {
            return t.as_str().to_owned();
        }
    }
}

/// A unique id for a test's session.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Joins `session` as `user` and returns the ack.
pub async fn join(c: &mut Client, session: &str, user: &str, extra: Value) -> Value {
    let mut payload = json!({ "sessionId": session, "userId": user, "displayName": user, "publicKey": format!("pk-{user}") });
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    c.ack("join-session", payload).await
}

/// Creates `session` by joining it as its creator `user`, with auth key `k`.
pub async fn create(c: &mut Client, session: &str, user: &str) -> Value {
    join(
        c,
        session,
        user,
        json!({ "isCreator": true, "authKey": "k" }),
    )
    .await
}
