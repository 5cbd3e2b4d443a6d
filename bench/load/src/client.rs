//! One Socket.IO connection, spoken by hand: Engine.IO v4 / Socket.IO v5 over WebSocket
//! (raw text frames through tokio-tungstenite, no Socket.IO library), so that the client
//! costs less than the server it loads.
//!
//! Wire, per connection: `ws://HOST:PORT/socket.io/?EIO=4&transport=websocket`, read the
//! `0{...}` open packet, send `40`, read up to the `40...` connect packet; `2` pings are
//! answered `3` at any time. Events are `42["name",payload]`, with an ack
//! `42<id>["name",payload]` answered by `43<id>[response]`.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes, protocol::WebSocketConfig};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::{R, rx};

/// One server (or one node of a cluster) to connect to.
pub struct Endpoint {
    /// `host:port` for the TCP connection (and plain HTTP requests).
    pub addr: String,
    /// Full WebSocket URL.
    pub url: String,
}

impl Endpoint {
    /// `ws://HOST:PORT` (or `http://`, or no scheme; port 80 when none); the Socket.IO
    /// path `/socket.io/?EIO=4&transport=websocket` is added unless the URL names one.
    /// No TLS.
    pub fn parse(raw: &str) -> R<Endpoint> {
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("wss://") || lower.starts_with("https://") {
            return Err("TLS (wss://, https://) is not supported: use ws://HOST:PORT".into());
        }
        let rest = raw
            .strip_prefix("ws://")
            .or_else(|| raw.strip_prefix("http://"))
            .unwrap_or(raw);
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if hostport.is_empty() {
            return Err(format!("no host in --url {raw}"));
        }
        let hostport = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        let path = if path.contains("socket.io") {
            path.to_owned()
        } else {
            "/socket.io/?EIO=4&transport=websocket".to_owned()
        };
        Ok(Endpoint {
            url: format!("ws://{hostport}{path}"),
            addr: hostport,
        })
    }
}

/// A frame that matters, as [`Conn::recv`] returns it.
pub enum In {
    /// `42...`
    Event(Utf8Bytes),
    /// `43...`
    Ack(Utf8Bytes),
    /// Any other text frame (handshake packets).
    Other(Utf8Bytes),
    /// The connection is over (with why).
    Closed(String),
}

/// Why no ack came (see [`Conn::read_ack`]).
pub enum NoAck {
    /// The connection ended first (with why).
    Closed(String),
    /// The ack came, but its arguments are not JSON.
    Bad(String),
}

static TRACE: AtomicBool = AtomicBool::new(false);

/// Prints every frame sent (`>>`) and received (`<<`), first 200 bytes, to stderr.
pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

/// The first 200 bytes of a frame (at a char boundary), for traces and error messages.
pub fn clip(s: &str) -> &str {
    let mut n = s.len().min(200);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

fn hint_io(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(24) => format!(
            "{e}: out of file descriptors; raise the limit before running (e.g. `ulimit -n 65536`, \
             the hard limit too if needed)"
        ),
        Some(99) => format!(
            "{e}: out of local ports (TIME_WAIT); lower --connections/--concurrency or widen \
             net.ipv4.ip_local_port_range"
        ),
        Some(111) => format!("{e}: is the server listening at --url?"),
        _ => e.to_string(),
    }
}

fn hint_ws(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => hint_io(&io),
        e => e.to_string(),
    }
}

/// An ack frame `43<id>[args]` split into its id and the text of its arguments.
fn split_ack(t: &str) -> Option<(u32, &str)> {
    let rest = t.strip_prefix("43")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}

/// The id and first argument of an ack frame `43<id>[arg]`.
pub fn parse_ack(t: &str) -> Option<(u32, Value)> {
    let (id, args) = split_ack(t)?;
    let v: Value = serde_json::from_str(args).ok()?;
    Some((id, v.get(0).cloned().unwrap_or(Value::Null)))
}

/// One Socket.IO connection to the default namespace.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    pong_due: bool,
    next_ack: u32,
}

impl Conn {
    /// TCP + WebSocket + Engine.IO open + Socket.IO connect to the default namespace.
    pub async fn open(server: &Endpoint) -> R<Conn> {
        let tcp = TcpStream::connect(&server.addr)
            .await
            .map_err(|e| hint_io(&e))?;
        let _ = tcp.set_nodelay(true);
        let wsc = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (ws, _) = client_async_with_config(server.url.as_str(), tcp, Some(wsc))
            .await
            .map_err(hint_ws)?;
        let mut c = Conn {
            ws,
            pong_due: false,
            next_ack: 0,
        };
        match c.recv().await {
            In::Other(t) if t.starts_with('0') => {}
            In::Closed(e) => return Err(format!("closed before the open packet: {e}")),
            In::Event(t) | In::Ack(t) | In::Other(t) => {
                return Err(format!(
                    "expected the Engine.IO open packet `0{{...}}`, got {t}"
                ));
            }
        }
        c.send("40".to_owned()).await?;
        loop {
            match c.recv().await {
                In::Other(t) if t.starts_with("40") => return Ok(c),
                In::Other(t) if t.starts_with("44") => return Err(format!("connect refused: {t}")),
                In::Closed(e) => return Err(format!("closed before the connect packet: {e}")),
                _ => {}
            }
        }
    }

    /// [`Conn::open`] once `sem` lets it (bounded concurrency), in `limit` at most from
    /// then on; with the time the opening took.
    pub async fn open_bounded(
        server: &Endpoint,
        sem: &Semaphore,
        limit: Duration,
    ) -> R<(Conn, Duration)> {
        let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
        let t = Instant::now();
        match timeout(limit, Conn::open(server)).await {
            Ok(r) => r.map(|c| (c, t.elapsed())),
            Err(_) => Err(format!(
                "connect timed out after {:.1} s",
                limit.as_secs_f64()
            )),
        }
    }

    /// The next frame that matters; `2` pings are answered `3`. Cancel-safe: a pong owed
    /// when cancelled is sent on the next call.
    pub async fn recv(&mut self) -> In {
        loop {
            if self.pong_due {
                if let Err(e) = self.ws.send(Message::text("3")).await {
                    return In::Closed(e.to_string());
                }
                self.pong_due = false;
            }
            match self.ws.next().await {
                None => return In::Closed("connection closed".into()),
                Some(Err(e)) => return In::Closed(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    if TRACE.load(Ordering::Relaxed) {
                        eprintln!("<< {}", clip(&t));
                    }
                    rx::count(&t);
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
                        return In::Other(t);
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    return In::Closed(format!("close frame {f:?}"));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Sends one text frame.
    pub async fn send(&mut self, s: String) -> R<()> {
        if TRACE.load(Ordering::Relaxed) {
            eprintln!(">> {}", clip(&s));
        }
        self.ws.send(Message::text(s)).await.map_err(hint_ws)
    }

    /// Queues one text frame without flushing (see [`Conn::flush`]).
    pub async fn feed(&mut self, s: String) -> R<()> {
        if TRACE.load(Ordering::Relaxed) {
            eprintln!(">> {}", clip(&s));
        }
        self.ws.feed(Message::text(s)).await.map_err(hint_ws)
    }

    /// Sends what [`Conn::feed`] queued.
    pub async fn flush(&mut self) -> R<()> {
        self.ws.flush().await.map_err(hint_ws)
    }

    /// Sends one binary frame (no Socket.IO client sends one on its own).
    pub async fn send_binary(&mut self, b: Vec<u8>) -> R<()> {
        self.ws.send(Message::binary(b)).await.map_err(hint_ws)
    }

    /// The next ack id of this connection.
    pub fn ack_id(&mut self) -> u32 {
        let id = self.next_ack;
        self.next_ack += 1;
        id
    }

    /// Emits `42["event",payload]`, asking for no ack.
    pub async fn emit(&mut self, event: &str, payload: impl Display) -> R<()> {
        self.send(format!("42[\"{event}\",{payload}]")).await
    }

    /// Emits `42<id>["event",payload]` with a new ack id, returned.
    pub async fn emit_ack(&mut self, event: &str, payload: impl Display) -> R<u32> {
        let id = self.ack_id();
        self.send(format!("42{id}[\"{event}\",{payload}]")).await?;
        Ok(id)
    }

    /// Reads up to the ack `43<id>[...]` and returns its first argument; other frames
    /// are passed over. No time limit: the caller sets one.
    pub async fn read_ack(&mut self, id: u32) -> Result<Value, NoAck> {
        loop {
            match self.recv().await {
                In::Ack(t) => match split_ack(&t) {
                    Some((got, args)) if got == id => {
                        let v: Value =
                            serde_json::from_str(args).map_err(|e| NoAck::Bad(e.to_string()))?;
                        return Ok(v.get(0).cloned().unwrap_or(Value::Null));
                    }
                    _ => {}
                },
                In::Closed(e) => return Err(NoAck::Closed(e)),
                _ => {}
            }
        }
    }

    /// Closes the WebSocket (2 s at most).
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}
