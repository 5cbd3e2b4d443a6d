//! `blindrelay-soak`: a bounded soak test of a running blindrelay (loopback).
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself, like `blindrelay-bench`
//! (self-contained: the bench binary is left as it is). For `--duration` seconds:
//!
//! - `--sessions` honest workers each run one session at a time (two connections:
//!   creator `u1` and joiner `u2`, group, private or password room) in a loop: join,
//!   several rounds of messages both ways (each round waits until both messages are
//!   delivered), then end the session one of four ways: both `leave-session`; the joiner
//!   drops its transport, reconnects, rejoins and must find every message of the cycle
//!   in `messages-history`; both drop their transports (the session is left for the
//!   reaper); the creator's `close-session`. Every `new-message` is counted by message
//!   id per connection: a message not delivered within `--deliver-timeout` is lost, a
//!   second delivery of an id is a duplicate.
//! - `--abusers` workers send what honest clients never do: garbage text and binary
//!   frames, garbage bytes instead of HTTP, unknown events, malformed payloads, a frame
//!   over `--max-payload-bytes` (the server's `MAX_PAYLOAD_BYTES`), a message over
//!   `--history-max-bytes` (`HISTORY_MAX_BYTES`), wrong-key joins of honest sessions,
//!   and floods of 400 events without waiting.
//!
//! Then it waits until `GET /health` reports no session and no connection (the server
//! should run with a short `SESSION_TTL_SECS` and `REAPER_INTERVAL_SECS`), and prints
//! one JSON line on stdout and a table on stderr. With `--server-pid`, the server's RSS
//! (VmRSS) is sampled every second: at the start, its peak, and at the end.
//!
//! Exit status 0 when no honest message was lost or duplicated, no honest client met an
//! error or a disconnect, every abuse got the answer it should, and every session was
//! reaped; 1 otherwise; 2 for bad arguments.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, protocol::WebSocketConfig};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

#[derive(Parser, Debug, Clone)]
#[command(name = "blindrelay-soak", version, about)]
struct Args {
    /// Server: http://HOST:PORT or ws://HOST:PORT (no TLS).
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    url: String,
    /// Seconds of traffic (workers then finish their current session).
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Honest sessions running at the same time (two connections each).
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    /// Abusive clients running at the same time (default: sessions / 20).
    #[arg(long)]
    abusers: Option<usize>,
    /// Pause between two rounds of messages of one session, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    round_pause_ms: u64,
    /// Seconds a message may take to arrive before it counts as lost.
    #[arg(long, default_value_t = 15.0)]
    deliver_timeout: f64,
    /// The server's MAX_PAYLOAD_BYTES (abusers send a frame larger than this).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_payload_bytes: usize,
    /// The server's HISTORY_MAX_BYTES (abusers send a message larger than this).
    #[arg(long, default_value_t = 256 * 1024)]
    history_max_bytes: usize,
    /// Seconds to wait, after the traffic, for every session to be reaped.
    #[arg(long, default_value_t = 120.0)]
    reap_timeout: f64,
    /// Connections being opened at the same time, at most.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// PID of the server (same machine), for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
}

type R<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    sessions_started: AtomicU64,
    sessions_completed: AtomicU64,
    connections_opened: AtomicU64,
    messages_sent: AtomicU64,
    deliveries_expected: AtomicU64,
    deliveries: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    history_checked: AtomicU64,
    history_missing: AtomicU64,
    honest_errors: AtomicU64,
    honest_disconnects: AtomicU64,
    ends: [AtomicU64; 4],
    abuse_connections: AtomicU64,
    abuse_ok: AtomicU64,
    abuse_wrong: AtomicU64,
    abuse_closed_by_server: AtomicU64,
    rate_limited: AtomicU64,
    flood_sent: AtomicU64,
    flood_answered: AtomicU64,
    flood_closed: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    abuse_kinds: Mutex<HashMap<&'static str, u64>>,
    error_codes: Mutex<HashMap<String, u64>>,
}

impl Counters {
    fn honest_error(&self, e: String) {
        self.honest_errors.fetch_add(1, Ordering::Relaxed);
        self.note(format!("honest: {e}"));
    }
    fn abuse_wrong(&self, e: String) {
        self.abuse_wrong.fetch_add(1, Ordering::Relaxed);
        self.note(format!("abuse: {e}"));
    }
    fn note(&self, e: String) {
        let mut v = self.first_errors.lock().unwrap();
        if v.len() < 10 {
            v.push(e);
        }
    }
    fn code(&self, c: &str) {
        *self
            .error_codes
            .lock()
            .unwrap()
            .entry(c.to_owned())
            .or_default() += 1;
    }
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// A tiny PRNG (xorshift64*), seeded per worker
// ---------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self) -> String {
        format!("{:016x}", self.next())
    }
}

// ---------------------------------------------------------------------------------------
// One Socket.IO connection
// ---------------------------------------------------------------------------------------

struct Cfg {
    addr: String,
    url: String,
    sem: Semaphore,
    prefix: String,
    deadline: Instant,
    deliver_timeout: Duration,
    round_pause: Duration,
    max_payload: usize,
    history_max: usize,
    sessions: usize,
    c: Counters,
}

enum In {
    Event(Utf8Bytes),
    Ack(Utf8Bytes),
    Other,
    Closed(String),
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    pong_due: bool,
    next_ack: u32,
}

impl Conn {
    async fn open(cfg: &Cfg) -> R<Conn> {
        let _permit = cfg.sem.acquire().await.map_err(|e| e.to_string())?;
        let fut = async {
            let tcp = TcpStream::connect(&cfg.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let wsc = WebSocketConfig::default().read_buffer_size(4 * 1024);
            let (ws, _) = client_async_with_config(cfg.url.as_str(), tcp, Some(wsc))
                .await
                .map_err(|e| format!("websocket: {e}"))?;
            let mut c = Conn {
                ws,
                pong_due: false,
                next_ack: 0,
            };
            match c.ws.next().await {
                Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
                other => return Err(format!("expected the open packet, got {other:?}")),
            }
            c.send("40".into()).await?;
            loop {
                match c.ws.next().await {
                    Some(Ok(Message::Text(t))) if t.starts_with("40") => return Ok(c),
                    Some(Ok(Message::Text(t))) if t.starts_with("44") => {
                        return Err(format!("connect refused: {t}"));
                    }
                    Some(Ok(_)) => {}
                    other => return Err(format!("closed before connect: {other:?}")),
                }
            }
        };
        let c = timeout(Duration::from_secs(20), fut)
            .await
            .map_err(|_| "connect timed out".to_owned())??;
        cfg.c.connections_opened.fetch_add(1, Ordering::Relaxed);
        Ok(c)
    }

    /// The next frame that matters; pings are answered. Cancel-safe.
    async fn recv(&mut self) -> In {
        loop {
            if self.pong_due {
                if let Err(e) = self.ws.send(Message::text("3")).await {
                    return In::Closed(e.to_string());
                }
                self.pong_due = false;
            }
            match self.ws.next().await {
                None => return In::Closed("closed".into()),
                Some(Err(e)) => return In::Closed(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    let b = t.as_bytes();
                    if b == b"2" {
                        self.pong_due = true;
                    } else if b.starts_with(b"42") {
                        return In::Event(t);
                    } else if b.starts_with(b"43") {
                        return In::Ack(t);
                    } else if b.starts_with(b"41") || b == b"1" {
                        return In::Closed("disconnected by the server".into());
                    } else {
                        return In::Other;
                    }
                }
                Some(Ok(Message::Close(f))) => return In::Closed(format!("close frame {f:?}")),
                Some(Ok(_)) => {}
            }
        }
    }

    async fn send(&mut self, s: String) -> R<()> {
        self.ws
            .send(Message::text(s))
            .await
            .map_err(|e| e.to_string())
    }

    /// Emits with an ack id; returns it.
    async fn emit(&mut self, event: &str, payload: &Value) -> R<u32> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send(format!("42{id}[\"{event}\",{payload}]")).await?;
        Ok(id)
    }

    async fn close(mut self) {
        let _ = timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// The id and first argument of an ack frame `43<id>[arg]`.
fn parse_ack(t: &str) -> Option<(u32, Value)> {
    let rest = &t[2..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest[..digits].parse().ok()?;
    let v: Value = serde_json::from_str(&rest[digits..]).ok()?;
    Some((id, v.get(0).cloned().unwrap_or(Value::Null)))
}

// ---------------------------------------------------------------------------------------
// Honest clients
// ---------------------------------------------------------------------------------------

/// One honest connection and what it received.
struct Peer {
    conn: Conn,
    /// `new-message` deliveries per message id.
    seen: HashMap<String, u32>,
    acks: HashMap<u32, Value>,
    history: Option<Vec<String>>,
    session_closed: bool,
    closed: Option<String>,
}

impl Peer {
    fn new(conn: Conn) -> Self {
        Peer {
            conn,
            seen: HashMap::new(),
            acks: HashMap::new(),
            history: None,
            session_closed: false,
            closed: None,
        }
    }

    fn absorb(&mut self, f: In, c: &Counters) {
        match f {
            In::Event(t) => {
                let Ok(v) = serde_json::from_str::<Value>(&t[2..]) else {
                    return;
                };
                match v[0].as_str() {
                    Some("new-message") => {
                        let id = v[1]["id"].as_str().unwrap_or("").to_owned();
                        c.deliveries.fetch_add(1, Ordering::Relaxed);
                        let count = self.seen.entry(id).or_default();
                        *count += 1;
                        if *count > 1 {
                            c.duplicated.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some("messages-history") => {
                        let ids = v[1].as_array().map(|a| {
                            a.iter()
                                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                                .collect()
                        });
                        self.history = ids;
                    }
                    Some("session-closed") => self.session_closed = true,
                    _ => {}
                }
            }
            In::Ack(t) => {
                if let Some((id, v)) = parse_ack(&t) {
                    self.acks.insert(id, v);
                }
            }
            In::Other => {}
            In::Closed(e) => self.closed = Some(e),
        }
    }

    /// The ack `id`, which must be `ok: true`.
    fn ok(&self, id: u32, what: &str) -> R<()> {
        match self.acks.get(&id) {
            Some(v) if v["ok"] == Value::Bool(true) => Ok(()),
            Some(v) => Err(format!("{what} refused: {v}")),
            None => Err(format!("no ack to {what}")),
        }
    }
}

/// Reads both connections until `done` holds, a connection closes or the time is up.
async fn pump(
    cfg: &Cfg,
    a: &mut Peer,
    b: &mut Peer,
    limit: Duration,
    done: impl Fn(&Peer, &Peer) -> bool,
) -> R<()> {
    let until = Instant::now() + limit;
    loop {
        if done(a, b) {
            return Ok(());
        }
        if let Some(e) = a.closed.as_ref().or(b.closed.as_ref()) {
            cfg.c.honest_disconnects.fetch_add(1, Ordering::Relaxed);
            return Err(format!("honest connection closed: {e}"));
        }
        let (which, f) = tokio::select! {
            f = a.conn.recv() => (0, f),
            f = b.conn.recv() => (1, f),
            () = tokio::time::sleep_until(until) => return Err("timed out".into()),
        };
        if which == 0 {
            a.absorb(f, &cfg.c);
        } else {
            b.absorb(f, &cfg.c);
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Group,
    Private,
    Password,
}

struct Room {
    id: String,
    mode: Mode,
    auth_key: String,
    /// What the joiner puts in sessionId.
    link: String,
}

impl Room {
    fn new(cfg: &Cfg, w: usize, cycle: u64, rng: &mut Rng) -> Room {
        let id = format!("{}-{w}-{cycle}", cfg.prefix);
        let mode = [Mode::Group, Mode::Private, Mode::Password][rng.below(3) as usize];
        let key = rng.hex();
        let (auth_key, link) = match mode {
            Mode::Password => {
                let pw = rng.hex();
                (format!("{key}:{pw}"), format!("{id}:password:{pw}"))
            }
            _ => (key.clone(), format!("{id}:{key}")),
        };
        Room {
            id,
            mode,
            auth_key,
            link,
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Group => "group",
            Mode::Private => "private",
            Mode::Password => "password",
        }
    }
}

/// Joins `b` (the joiner) and waits for its ack (reading `a` meanwhile).
async fn join_joiner(cfg: &Cfg, room: &Room, a: &mut Peer, b: &mut Peer) -> R<()> {
    let id = b
        .conn
        .emit(
            "join-session",
            &json!({"sessionId": room.link, "userId": "u2", "displayName": "Bob", "publicKey": "pk-u2"}),
        )
        .await?;
    pump(cfg, a, b, cfg.deliver_timeout, |_, b| {
        b.acks.contains_key(&id)
    })
    .await?;
    b.ok(id, "join-session (joiner)")
}

/// One round: each side sends one message (to all, or to the other on odd rounds); both
/// must be acked and delivered once.
#[allow(clippy::too_many_arguments)]
async fn round(
    cfg: &Cfg,
    room: &Room,
    tag: &str,
    r: u32,
    rng: &mut Rng,
    a: &mut Peer,
    b: &mut Peer,
    sent: &mut Vec<String>,
) -> R<()> {
    let (ida, idb) = (format!("{tag}.{r}.a"), format!("{tag}.{r}.b"));
    let (to_a, to_b) = if r.is_multiple_of(2) {
        ("all", "all")
    } else {
        ("u2", "u1")
    };
    let body_a = "a".repeat(64 + rng.below(2000) as usize);
    let body_b = "b".repeat(64 + rng.below(2000) as usize);
    let acka = a
        .conn
        .emit(
            "send-message",
            &json!({"sessionId": room.id, "to": to_a, "encrypted": body_a, "clientMessageId": ida}),
        )
        .await?;
    let ackb = b
        .conn
        .emit(
            "send-message",
            &json!({"sessionId": room.id, "to": to_b, "encrypted": body_b, "clientMessageId": idb}),
        )
        .await?;
    cfg.c.messages_sent.fetch_add(2, Ordering::Relaxed);
    cfg.c.deliveries_expected.fetch_add(2, Ordering::Relaxed);
    let result = pump(cfg, a, b, cfg.deliver_timeout, |a, b| {
        a.acks.contains_key(&acka)
            && b.acks.contains_key(&ackb)
            && b.seen.contains_key(&ida)
            && a.seen.contains_key(&idb)
    })
    .await;
    let lost = u64::from(!b.seen.contains_key(&ida)) + u64::from(!a.seen.contains_key(&idb));
    cfg.c.lost.fetch_add(lost, Ordering::Relaxed);
    result.map_err(|e| format!("round {r}: {e} ({lost} lost)"))?;
    a.ok(acka, "send-message")?;
    b.ok(ackb, "send-message")?;
    sent.push(ida);
    sent.push(idb);
    Ok(())
}

async fn leave_both(cfg: &Cfg, room: &Room, mut a: Peer, mut b: Peer) -> R<()> {
    let payload = json!({"sessionId": room.id});
    let la = a.conn.emit("leave-session", &payload).await?;
    let lb = b.conn.emit("leave-session", &payload).await?;
    pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, b| {
        a.acks.contains_key(&la) && b.acks.contains_key(&lb)
    })
    .await?;
    a.ok(la, "leave-session")?;
    b.ok(lb, "leave-session")?;
    a.conn.close().await;
    b.conn.close().await;
    Ok(())
}

async fn honest_cycle(cfg: &Cfg, w: usize, cycle: u64, rng: &mut Rng) -> R<()> {
    let room = Room::new(cfg, w, cycle, rng);
    cfg.c.sessions_started.fetch_add(1, Ordering::Relaxed);
    let (ca, cb) = tokio::join!(Conn::open(cfg), Conn::open(cfg));
    let (mut a, mut b) = (Peer::new(ca?), Peer::new(cb?));
    let id = a
        .conn
        .emit(
            "join-session",
            &json!({"sessionId": room.id, "userId": "u1", "displayName": "Alice",
                "publicKey": "pk-u1", "isCreator": true, "authKey": room.auth_key,
                "chatMode": room.mode_name()}),
        )
        .await?;
    pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, _| {
        a.acks.contains_key(&id)
    })
    .await?;
    a.ok(id, "join-session (creator)")?;
    join_joiner(cfg, &room, &mut a, &mut b).await?;

    let tag = format!("{}.{w}.{cycle}", cfg.prefix);
    let rounds = 3 + rng.below(6) as u32;
    let mut sent = Vec::new();
    for r in 0..rounds {
        round(cfg, &room, &tag, r, rng, &mut a, &mut b, &mut sent).await?;
        // Pacing (load shape), not synchronisation: every wait above is on frames.
        let pause = cfg.round_pause.as_millis() as u64;
        sleep(Duration::from_millis(pause / 2 + rng.below(pause.max(1)))).await;
    }

    let end = rng.below(4) as usize;
    cfg.c.ends[end].fetch_add(1, Ordering::Relaxed);
    match end {
        0 => leave_both(cfg, &room, a, b).await?,
        1 => {
            // The joiner's transport drops; it reconnects and rejoins.
            drop(b);
            let mut b2 = Peer::new(Conn::open(cfg).await?);
            join_joiner(cfg, &room, &mut a, &mut b2).await?;
            let history = b2
                .history
                .clone()
                .ok_or("no messages-history before the join ack")?;
            for id in &sent {
                cfg.c.history_checked.fetch_add(1, Ordering::Relaxed);
                if !history.contains(id) {
                    cfg.c.history_missing.fetch_add(1, Ordering::Relaxed);
                }
            }
            round(cfg, &room, &tag, rounds, rng, &mut a, &mut b2, &mut sent).await?;
            leave_both(cfg, &room, a, b2).await?;
        }
        // Both transports drop: the emptied session is left to the reaper.
        2 => drop((a, b)),
        _ => {
            let id = a
                .conn
                .emit("close-session", &json!({"sessionId": room.id}))
                .await?;
            pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, b| {
                a.acks.contains_key(&id) && b.session_closed
            })
            .await?;
            a.ok(id, "close-session")?;
            a.conn.close().await;
            b.conn.close().await;
        }
    }
    cfg.c.sessions_completed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn honest(cfg: Arc<Cfg>, w: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ (w as u64).wrapping_mul(0x1000_0001));
    let mut cycle = 0;
    while Instant::now() < cfg.deadline {
        if let Err(e) = honest_cycle(&cfg, w, cycle, &mut rng).await {
            cfg.c.honest_error(format!("session {w}.{cycle}: {e}"));
            // Not to spin when the server is gone: the failure is counted already.
            sleep(Duration::from_millis(500)).await;
        }
        cycle += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Abusive clients
// ---------------------------------------------------------------------------------------

const ABUSES: [&str; 9] = [
    "garbage-text",
    "garbage-binary",
    "garbage-http",
    "unknown-event",
    "malformed-payload",
    "oversized-frame",
    "too-large-message",
    "wrong-key-join",
    "flood",
];

/// Events a flooding client sends without waiting.
const FLOOD: u64 = 400;

const GARBAGE: [&str; 10] = [
    "42[not json",
    "4",
    "42",
    "zzz",
    "42[\"send-message\"",
    "\u{0}\u{1}\u{2}",
    "9",
    "40/nope,",
    "43x[]",
    "42[\"join-session\",{\"sessionId\":",
];

/// Payloads every handler must refuse with BAD_REQUEST: (event, payload text).
const MALFORMED: [(&str, &str); 9] = [
    ("join-session", "\"a string\""),
    ("join-session", "[\"s1\",\"u1\"]"),
    ("join-session", "{\"sessionId\":123,\"userId\":\"u\"}"),
    (
        "join-session",
        "{\"sessionId\":\"bad id!\",\"userId\":\"u\"}",
    ),
    ("send-message", "{}"),
    (
        "set-session-key",
        "{\"sessionId\":\"x\",\"encryptedKeys\":\"nope\"}",
    ),
    ("typing", "null"),
    (
        "file-downloaded",
        "{\"sessionId\":\"x\",\"senderId\":\"a b\",\"fileName\":\"f\"}",
    ),
    ("send-message", "{\"sessionId\":\"x\",\"encrypted\":null}"),
];

/// Reads until the ack `id` (its first argument) or the end of the connection (None).
async fn ack_or_close(c: &mut Conn, id: u32) -> R<Option<Value>> {
    let fut = async {
        loop {
            match c.recv().await {
                In::Ack(t) => {
                    if let Some((got, v)) = parse_ack(&t)
                        && got == id
                    {
                        return Some(v);
                    }
                }
                In::Closed(_) => return None,
                _ => {}
            }
        }
    };
    timeout(Duration::from_secs(15), fut)
        .await
        .map_err(|_| format!("neither ack {id} nor close within 15 s"))
}

/// After garbage: the server either closed the connection or still answers an event.
async fn probe(cfg: &Cfg, c: &mut Conn, kind: &'static str) -> R<()> {
    let id = match c
        .emit("get-public-keys", &json!({"sessionId": "nowhere"}))
        .await
    {
        Ok(id) => id,
        Err(_) => {
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    match ack_or_close(c, id).await? {
        None => {
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Some(v) if v["error"] == "NOT_IN_SESSION" => Ok(()),
        Some(v) => Err(format!("{kind}: probe answered {v}")),
    }
}

fn expect_code(cfg: &Cfg, v: Option<Value>, allowed: &[&str], what: &str) -> R<()> {
    let v = v.ok_or_else(|| format!("{what}: connection closed instead of an answer"))?;
    let code = v["error"].as_str().unwrap_or("");
    if v["ok"] == Value::Bool(false) && allowed.contains(&code) {
        cfg.c.code(code);
        Ok(())
    } else {
        Err(format!("{what}: expected one of {allowed:?}, got {v}"))
    }
}

async fn abuse_once(cfg: &Cfg, k: usize, i: u64, rng: &mut Rng) -> R<()> {
    let kind = ABUSES[rng.below(ABUSES.len() as u64) as usize];
    *cfg.c.abuse_kinds.lock().unwrap().entry(kind).or_default() += 1;
    cfg.c.abuse_connections.fetch_add(1, Ordering::Relaxed);
    if kind == "garbage-http" {
        let mut tcp = TcpStream::connect(&cfg.addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut junk: Vec<u8> = (0..64 + rng.below(512)).map(|_| rng.next() as u8).collect();
        junk.extend_from_slice(b"\r\n\r\n");
        tcp.write_all(&junk).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        // The server answers 400 and closes, or just closes: either ends the stream.
        match timeout(Duration::from_secs(15), tcp.read_to_end(&mut buf)).await {
            Ok(_) => {
                cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(_) => return Err("garbage-http: the server kept the connection 15 s".into()),
        }
    }
    let mut c = Conn::open(cfg).await?;
    match kind {
        "garbage-text" => {
            let g = GARBAGE[rng.below(GARBAGE.len() as u64) as usize];
            c.send(g.to_owned()).await?;
            probe(cfg, &mut c, kind).await?;
        }
        "garbage-binary" => {
            let junk: Vec<u8> = (0..1 + rng.below(256)).map(|_| rng.next() as u8).collect();
            c.ws.send(Message::binary(junk))
                .await
                .map_err(|e| e.to_string())?;
            probe(cfg, &mut c, kind).await?;
        }
        "unknown-event" => {
            let unknown = c.emit("no-such-event", &json!({"sessionId": "x"})).await?;
            let id = c
                .emit("get-public-keys", &json!({"sessionId": "nowhere"}))
                .await?;
            // Unknown events are ignored: no ack, while the next event is answered.
            let fut = async {
                loop {
                    match c.recv().await {
                        In::Ack(t) => match parse_ack(&t) {
                            Some((got, _)) if got == unknown => {
                                return Err("unknown event acked".to_owned());
                            }
                            Some((got, v)) if got == id => return Ok(v),
                            _ => {}
                        },
                        In::Closed(e) => return Err(format!("closed after an unknown event: {e}")),
                        _ => {}
                    }
                }
            };
            let v = timeout(Duration::from_secs(15), fut)
                .await
                .map_err(|_| "unknown-event: no answer".to_owned())??;
            expect_code(cfg, Some(v), &["NOT_IN_SESSION"], kind)?;
        }
        "malformed-payload" => {
            let (event, payload) = MALFORMED[rng.below(MALFORMED.len() as u64) as usize];
            let id = c.next_ack;
            c.next_ack += 1;
            c.send(format!("42{id}[\"{event}\",{payload}]")).await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(cfg, v, &["BAD_REQUEST"], &format!("{event} {payload}"))?;
        }
        "oversized-frame" => {
            let big = "x".repeat(cfg.max_payload + 1024);
            let frame =
                format!("42[\"send-message\",{{\"sessionId\":\"x\",\"encrypted\":\"{big}\"}}]");
            // The server may close while the frame is still being written.
            if c.send(frame).await.is_ok() {
                let id = c.emit("get-public-keys", &json!({"sessionId": "x"})).await;
                if let Ok(id) = id
                    && let Some(v) = ack_or_close(&mut c, id).await?
                {
                    return Err(format!("oversized frame: connection kept, answered {v}"));
                }
            }
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        "too-large-message" => {
            let room = format!("{}-abuse-{k}-{i}", cfg.prefix);
            let id = c
                .emit(
                    "join-session",
                    &json!({"sessionId": room, "userId": "mallory", "isCreator": true,
                        "authKey": rng.hex()}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            if v.as_ref().map(|v| v["ok"] == Value::Bool(true)) != Some(true) {
                return Err(format!("too-large-message: own join refused: {v:?}"));
            }
            let big = "y".repeat(cfg.history_max + 1);
            let id = c
                .emit(
                    "send-message",
                    &json!({"sessionId": room, "encrypted": big}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(cfg, v, &["PAYLOAD_TOO_LARGE"], kind)?;
            let id = c.emit("leave-session", &json!({"sessionId": room})).await?;
            let v = ack_or_close(&mut c, id).await?;
            if v.as_ref().map(|v| v["ok"] == Value::Bool(true)) != Some(true) {
                return Err(format!("too-large-message: leave refused: {v:?}"));
            }
        }
        "wrong-key-join" => {
            let w = rng.below(cfg.sessions as u64);
            let cycle = rng.below(3);
            let target = format!("{}-{w}-{cycle}", cfg.prefix);
            let session_id = if rng.below(2) == 0 {
                format!("{target}:{}", rng.hex())
            } else {
                format!("{target}:password:{}", rng.hex())
            };
            let id = c
                .emit(
                    "join-session",
                    &json!({"sessionId": session_id, "userId": "mallory"}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(
                cfg,
                v,
                &[
                    "INVALID_KEY",
                    "INVALID_PASSWORD",
                    "SESSION_NOT_FOUND",
                    "SESSION_EXPIRED",
                ],
                kind,
            )?;
        }
        _ => {
            // flood: 400 events without waiting. Each is handled (NOT_IN_SESSION) or
            // refused (RATE_LIMITED); replies that do not fit the socket's outgoing
            // buffer are dropped by socketioxide, so the answers are counted, not
            // required. The connection must stay usable: once the replies stop (none
            // for 3 s), an event is answered again.
            let first = c.next_ack;
            for _ in 0..FLOOD {
                let id = c.next_ack;
                c.next_ack += 1;
                c.ws.feed(Message::text(format!(
                    "42{id}[\"typing\",{{\"sessionId\":\"nowhere\"}}]"
                )))
                .await
                .map_err(|e| e.to_string())?;
            }
            c.ws.flush().await.map_err(|e| e.to_string())?;
            let mut answered = 0;
            while answered < FLOOD {
                match timeout(Duration::from_secs(3), c.recv()).await {
                    Err(_) => break,
                    Ok(In::Ack(t)) => {
                        let Some((got, v)) = parse_ack(&t) else {
                            continue;
                        };
                        if got < first {
                            continue;
                        }
                        answered += 1;
                        match v["error"].as_str() {
                            Some("RATE_LIMITED") => {
                                cfg.c.rate_limited.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("NOT_IN_SESSION") => {}
                            _ => return Err(format!("flood: answered {v}")),
                        }
                    }
                    // A flooder whose replies fill its outgoing buffer is cut off (a slow
                    // reader, MAX_BUFFERED_PACKETS) or closed when its heartbeat ping
                    // cannot be queued. A closed flooder is counted, not a failure.
                    Ok(In::Closed(_)) => {
                        cfg.c.flood_closed.fetch_add(1, Ordering::Relaxed);
                        cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                        cfg.c.flood_sent.fetch_add(FLOOD, Ordering::Relaxed);
                        cfg.c.flood_answered.fetch_add(answered, Ordering::Relaxed);
                        return Ok(());
                    }
                    Ok(_) => {}
                }
            }
            cfg.c.flood_sent.fetch_add(FLOOD, Ordering::Relaxed);
            cfg.c.flood_answered.fetch_add(answered, Ordering::Relaxed);
            let id = c
                .emit("get-public-keys", &json!({"sessionId": "nowhere"}))
                .await?;
            let Some(v) = ack_or_close(&mut c, id).await? else {
                // Cut off just after its flood (a full outgoing buffer, or the heartbeat
                // that could not be queued): the same verdict as a close during it.
                cfg.c.flood_closed.fetch_add(1, Ordering::Relaxed);
                cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            expect_code(cfg, Some(v), &["NOT_IN_SESSION"], "after a flood")?;
        }
    }
    if rng.below(2) == 0 {
        c.close().await;
    }
    Ok(())
}

async fn abuser(cfg: Arc<Cfg>, k: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ 0xABCD ^ (k as u64).wrapping_mul(0x3000_0001));
    let mut i = 0;
    while Instant::now() < cfg.deadline {
        match abuse_once(&cfg, k, i, &mut rng).await {
            Ok(()) => {
                cfg.c.abuse_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => cfg.c.abuse_wrong(e),
        }
        i += 1;
        sleep(Duration::from_millis(100 + rng.below(400))).await;
    }
}

// ---------------------------------------------------------------------------------------
// The server: /health and RSS
// ---------------------------------------------------------------------------------------

async fn health(addr: &str) -> R<Value> {
    let fut = async {
        let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        tcp.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .ok_or("no HTTP body")?;
        serde_json::from_str(body).map_err(|e| format!("/health: {e}"))
    };
    timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "/health timed out".to_owned())?
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Peaks {
    rss_kib: u64,
    connections: u64,
    sessions: u64,
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn parse_url(raw: &str) -> R<(String, String)> {
    let rest = raw
        .strip_prefix("ws://")
        .or_else(|| raw.strip_prefix("http://"))
        .ok_or("--url must be http://HOST:PORT or ws://HOST:PORT")?;
    let hostport = rest.split('/').next().unwrap_or(rest).to_owned();
    if !hostport.contains(':') {
        return Err("--url needs a port".into());
    }
    let url = format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket");
    Ok((hostport, url))
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    std::process::exit(rt.block_on(run(args)));
}

async fn run(args: Args) -> i32 {
    let (addr, url) = match parse_url(&args.url) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("blindrelay-soak: {e}");
            return 2;
        }
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let abusers = args.abusers.unwrap_or(args.sessions / 20);
    let start_health = match health(&addr).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("blindrelay-soak: the server does not answer /health: {e}");
            return 2;
        }
    };
    let rss_start = rss_kib(args.server_pid);
    let started = Instant::now();
    let cfg = Arc::new(Cfg {
        addr: addr.clone(),
        url,
        sem: Semaphore::new(args.connect_concurrency.max(1)),
        prefix: format!("soak{:x}", seed & 0xff_ffff),
        deadline: started + Duration::from_secs_f64(args.duration),
        deliver_timeout: Duration::from_secs_f64(args.deliver_timeout),
        round_pause: Duration::from_millis(args.round_pause_ms),
        max_payload: args.max_payload_bytes,
        history_max: args.history_max_bytes,
        sessions: args.sessions.max(1),
        c: Counters::default(),
    });
    eprintln!(
        "soak: {} sessions ({} connections) + {abusers} abusers for {:.0} s against {addr}",
        args.sessions,
        args.sessions * 2,
        args.duration
    );

    // Samples the server every second.
    let peaks = Arc::new(Mutex::new(Peaks::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peaks, stop, addr, pid) = (peaks.clone(), stop.clone(), addr.clone(), args.server_pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_kib(pid).unwrap_or(0);
                let h = health(&addr).await.unwrap_or(Value::Null);
                {
                    let mut p = peaks.lock().unwrap();
                    p.rss_kib = p.rss_kib.max(rss);
                    p.connections = p.connections.max(h["connections"].as_u64().unwrap_or(0));
                    p.sessions = p.sessions.max(h["sessions"].as_u64().unwrap_or(0));
                }
                sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let progress = {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                eprintln!(
                    "soak: {:>4.0} s: {} sessions, {} deliveries, {} lost, {} dup, {} honest errors, {} abuses",
                    started.elapsed().as_secs_f64(),
                    n(&cfg.c.sessions_started),
                    n(&cfg.c.deliveries),
                    n(&cfg.c.lost),
                    n(&cfg.c.duplicated),
                    n(&cfg.c.honest_errors),
                    n(&cfg.c.abuse_connections),
                );
            }
        })
    };

    let mut tasks = Vec::new();
    for w in 0..args.sessions {
        tasks.push(tokio::spawn(honest(cfg.clone(), w, seed)));
    }
    for k in 0..abusers {
        tasks.push(tokio::spawn(abuser(cfg.clone(), k, seed)));
    }
    // Workers finish the session they are in after the deadline (bounded by their own
    // timeouts); two minutes more is plenty.
    let workers_limit = Duration::from_secs_f64(args.duration) + Duration::from_secs(120);
    let workers_done = timeout(workers_limit, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await
    .is_ok();
    let traffic_s = started.elapsed().as_secs_f64();

    // Every session reaped, every connection gone.
    let reap_started = Instant::now();
    let mut end_health = Value::Null;
    let mut reaped = false;
    while reap_started.elapsed().as_secs_f64() < args.reap_timeout {
        if let Ok(h) = health(&addr).await {
            let done = h["sessions"] == 0 && h["connections"] == 0;
            end_health = h;
            if done {
                reaped = true;
                break;
            }
        }
        sleep(Duration::from_millis(250)).await;
    }
    let reaped_after_s = reap_started.elapsed().as_secs_f64();
    let rss_end = rss_kib(args.server_pid);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    progress.abort();
    let peaks = std::mem::take(&mut *peaks.lock().unwrap());

    let c = &cfg.c;
    let honest_ok = n(&c.lost) == 0
        && n(&c.duplicated) == 0
        && n(&c.history_missing) == 0
        && n(&c.honest_errors) == 0
        && n(&c.honest_disconnects) == 0
        && n(&c.deliveries) == n(&c.deliveries_expected);
    if !workers_done {
        c.note(format!(
            "workers still running {workers_limit:?} after the start"
        ));
    }
    let ok = honest_ok && n(&c.abuse_wrong) == 0 && reaped && workers_done;
    let kinds: serde_json::Map<String, Value> = c
        .abuse_kinds
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let codes: serde_json::Map<String, Value> = c
        .error_codes
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let summary = json!({
        "ok": ok,
        "duration_s": (traffic_s * 10.0).round() / 10.0,
        "sessions_concurrent": args.sessions,
        "connections_concurrent": args.sessions * 2,
        "abusers": abusers,
        "sessions_started": n(&c.sessions_started),
        "sessions_completed": n(&c.sessions_completed),
        "session_ends": {
            "leave": n(&c.ends[0]), "reconnect_then_leave": n(&c.ends[1]),
            "drop_for_reaper": n(&c.ends[2]), "close": n(&c.ends[3]),
        },
        "connections_opened": n(&c.connections_opened),
        "peak_server_connections": peaks.connections,
        "peak_server_sessions": peaks.sessions,
        "messages_sent": n(&c.messages_sent),
        "deliveries_expected": n(&c.deliveries_expected),
        "deliveries": n(&c.deliveries),
        "lost": n(&c.lost),
        "duplicated": n(&c.duplicated),
        "history_checked": n(&c.history_checked),
        "history_missing": n(&c.history_missing),
        "honest_errors": n(&c.honest_errors),
        "honest_disconnects": n(&c.honest_disconnects),
        "abuse_connections": n(&c.abuse_connections),
        "abuse_answered_as_expected": n(&c.abuse_ok),
        "abuse_wrong_answers": n(&c.abuse_wrong),
        "abuse_closed_by_server": n(&c.abuse_closed_by_server),
        "abuse_kinds": kinds,
        "abuse_error_codes": codes,
        "rate_limited": n(&c.rate_limited),
        "flood_events": n(&c.flood_sent),
        "flood_events_answered": n(&c.flood_answered),
        "flood_connections_closed_by_server": n(&c.flood_closed),
        "reaped": reaped,
        "reaped_after_s": (reaped_after_s * 10.0).round() / 10.0,
        "health_start": start_health,
        "health_end": end_health,
        "rss_kib": { "start": rss_start, "peak": peaks.rss_kib.max(rss_start.unwrap_or(0)), "end": rss_end },
        "first_errors": *c.first_errors.lock().unwrap(),
    });
    println!("{summary}");
    let mb = |k: Option<u64>| k.map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    eprintln!("\n{:<34} {}", "soak", if ok { "PASS" } else { "FAIL" });
    let rows: Vec<(&str, String)> = vec![
        ("traffic duration", format!("{traffic_s:.1} s")),
        (
            "sessions (concurrent / started)",
            format!("{} / {}", args.sessions, n(&c.sessions_started)),
        ),
        (
            "connections opened (honest+abuse)",
            n(&c.connections_opened).to_string(),
        ),
        (
            "peak server connections / sessions",
            format!("{} / {}", peaks.connections, peaks.sessions),
        ),
        ("messages sent", n(&c.messages_sent).to_string()),
        (
            "deliveries (expected / counted)",
            format!("{} / {}", n(&c.deliveries_expected), n(&c.deliveries)),
        ),
        (
            "lost / duplicated",
            format!("{} / {}", n(&c.lost), n(&c.duplicated)),
        ),
        (
            "history ids checked / missing",
            format!("{} / {}", n(&c.history_checked), n(&c.history_missing)),
        ),
        (
            "honest errors / disconnects",
            format!("{} / {}", n(&c.honest_errors), n(&c.honest_disconnects)),
        ),
        (
            "abuses (ok / wrong / closed)",
            format!(
                "{} ({} / {} / {})",
                n(&c.abuse_connections),
                n(&c.abuse_ok),
                n(&c.abuse_wrong),
                n(&c.abuse_closed_by_server)
            ),
        ),
        (
            "flood events (sent / answered / RATE_LIMITED)",
            format!(
                "{} / {} / {}",
                n(&c.flood_sent),
                n(&c.flood_answered),
                n(&c.rate_limited)
            ),
        ),
        (
            "every session reaped",
            format!("{reaped} (after {reaped_after_s:.1} s)"),
        ),
        (
            "server RSS start / peak / end",
            format!(
                "{} / {} / {}",
                mb(rss_start),
                mb(Some(peaks.rss_kib)),
                mb(rss_end)
            ),
        ),
    ];
    for (k, v) in rows {
        eprintln!("{k:<34} {v}");
    }
    for e in c.first_errors.lock().unwrap().iter() {
        eprintln!("error: {e}");
    }
    if ok { 0 } else { 1 }
}
