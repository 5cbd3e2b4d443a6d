//! `blindrelay-bench`: a load generator for Socket.IO chat relays.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself (raw text frames through
//! tokio-tungstenite, no Socket.IO library), so it costs less than the server it loads, and
//! it loads any server that speaks the protocol: blindrelay, the floor relay
//! (`bench-floor`), the Node.js peer (`bench/node-peer`), or the original Node server.
//!
//! Wire, per connection: `ws://HOST:PORT/socket.io/?EIO=4&transport=websocket`, read the
//! `0{...}` open packet, send `40`, read up to the `40...` connect packet; `2` pings are
//! answered `3` at any time. Events are `42["name",payload]`, with an ack
//! `42<id>["name",payload]` answered by `43<id>[response]`.
//!
//! Rooms: member 1 joins as creator (`{sessionId:"<room>", userId:"u1", isCreator:true,
//! authKey:"k", publicKey:"pk1"}`), the others with `sessionId:"<room>:k"`. With `--acks
//! true` (blindrelay, bench-floor, the Node peer) every join waits for its ack; with
//! `--acks false` (the original Node server sends no acks) every join waits for the
//! evidence that the server handled it: the `public-keys-updated` that lists the joiner,
//! which the server sends to the whole room, joiner included, once the joiner is in it
//! (`--ack-timeout` at most). Messages are `send-message
//! {sessionId, to:"all", encrypted}` without ack. `encrypted` is
//! `m<phase>.<sender>.<seq>.<sent-ns>.<filler>`, padded to `--payload-bytes`; the
//! receiver parses it out of `new-message` and records latency = now - sent (both read
//! from one monotonic clock started with the process). Every (sender, seq) is tracked per
//! recipient to count losses and duplicates.
//!
//! Each scenario prints one JSON object on one line to stdout and a table to stderr.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes, protocol::WebSocketConfig};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Two-person rooms, both members sending: saturation (closed loop) then fixed rate.
    Pairs,
    /// One room of --members, one sender at --rate.
    Fanout,
    /// --connections idle connections, two per room: join rate and server memory.
    Idle,
    /// Workers creating, using and leaving two-person rooms in a loop.
    Churn,
    /// --groups group rooms of --members (default 64) filled one join at a time, each
    /// join waiting for its ack: per-join latency by position, server CPU per join, bytes
    /// received by all clients (every join sends the whole key list to the room).
    Groupfill,
    /// pairs, fanout (50 then 500 members), idle, churn, groupfill with their defaults
    /// (80-90 s on loopback with the defaults).
    All,
}

/// Load generator for Socket.IO (Engine.IO v4 / Socket.IO v5) chat relays: blindrelay,
/// bench-floor, the Node.js peer (bench/node-peer), or the original Node server.
///
/// Each scenario prints one JSON object on one line to stdout and a readable table to
/// stderr. Exit status: 0 when every scenario ran; 1 when one failed (or, with --smoke,
/// delivered nothing); 2 for bad arguments.
///
/// Against blindrelay, fanout with 500 members needs the server started with
/// MAX_GROUP_MEMBERS=500 or more (default 64). Against the original Node server, which
/// sends no acks, pass --acks false.
///
/// Several nodes sharing rooms (blindrelay with REDIS_URL): give every node's URL
/// (`--url A,B` or `--url A --url B`) and every node's PID; connections are assigned to
/// the nodes round-robin so that the members of a room sit on different nodes.
#[derive(Parser, Debug, Clone)]
#[command(name = "blindrelay-bench", version, about, long_about)]
struct Args {
    /// Server to load: ws://HOST:PORT (http:// is accepted; the Socket.IO path
    /// /socket.io/?EIO=4&transport=websocket is added unless the URL names one). No TLS.
    /// Several nodes of one cluster: a comma-separated list, or the flag repeated. Member
    /// m of room r connects to node (r + m) mod N: the two members of a pair, the sender
    /// and the receivers of a fanout, the creator and the joiner of a churn room, and the
    /// successive joiners of a group sit on different nodes.
    #[arg(
        long,
        env = "BENCH_URL",
        default_value = "ws://127.0.0.1:3001",
        value_delimiter = ',',
        action = ArgAction::Append
    )]
    url: Vec<String>,

    /// Scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,

    /// pairs: number of two-person rooms (2 connections each).
    #[arg(long, default_value_t = 100)]
    rooms: usize,

    /// pairs saturation: messages each member keeps in flight (sent, not yet received by
    /// its peer).
    #[arg(long, default_value_t = 16)]
    window: u64,

    /// Seconds each measured phase lasts (pairs saturation, pairs fixed rate, fanout) and
    /// the length of the churn run. Fractions allowed.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,

    /// Messages per second in total, spread evenly over the senders. Default 2000 for
    /// pairs (fixed-rate phase), 200 for fanout (its single sender).
    #[arg(long)]
    rate: Option<f64>,

    /// fanout: members of the room (the sender included). Default 50; `all` runs fanout
    /// with 50 and then 500 unless this is given. groupfill: members each group fills up
    /// to (default 64, blindrelay's default MAX_GROUP_MEMBERS).
    #[arg(long)]
    members: Option<usize>,

    /// groupfill: group rooms filled one after the other (all connections are opened
    /// first; the figures cover every fill).
    #[arg(long, default_value_t = 16)]
    groups: usize,

    /// groupfill: length of each member's publicKey (124 = a base64 P-256 SPKI, what the
    /// web client sends). The other scenarios send 3-byte keys.
    #[arg(long, default_value_t = 124)]
    key_bytes: usize,

    /// Length of the `encrypted` string of each message, in bytes (at least the header,
    /// ~40 bytes).
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,

    /// idle: connections to open (joined two per room; rounded up to an even number).
    #[arg(long, default_value_t = 2000)]
    connections: usize,

    /// idle: seconds to hold the connections open while sampling server RSS each second.
    #[arg(long, default_value_t = 10)]
    hold: u64,

    /// churn: concurrent workers (each one room, two connections, at a time).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,

    /// Ask for and wait for join-session and leave-session acks (blindrelay, bench-floor
    /// and the Node peer ack). `--acks false` for servers that send none (the original
    /// Node server): each join then waits until its client receives the
    /// `public-keys-updated` that lists it (the server's last word on a join, sent to the
    /// whole room), and leaves are not awaited. groupfill needs acks.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    acks: bool,

    /// Seconds to wait for an ack (join-session, leave-session), or with --acks false for
    /// the key list that shows a join was handled, before failing.
    #[arg(long, default_value_t = 5.0)]
    ack_timeout: f64,

    /// Connections being opened at the same time, at most.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,

    /// Seconds allowed for one connection to open (TCP, WebSocket, Socket.IO connect).
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,

    /// Seconds after the end of sending during which late messages are still awaited;
    /// what has not arrived by then is lost.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,

    /// PID of the server process (same machine): reports its CPU time (utime+stime from
    /// /proc/PID/stat) per measured phase, CPU µs per delivered message, and VmRSS.
    /// Several nodes: a comma-separated list or the flag repeated; CPU and RSS are then
    /// summed over the nodes (and also given per node).
    #[arg(long, value_delimiter = ',', action = ArgAction::Append)]
    server_pid: Vec<u32>,

    /// PID of the redis-server the nodes share (same machine): its CPU per phase is
    /// reported beside the nodes', and added to them in `total_cpu_us_per_unit`.
    #[arg(long)]
    redis_pid: Option<u32>,

    /// Tokio worker threads of the generator (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,

    /// Tiny run of every scenario (4 rooms, 1 s phases, 5-member fanout, 20 idle
    /// connections held 1 s, churn 1 s with 4 workers, 2 groups of 5) finishing in a few
    /// seconds; exits
    /// non-zero if anything failed or nothing was delivered. Other flags (--url, --acks,
    /// --server-pid) still apply; the sizes are the smoke sizes.
    #[arg(long)]
    smoke: bool,

    /// Print every frame sent (>>) and received (<<), first 200 bytes, to stderr. For
    /// debugging a server with a tiny run (e.g. --rooms 1 --duration 0.2).
    #[arg(long)]
    trace: bool,
}

// ---------------------------------------------------------------------------------------
// Configuration shared by every task
// ---------------------------------------------------------------------------------------

/// One node to connect to.
struct Node {
    /// `host:port` for the TCP connection.
    addr: String,
    /// Full WebSocket URL.
    url: String,
}

struct Cfg {
    /// The nodes, in --url order (one for a single server).
    nodes: Vec<Node>,
    /// Their WebSocket URLs, comma-separated (for the reports).
    url: String,
    acks: bool,
    ack_timeout: Duration,
    connect_timeout: Duration,
    connect_sem: Arc<Semaphore>,
    /// Time to open one connection (TCP, WebSocket, Socket.IO connect), since the last take.
    connect_lat: std::sync::Mutex<Hist>,
    payload_bytes: usize,
    filler: String,
    /// Padding for groupfill's public keys (--key-bytes).
    filler_for_keys: String,
    drain: Duration,
    /// Server PIDs (one per node, or none).
    pids: Vec<u32>,
    redis_pid: Option<u32>,
    /// Prefix of every room id, unique per run so that rooms left by earlier runs (kept
    /// by blindrelay for SESSION_TTL_SECS) are never reused.
    prefix: String,
}

type R<T> = Result<T, String>;

fn parse_url(raw: &str) -> R<(String, String)> {
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
    Ok((hostport.clone(), format!("ws://{hostport}{path}")))
}

// ---------------------------------------------------------------------------------------
// Clock, /proc, rlimit
// ---------------------------------------------------------------------------------------

static START: OnceLock<std::time::Instant> = OnceLock::new();

/// Nanoseconds since the generator started (one monotonic clock for senders and receivers).
fn now_ns() -> u64 {
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

#[cfg(target_os = "linux")]
mod sys {
    use std::os::raw::{c_int, c_long, c_ulong};

    #[repr(C)]
    struct RLimit {
        cur: c_ulong,
        max: c_ulong,
    }

    unsafe extern "C" {
        fn sysconf(name: c_int) -> c_long;
        fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
        fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    }

    const SC_CLK_TCK: c_int = 2;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
    const RLIMIT_NOFILE: c_int = 7;
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const RLIMIT_NOFILE: c_int = 5;

    pub fn clk_tck() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let t = unsafe { sysconf(SC_CLK_TCK) };
        if t > 0 { t as u64 } else { 100 }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) after.
    pub fn raise_nofile() -> Option<(u64, u64)> {
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: r is a valid, writable rlimit.
        if unsafe { getrlimit(RLIMIT_NOFILE, &mut r) } != 0 {
            return None;
        }
        if r.cur < r.max {
            let want = RLimit {
                cur: r.max,
                max: r.max,
            };
            // SAFETY: want is a valid rlimit.
            if unsafe { setrlimit(RLIMIT_NOFILE, &want) } == 0 {
                r.cur = r.max;
            }
        }
        Some((r.cur, r.max))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub fn clk_tck() -> u64 {
        100
    }
    pub fn raise_nofile() -> Option<(u64, u64)> {
        None
    }
}

/// utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat).
fn proc_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its closing ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after[0] is field 3 (state): field 14 is index 11, field 15 index 12.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    static TCK: OnceLock<u64> = OnceLock::new();
    Some(ticks as f64 / *TCK.get_or_init(sys::clk_tck) as f64)
}

/// VmRSS of a process, in KiB.
fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// VmRSS summed over the server PIDs (None without PIDs or when one cannot be read).
fn rss_sum(cfg: &Cfg) -> Option<u64> {
    if cfg.pids.is_empty() {
        return None;
    }
    cfg.pids.iter().map(|&p| proc_rss_kib(p)).sum()
}

/// VmRSS of each server PID.
fn rss_per_node(cfg: &Cfg) -> Vec<Option<u64>> {
    cfg.pids.iter().map(|&p| proc_rss_kib(p)).collect()
}

/// CPU of the servers, of Redis and of the generator at one moment.
struct Probe {
    at: Instant,
    /// One per server PID.
    server: Vec<Option<f64>>,
    redis: Option<f64>,
    client: Option<f64>,
}

fn probe(cfg: &Cfg) -> Probe {
    Probe {
        at: Instant::now(),
        server: cfg
            .pids
            .iter()
            .map(|p| proc_cpu_s(&p.to_string()))
            .collect(),
        redis: cfg.redis_pid.and_then(|p| proc_cpu_s(&p.to_string())),
        client: proc_cpu_s("self"),
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// CPU figures between two probes; `units` delivered messages (or deliveries, joins).
/// `server_*` is summed over the nodes; with several nodes the per-node figures follow,
/// with --redis-pid Redis's own and the total (nodes + Redis).
fn cpu_json(cfg: &Cfg, before: &Probe, after: &Probe, units: u64) -> Value {
    let nodes: Vec<Option<f64>> = before
        .server
        .iter()
        .zip(&after.server)
        .map(|(&a, &b)| delta(a, b))
        .collect();
    let server: Option<f64> = if nodes.is_empty() {
        None
    } else {
        nodes.iter().copied().sum()
    };
    let redis = delta(before.redis, after.redis);
    let client = delta(before.client, after.client);
    let per = |x: Option<f64>| {
        x.filter(|_| units > 0)
            .map(|s| round2(s * 1e6 / units as f64))
    };
    let mut j = json!({
        "window_s": round3((after.at - before.at).as_secs_f64()),
        "server_cpu_s": server.map(round3),
        "server_cpu_us_per_unit": per(server),
        "server_rss_kib": rss_sum(cfg),
        "client_cpu_s": client.map(round3),
    });
    if cfg.pids.len() > 1 {
        j["nodes"] = json!(cfg.pids.len());
        j["server_cpu_s_per_node"] = json!(nodes.iter().map(|c| c.map(round3)).collect::<Vec<_>>());
        j["server_rss_kib_per_node"] = json!(rss_per_node(cfg));
    }
    if let Some(pid) = cfg.redis_pid {
        j["redis_cpu_s"] = json!(redis.map(round3));
        j["redis_cpu_us_per_unit"] = json!(per(redis));
        j["redis_rss_kib"] = json!(proc_rss_kib(pid));
        let total = match (server, redis) {
            (Some(s), Some(r)) => Some(s + r),
            _ => None,
        };
        j["total_cpu_us_per_unit"] = json!(per(total));
    }
    j
}

/// With several nodes or Redis: one more table line with the CPU split.
fn cpu_split_line(cpu: &Value, per_unit: &Value, unit: &str) {
    let f = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    if !cpu["server_cpu_s_per_node"].is_null() {
        eprintln!(
            "    nodes: CPU s {} (sum {} µs/{unit}), RSS KiB {}",
            f(&cpu["server_cpu_s_per_node"]),
            f(per_unit),
            f(&cpu["server_rss_kib_per_node"]),
        );
    }
    if cpu.get("redis_cpu_s").is_some() {
        eprintln!(
            "    redis: CPU {} s ({} µs/{unit}); nodes + redis {} µs/{unit}",
            f(&cpu["redis_cpu_s"]),
            f(&cpu["redis_cpu_us_per_unit"]),
            f(&cpu["total_cpu_us_per_unit"]),
        );
    }
}

fn take_per(cpu: &mut Value) -> Value {
    cpu.as_object_mut()
        .and_then(|o| o.remove("server_cpu_us_per_unit"))
        .unwrap_or(Value::Null)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        round2(n as f64 / secs)
    } else {
        0.0
    }
}

// ---------------------------------------------------------------------------------------
// Latency histogram (log-linear: exact below 128 µs, then 64 buckets per power of two,
// < 1 % error) and seen-sequence bitsets
// ---------------------------------------------------------------------------------------

const HIST_BUCKETS: usize = 128 + 25 * 64;

#[derive(Default)]
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u32,
}

impl Hist {
    fn index(v: u32) -> usize {
        if v < 128 {
            v as usize
        } else {
            let e = 31 - v.leading_zeros(); // 7..=31
            let m = (v >> (e - 6)) - 64; // 0..64
            (128 + (e - 7) * 64 + m) as usize
        }
    }

    /// Middle of bucket `i`.
    fn value(i: usize) -> u32 {
        if i < 128 {
            i as u32
        } else {
            let j = (i - 128) as u32;
            let e = j / 64 + 7;
            let m = j % 64 + 64;
            let lo = (m as u64) << (e - 6);
            let hi = ((m as u64 + 1) << (e - 6)) - 1;
            ((lo + hi) / 2).min(u32::MAX as u64) as u32
        }
    }

    fn record(&mut self, v: u32) {
        if self.counts.is_empty() {
            self.counts = vec![0; HIST_BUCKETS];
        }
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    fn record_ns(&mut self, ns: u64) {
        self.record((ns / 1000).min(u32::MAX as u64) as u32);
    }

    fn merge(&mut self, o: &Hist) {
        if o.n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; HIST_BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    fn pct(&self, q: f64) -> Option<u32> {
        if self.n == 0 {
            return None;
        }
        let target = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= target {
                return Some(Self::value(i).min(self.max));
            }
        }
        Some(self.max)
    }

    fn json(&self) -> Value {
        json!({
            "samples": self.n,
            "p50": self.pct(0.50),
            "p90": self.pct(0.90),
            "p99": self.pct(0.99),
            "max": (self.n > 0).then_some(self.max),
        })
    }

    fn row(&self) -> String {
        let f = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        format!(
            "{:>7} {:>7} {:>7} {:>8}",
            f(self.pct(0.5)),
            f(self.pct(0.9)),
            f(self.pct(0.99)),
            f((self.n > 0).then_some(self.max))
        )
    }
}

/// Sequence numbers of one sender seen by one recipient.
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    unique: u64,
}

impl Seen {
    /// True when `seq` is new.
    fn mark(&mut self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        if w >= self.bits.len() {
            self.bits.resize(w + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.bits[w] & bit != 0 {
            return false;
        }
        self.bits[w] |= bit;
        self.unique += 1;
        true
    }
}

/// Figures of one measured phase, merged over tasks.
#[derive(Default)]
struct Stats {
    sent: u64,
    delivered: u64,
    /// Delivered before the phase's deadline (for rates).
    in_window: u64,
    dup: u64,
    lost: u64,
    /// new-message frames of another phase, sender or an unknown format.
    unexpected: u64,
    errors: u64,
    first_error: Option<String>,
    lat: Hist,
    /// Fixed rate: actual send time - scheduled send time.
    lag: Hist,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.in_window += o.in_window;
        self.dup += o.dup;
        self.lost += o.lost;
        self.unexpected += o.unexpected;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.lat.merge(&o.lat);
        self.lag.merge(&o.lag);
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------

fn filler(n: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..n).map(|i| B64[(i * 7 + i / 64) % 64] as char).collect()
}

/// `42["send-message",{"sessionId":..,"to":"all","encrypted":"m<phase>.<sender>.<seq>.<ns>.<filler>"}]`
fn message_frame(cfg: &Cfg, room: &str, phase: u32, sender: u32, seq: u64) -> String {
    let mut s = String::with_capacity(cfg.payload_bytes + room.len() + 80);
    s.push_str("42[\"send-message\",{\"sessionId\":\"");
    s.push_str(room);
    s.push_str("\",\"to\":\"all\",\"encrypted\":\"");
    let start = s.len();
    let _ = write!(s, "m{phase}.{sender}.{seq}.{}.", now_ns());
    let used = s.len() - start;
    if used < cfg.payload_bytes {
        s.push_str(&cfg.filler[..cfg.payload_bytes - used]);
    }
    s.push_str("\"}]");
    s
}

struct Parsed {
    phase: u32,
    sender: u32,
    seq: u64,
    ns: u64,
}

/// Reads phase, sender, seq and send time out of a `42["new-message",{..."encrypted":"m..."}]`.
fn parse_new_message(t: &str) -> Option<Parsed> {
    const KEY: &str = "\"encrypted\":\"m";
    let rest = t.strip_prefix("42[\"new-message\",")?;
    let at = rest.find(KEY)? + KEY.len();
    let mut it = rest[at..].splitn(5, '.');
    let phase = it.next()?.parse().ok()?;
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some(Parsed {
        phase,
        sender,
        seq,
        ns,
    })
}

fn is_new_message(t: &str) -> bool {
    t.starts_with("42[\"new-message\",")
}

// ---------------------------------------------------------------------------------------
// One Socket.IO connection
// ---------------------------------------------------------------------------------------

enum In {
    /// `42...`
    Event(Utf8Bytes),
    /// `43...`
    Ack(Utf8Bytes),
    /// Any other text frame (handshake packets).
    Other(Utf8Bytes),
    /// The connection is over (with why).
    Closed(String),
}

static TRACE: AtomicBool = AtomicBool::new(false);

/// While set (groupfill), every text frame received by any connection is counted.
static COUNT_RX: AtomicBool = AtomicBool::new(false);
static RX_BYTES: AtomicU64 = AtomicU64::new(0);
static RX_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Of which `public-keys-updated` events.
static RX_KEYS_BYTES: AtomicU64 = AtomicU64::new(0);
static RX_KEYS_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Woken at every public-keys-updated counted.
static KEYS_NOTIFY: Notify = Notify::const_new();

/// Waits until `target` public-keys-updated frames have been counted, `limit` at most.
async fn await_keys_frames(target: u64, limit: Duration) -> bool {
    timeout(limit, async {
        loop {
            let woken = KEYS_NOTIFY.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if RX_KEYS_FRAMES.load(Ordering::Relaxed) >= target {
                return;
            }
            woken.await;
        }
    })
    .await
    .is_ok()
}

fn count_rx(t: &str) {
    let n = t.len() as u64;
    RX_BYTES.fetch_add(n, Ordering::Relaxed);
    RX_FRAMES.fetch_add(1, Ordering::Relaxed);
    if t.starts_with("42[\"public-keys-updated\"") {
        RX_KEYS_BYTES.fetch_add(n, Ordering::Relaxed);
        RX_KEYS_FRAMES.fetch_add(1, Ordering::Relaxed);
        KEYS_NOTIFY.notify_waiters();
    }
}

/// The first 200 bytes of a frame (at a char boundary), for --trace.
fn clip(s: &str) -> &str {
    let mut n = s.len().min(200);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    pong_due: bool,
    next_ack: u32,
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

impl Conn {
    /// TCP + WebSocket + Engine.IO open + Socket.IO connect to the default namespace of
    /// node `node` (modulo the number of nodes).
    async fn open(cfg: &Cfg, node: usize) -> R<Conn> {
        let node = &cfg.nodes[node % cfg.nodes.len()];
        let tcp = TcpStream::connect(&node.addr)
            .await
            .map_err(|e| hint_io(&e))?;
        let _ = tcp.set_nodelay(true);
        let wsc = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (ws, _) = client_async_with_config(node.url.as_str(), tcp, Some(wsc))
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

    /// The next frame that matters; `2` pings are answered `3`. Cancel-safe: a pong owed
    /// when cancelled is sent on the next call.
    async fn recv(&mut self) -> In {
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
                    if COUNT_RX.load(Ordering::Relaxed) {
                        count_rx(&t);
                    }
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

    async fn send(&mut self, s: String) -> R<()> {
        if TRACE.load(Ordering::Relaxed) {
            eprintln!(">> {}", clip(&s));
        }
        self.ws.send(Message::text(s)).await.map_err(hint_ws)
    }

    /// Emits `event` with `payload`; with an ack id when `ack` (returned).
    async fn emit(&mut self, event: &str, payload: &str, ack: bool) -> R<Option<u32>> {
        if ack {
            let id = self.next_ack;
            self.next_ack += 1;
            self.send(format!("42{id}[\"{event}\",{payload}]")).await?;
            Ok(Some(id))
        } else {
            self.send(format!("42[\"{event}\",{payload}]")).await?;
            Ok(None)
        }
    }

    /// Reads up to the ack `43<id>[...]` and returns its first argument.
    async fn wait_ack(&mut self, id: u32, limit: Duration, what: &str) -> R<Value> {
        let prefix = format!("43{id}[");
        let fut = async {
            loop {
                match self.recv().await {
                    In::Ack(t) if t.starts_with(&prefix) => {
                        let v: Value = serde_json::from_str(&t[prefix.len() - 1..])
                            .map_err(|e| format!("bad ack to {what}: {e}"))?;
                        return Ok(v.get(0).cloned().unwrap_or(Value::Null));
                    }
                    In::Closed(e) => {
                        return Err(format!("closed while waiting for the ack to {what}: {e}"));
                    }
                    _ => {}
                }
            }
        };
        match timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no ack to {what} within {:.1} s; for servers that send no acks (the original \
                 Node server) pass --acks false",
                limit.as_secs_f64()
            )),
        }
    }

    /// join-session as member `m` (0 = creator) of `room`. With acks, waits for it and
    /// checks `ok`; without, waits for the key list that lists the joiner.
    async fn join(&mut self, cfg: &Cfg, room: &str, m: usize) -> R<()> {
        self.join_with_key(cfg, room, m, 0).await
    }

    /// join-session with a publicKey `pk<u>` padded to `key_bytes` (0: unpadded).
    async fn join_with_key(&mut self, cfg: &Cfg, room: &str, m: usize, key_bytes: usize) -> R<()> {
        let u = m + 1;
        let mut key = format!("pk{u}.");
        if key.len() < key_bytes {
            key.push_str(
                &cfg.filler_for_keys[..(key_bytes - key.len()).min(cfg.filler_for_keys.len())],
            );
        } else {
            key.pop();
        }
        let payload = if m == 0 {
            format!(
                r#"{{"sessionId":"{room}","userId":"u1","isCreator":true,"authKey":"k","publicKey":"{key}"}}"#
            )
        } else {
            format!(
                r#"{{"sessionId":"{room}:k","userId":"u{u}","isCreator":false,"publicKey":"{key}"}}"#
            )
        };
        if let Some(id) = self.emit("join-session", &payload, cfg.acks).await? {
            let v = self.wait_ack(id, cfg.ack_timeout, "join-session").await?;
            if v.get("ok") != Some(&Value::Bool(true)) {
                let code = v.get("error").and_then(Value::as_str).unwrap_or("?");
                let hint = if code == "LIMIT_REACHED" && m > 0 {
                    " (blindrelay: raise MAX_GROUP_MEMBERS, default 64, or MAX_SESSIONS)"
                } else {
                    ""
                };
                return Err(format!("join-session refused: {v}{hint}"));
            }
        } else {
            self.wait_joined(&format!("u{u}"), cfg.ack_timeout).await?;
        }
        Ok(())
    }

    /// Without acks: reads up to the `public-keys-updated` that lists `user`. Servers of
    /// this protocol send it to the whole room, the joiner included, once the joiner is in
    /// the room and its key stored (the original server: after `user-joined`, history and
    /// metadata), so what is sent to the room after it reaches this client. A
    /// `session-error` is a refusal.
    async fn wait_joined(&mut self, user: &str, limit: Duration) -> R<()> {
        let needle = format!("\"userId\":\"{user}\"");
        let fut = async {
            loop {
                match self.recv().await {
                    In::Event(t)
                        if t.starts_with("42[\"public-keys-updated\"") && t.contains(&needle) =>
                    {
                        return Ok(());
                    }
                    In::Event(t) if t.starts_with("42[\"session-error\"") => {
                        return Err(format!("join-session refused: {}", clip(&t)));
                    }
                    In::Closed(e) => {
                        return Err(format!("closed while waiting for the join of {user}: {e}"));
                    }
                    _ => {}
                }
            }
        };
        match timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no public-keys-updated listing {user} within {:.1} s of its join-session \
                 (--acks false); for servers that ack joins pass --acks true",
                limit.as_secs_f64()
            )),
        }
    }

    async fn leave(&mut self, cfg: &Cfg, room: &str, wait: bool) -> R<()> {
        let payload = format!(r#"{{"sessionId":"{room}"}}"#);
        if let Some(id) = self
            .emit("leave-session", &payload, cfg.acks && wait)
            .await?
        {
            self.wait_ack(id, cfg.ack_timeout, "leave-session").await?;
        }
        Ok(())
    }

    async fn close(mut self) {
        let _ = timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

async fn open_bounded(cfg: &Cfg, node: usize) -> R<Conn> {
    let _permit = cfg.connect_sem.acquire().await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    let r = match timeout(cfg.connect_timeout, Conn::open(cfg, node)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "connect timed out after {:.1} s",
            cfg.connect_timeout.as_secs_f64()
        )),
    };
    if r.is_ok() {
        let ns = t.elapsed().as_nanos() as u64;
        cfg.connect_lat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record_ns(ns);
    }
    r
}

// ---------------------------------------------------------------------------------------
// Parked connections: between phases a task keeps reading (pings, join notices) so that
// nothing piles up on the server for an unread socket.
// ---------------------------------------------------------------------------------------

struct Parked {
    stop: oneshot::Sender<()>,
    task: JoinHandle<R<Conn>>,
}

fn park(mut c: Conn) -> Parked {
    let (stop, mut rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => return Ok(c),
                f = c.recv() => if let In::Closed(e) = f { return Err(e) },
            }
        }
    });
    Parked { stop, task }
}

async fn unpark(p: Parked) -> R<Conn> {
    let _ = p.stop.send(());
    p.task.await.map_err(|e| e.to_string())?
}

/// Rooms of `members` parked, joined connections (flat: room r, member m at r*members+m).
struct Rooms {
    ids: Vec<Arc<str>>,
    conns: Vec<Parked>,
    connect_s: f64,
    /// Per-connection open time, µs.
    connect_lat: Hist,
    join_s: f64,
}

fn take_connect_lat(cfg: &Cfg) -> Hist {
    std::mem::take(&mut *cfg.connect_lat.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Rooms {
    fn setup_json(&self, joins: usize) -> Value {
        json!({
            "connect_s": round3(self.connect_s),
            "connects_per_s": rate((self.conns.len()) as u64, self.connect_s),
            "connect_us": self.connect_lat.json(),
            "join_s": round3(self.join_s),
            "joins_per_s": rate(joins as u64, self.join_s),
        })
    }

    fn setup_line(&self) -> String {
        format!(
            "setup: {} connections in {:.2} s (open p50 {} µs, p99 {} µs, max {} µs), joins {:.3} s ({:.0} joins/s)",
            self.conns.len(),
            self.connect_s,
            self.connect_lat.pct(0.5).unwrap_or(0),
            self.connect_lat.pct(0.99).unwrap_or(0),
            self.connect_lat.max,
            self.join_s,
            self.conns.len() as f64 / self.join_s.max(1e-9),
        )
    }
}

/// Opens `rooms * members` parked connections (bounded concurrency), member m of room r
/// on node (r + m) mod N.
async fn open_rooms(cfg: &Arc<Cfg>, rooms: usize, members: usize) -> R<Vec<Parked>> {
    let tasks: Vec<_> = (0..rooms * members)
        .map(|i| {
            let cfg = cfg.clone();
            let node = i / members + i % members;
            tokio::spawn(async move { open_bounded(&cfg, node).await.map(park) })
        })
        .collect();
    collect(tasks, "connect").await
}

/// Opens `rooms * members` connections (bounded concurrency), then joins every creator,
/// then every other member (each join done when acked, or without acks when its client
/// has the key list that lists it).
async fn setup(cfg: &Arc<Cfg>, tag: &str, rooms: usize, members: usize) -> R<Rooms> {
    let ids: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("{}-{tag}-{r}", cfg.prefix)))
        .collect();
    take_connect_lat(cfg);
    let t = Instant::now();
    let conns = open_rooms(cfg, rooms, members).await?;
    let connect_s = t.elapsed().as_secs_f64();
    let connect_lat = take_connect_lat(cfg);

    let t = Instant::now();
    let mut conns = conns;
    for creators in [true, false] {
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let (r, m) = (i / members, i % members);
                if (m == 0) != creators {
                    return Pending::Ready(p);
                }
                let cfg = cfg.clone();
                let room = ids[r].clone();
                Pending::Task(tokio::spawn(async move {
                    let _permit = cfg.connect_sem.acquire().await.map_err(|e| e.to_string())?;
                    let mut c = unpark(p).await?;
                    c.join(&cfg, &room, m).await?;
                    Ok(park(c))
                }))
            })
            .collect();
        conns = collect_pending(tasks, "join-session").await?;
        if members == 1 {
            break;
        }
    }
    Ok(Rooms {
        ids,
        conns,
        connect_s,
        connect_lat,
        join_s: t.elapsed().as_secs_f64(),
    })
}

enum Pending {
    Ready(Parked),
    Task(JoinHandle<R<Parked>>),
}

async fn collect(tasks: Vec<JoinHandle<R<Parked>>>, what: &str) -> R<Vec<Parked>> {
    collect_pending(tasks.into_iter().map(Pending::Task).collect(), what).await
}

/// Awaits every task; fails (dropping, hence closing, the others) if any failed.
async fn collect_pending(tasks: Vec<Pending>, what: &str) -> R<Vec<Parked>> {
    let total = tasks.len();
    let mut out = Vec::with_capacity(total);
    let mut failed = 0;
    let mut first = None;
    for t in tasks {
        match t {
            Pending::Ready(p) => out.push(p),
            Pending::Task(h) => match h.await.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(p) => out.push(p),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            },
        }
    }
    match first {
        None => Ok(out),
        Some(e) => Err(format!("{what}: {failed} of {total} failed; first: {e}")),
    }
}

/// The (room, connection) list of set-up rooms.
fn with_rooms(ids: &[Arc<str>], members: usize, conns: Vec<Parked>) -> Vec<(Arc<str>, Parked)> {
    conns
        .into_iter()
        .enumerate()
        .map(|(i, p)| (ids[i / members].clone(), p))
        .collect()
}

/// Unparks every connection, leaves its room (without waiting), closes it.
async fn teardown(cfg: &Arc<Cfg>, conns: Vec<(Arc<str>, Parked)>) {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(room, p)| {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let _permit = cfg.connect_sem.acquire().await;
                if let Ok(mut c) = unpark(p).await {
                    let _ = timeout(Duration::from_secs(2), c.leave(&cfg, &room, false)).await;
                    c.close().await;
                }
            })
        })
        .collect();
    let _ = timeout(Duration::from_secs(20), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Scenario: pairs
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum PairMode {
    /// Closed loop, `window` in flight per member.
    Saturation { window: u64 },
    /// One send every `period` per room, alternating the two members, first at `first`.
    Fixed { first: Instant, period: Duration },
}

enum Ev {
    Tick(Instant),
    Rx(usize, In),
    Timer,
}

/// One room during one phase. Returns the connections (None if one failed) and figures.
#[allow(clippy::too_many_arguments)]
async fn pair_phase(
    cfg: Arc<Cfg>,
    room: Arc<str>,
    ids: [u32; 2],
    mut c: [Conn; 2],
    mode: PairMode,
    phase: u32,
    t0: Instant,
    deadline: Instant,
) -> (Option<[Conn; 2]>, Stats) {
    let mut st = Stats::default();
    let mut seq = [0u64; 2];
    let mut inflight = [0u64; 2];
    let mut seen = [Seen::default(), Seen::default()];
    let drain_until = deadline + cfg.drain;
    let (mut ticker, fixed) = match mode {
        PairMode::Fixed { first, period } => (tokio::time::interval_at(first, period), true),
        PairMode::Saturation { .. } => (
            tokio::time::interval_at(drain_until, Duration::from_secs(3600)),
            false,
        ),
    };
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut ticks: u64 = 0;
    let mut sending = true;
    let mut failed = false;

    macro_rules! send_from {
        ($d:expr) => {{
            let d: usize = $d;
            let frame = message_frame(&cfg, &room, phase, ids[d], seq[d]);
            if let Err(e) = c[d].send(frame).await {
                st.error(e);
                failed = true;
                break;
            }
            seq[d] += 1;
            inflight[d] += 1;
            st.sent += 1;
        }};
    }

    sleep_until(t0).await;
    let timer = sleep_until(deadline);
    tokio::pin!(timer);
    if let PairMode::Saturation { window } = mode {
        for d in 0..2 {
            for _ in 0..window {
                send_from!(d); // `break` leaves this `for` on failure
            }
            if failed {
                break;
            }
        }
    }
    while !failed {
        if !sending && inflight == [0, 0] {
            break;
        }
        let ev = {
            let [c0, c1] = &mut c;
            tokio::select! {
                biased;
                t = ticker.tick(), if fixed && sending => Ev::Tick(t),
                x = c0.recv() => Ev::Rx(0, x),
                x = c1.recv() => Ev::Rx(1, x),
                _ = &mut timer => Ev::Timer,
            }
        };
        match ev {
            Ev::Timer => {
                if sending {
                    sending = false;
                    timer.as_mut().reset(drain_until);
                } else {
                    break;
                }
            }
            Ev::Tick(at) => {
                if at >= deadline {
                    continue; // the timer ends sending
                }
                let d = (ticks % 2) as usize;
                ticks += 1;
                st.lag
                    .record_ns(Instant::now().saturating_duration_since(at).as_nanos() as u64);
                send_from!(d);
            }
            Ev::Rx(r, In::Event(t)) => {
                if !is_new_message(&t) {
                    continue;
                }
                let now = now_ns();
                let d = 1 - r; // the sender of what r received
                match parse_new_message(&t) {
                    Some(p) if p.phase == phase && p.sender == ids[d] && p.seq < seq[d] => {
                        if seen[d].mark(p.seq) {
                            st.delivered += 1;
                            inflight[d] -= 1;
                            st.lat.record_ns(now.saturating_sub(p.ns));
                            if Instant::now() < deadline {
                                st.in_window += 1;
                                if let PairMode::Saturation { .. } = mode
                                    && sending
                                {
                                    send_from!(d);
                                }
                            }
                        } else {
                            st.dup += 1;
                        }
                    }
                    _ => st.unexpected += 1,
                }
            }
            Ev::Rx(_, In::Closed(e)) => {
                st.error(e);
                failed = true;
            }
            Ev::Rx(..) => {}
        }
    }
    st.lost = inflight[0] + inflight[1];
    (if failed { None } else { Some(c) }, st)
}

/// Runs one phase over every room; the parked connections come back parked.
async fn pairs_phase(
    cfg: &Arc<Cfg>,
    rooms: &[Arc<str>],
    conns: Vec<Option<[Parked; 2]>>,
    mode_of: impl Fn(usize, Instant) -> PairMode,
    phase: u32,
    duration: Duration,
) -> (Vec<Option<[Parked; 2]>>, Stats, Probe, Probe) {
    let t0 = Instant::now() + Duration::from_millis(200);
    let deadline = t0 + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(r, pc)| {
            let cfg = cfg.clone();
            let room = rooms[r].clone();
            let mode = mode_of(r, t0);
            tokio::spawn(async move {
                let [pa, pb] = pc?;
                let (a, b) = (unpark(pa).await, unpark(pb).await);
                let (a, b) = match (a, b) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => {
                        let mut st = Stats::default();
                        st.error(e);
                        return Some((None, st));
                    }
                };
                let ids = [(r * 2) as u32, (r * 2 + 1) as u32];
                let (back, st) =
                    pair_phase(cfg, room, ids, [a, b], mode, phase, t0, deadline).await;
                Some((back.map(|[a, b]| [park(a), park(b)]), st))
            })
        })
        .collect();
    sleep_until(t0).await;
    let before = probe(cfg);
    let mut out = Vec::with_capacity(tasks.len());
    let mut st = Stats::default();
    for t in tasks {
        match t.await {
            Ok(Some((back, s))) => {
                out.push(back);
                st.merge(s);
            }
            Ok(None) => out.push(None),
            Err(e) => {
                st.error(e.to_string());
                out.push(None);
            }
        }
    }
    let after = probe(cfg);
    (out, st, before, after)
}

fn phase_json(cfg: &Cfg, st: &Stats, before: &Probe, after: &Probe, duration: f64) -> Value {
    let mut cpu = cpu_json(cfg, before, after, st.delivered);
    let per = take_per(&mut cpu);
    json!({
        "sent": st.sent,
        "send_per_s": rate(st.sent, duration),
        "delivered": st.delivered,
        "delivered_per_s": rate(st.in_window, duration),
        "lost": st.lost,
        "duplicates": st.dup,
        "unexpected": st.unexpected,
        "errors": st.errors,
        "first_error": st.first_error,
        "latency_us": st.lat.json(),
        "server_cpu_us_per_msg": per,
        "cpu": cpu,
    })
}

fn table_header() {
    eprintln!(
        "  {:<22} {:>9} {:>10} {:>10} {:>6} {:>5} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8}",
        "phase",
        "sent",
        "delivered",
        "deliv/s",
        "lost",
        "dup",
        "p50µs",
        "p90µs",
        "p99µs",
        "maxµs",
        "srvCPU s",
        "µs/msg"
    );
}

fn table_row(name: &str, st: &Stats, j: &Value) {
    let f = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    eprintln!(
        "  {:<22} {:>9} {:>10} {:>10} {:>6} {:>5} {} {:>9} {:>8}",
        name,
        st.sent,
        st.delivered,
        f(&j["delivered_per_s"]),
        st.lost,
        st.dup,
        st.lat.row(),
        f(&j["cpu"]["server_cpu_s"]),
        f(&j["server_cpu_us_per_msg"]),
    );
    cpu_split_line(&j["cpu"], &j["server_cpu_us_per_msg"], "msg");
    if let Some(e) = &st.first_error {
        eprintln!("    {} error(s); first: {e}", st.errors);
    }
}

struct PairsParams {
    rooms: usize,
    window: u64,
    duration: f64,
    rate: f64,
}

async fn scenario_pairs(cfg: &Arc<Cfg>, p: &PairsParams) -> R<Value> {
    let rs = setup(cfg, "p", p.rooms, 2).await?;
    let (setup_j, setup_line) = (rs.setup_json(p.rooms * 2), rs.setup_line());
    let (ids, mut flat) = (rs.ids, rs.conns);
    let mut conns: Vec<Option<[Parked; 2]>> = Vec::with_capacity(p.rooms);
    while !flat.is_empty() {
        let rest = flat.split_off(2);
        let mut two = flat.into_iter();
        conns.push(Some([two.next().unwrap(), two.next().unwrap()]));
        flat = rest;
    }
    let dur = Duration::from_secs_f64(p.duration);

    let window = p.window;
    let (conns, sat, b1, a1) = pairs_phase(
        cfg,
        &ids,
        conns,
        |_, _| PairMode::Saturation { window },
        1,
        dur,
    )
    .await;

    let n = p.rooms as f64;
    let period = Duration::from_secs_f64(n / p.rate); // per room; each member every 2 periods
    let (conns, fix, b2, a2) = pairs_phase(
        cfg,
        &ids,
        conns,
        |r, t0| PairMode::Fixed {
            first: t0 + period.mul_f64(r as f64 / n),
            period,
        },
        2,
        dur,
    )
    .await;

    let keep: Vec<(Arc<str>, Parked)> = conns
        .into_iter()
        .zip(&ids)
        .filter_map(|(pc, id)| pc.map(|two| two.map(|p| (id.clone(), p))))
        .flatten()
        .collect();
    teardown(cfg, keep).await;

    let sat_j = phase_json(cfg, &sat, &b1, &a1, p.duration);
    let mut fix_j = phase_json(cfg, &fix, &b2, &a2, p.duration);
    fix_j["target_rate"] = json!(p.rate);
    fix_j["latency_from"] = json!("actual send time");
    fix_j["send_lag_us"] = fix.lag.json();

    eprintln!(
        "pairs: {} rooms ({} connections), window {}, {} s per phase, {} B payloads\n  {setup_line}",
        p.rooms,
        p.rooms * 2,
        p.window,
        p.duration,
        cfg.payload_bytes,
    );
    table_header();
    table_row("saturation", &sat, &sat_j);
    table_row(&format!("fixed {} msg/s", p.rate), &fix, &fix_j);
    eprintln!(
        "  fixed rate: latency from the actual send time; send lag p99 {} µs, max {} µs",
        fix.lag.pct(0.99).unwrap_or(0),
        fix.lag.max
    );

    Ok(json!({
        "scenario": "pairs",
        "url": cfg.url,
        "acks": cfg.acks,
        "rooms": p.rooms,
        "connections": p.rooms * 2,
        "window": p.window,
        "duration_s": p.duration,
        "rate": p.rate,
        "payload_bytes": cfg.payload_bytes,
        "setup": setup_j,
        "saturation": sat_j,
        "fixed_rate": fix_j,
        "ok": sat.delivered > 0 && fix.delivered > 0 && sat.errors == 0 && fix.errors == 0,
    }))
}

// ---------------------------------------------------------------------------------------
// Scenario: fanout
// ---------------------------------------------------------------------------------------

async fn scenario_fanout(cfg: &Arc<Cfg>, members: usize, msg_rate: f64, duration: f64) -> R<Value> {
    if members < 2 {
        return Err("fanout needs --members of 2 or more".into());
    }
    let tag = format!("f{members}");
    let rs = setup(cfg, &tag, 1, members).await?;
    let (setup_j, setup_line) = (rs.setup_json(members), rs.setup_line());
    let room = rs.ids[0].clone();
    let mut conns = Vec::with_capacity(members);
    for p in rs.conns {
        conns.push(unpark(p).await?);
    }
    let phase = 3;
    let t0 = Instant::now() + Duration::from_millis(200);
    let deadline = t0 + Duration::from_secs_f64(duration);
    let drain_until = deadline + cfg.drain;
    let (final_tx, final_rx) = watch::channel(u64::MAX);

    let mut it = conns.into_iter();
    let mut sender = it.next().unwrap();
    let scfg = cfg.clone();
    let sroom = room.clone();
    let sender_task = tokio::spawn(async move {
        let mut st = Stats::default();
        let period = Duration::from_secs_f64(1.0 / msg_rate);
        let mut ticker = tokio::time::interval_at(t0, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let timer = sleep_until(deadline);
        tokio::pin!(timer);
        let mut seq = 0u64;
        sleep_until(t0).await;
        loop {
            tokio::select! {
                biased;
                at = ticker.tick() => {
                    if at >= deadline { continue; }
                    st.lag.record_ns(Instant::now().saturating_duration_since(at).as_nanos() as u64);
                    let frame = message_frame(&scfg, &sroom, phase, 0, seq);
                    if let Err(e) = sender.send(frame).await { st.error(e); break; }
                    seq += 1;
                }
                f = sender.recv() => if let In::Closed(e) = f { st.error(e); break; },
                _ = &mut timer => break,
            }
        }
        st.sent = seq;
        let _ = final_tx.send(seq);
        (sender, st)
    });

    let receivers: Vec<_> = it
        .map(|mut c| {
            let mut final_rx = final_rx.clone();
            tokio::spawn(async move {
                let mut st = Stats::default();
                let mut seen = Seen::default();
                let mut target = u64::MAX;
                let mut known = false;
                let timer = sleep_until(drain_until);
                tokio::pin!(timer);
                while seen.unique < target {
                    tokio::select! {
                        biased;
                        f = c.recv() => match f {
                            In::Event(t) if is_new_message(&t) => {
                                let now = now_ns();
                                match parse_new_message(&t) {
                                    Some(p) if p.phase == phase && p.sender == 0 && p.seq < target => {
                                        if seen.mark(p.seq) {
                                            st.delivered += 1;
                                            st.lat.record_ns(now.saturating_sub(p.ns));
                                            if Instant::now() < deadline { st.in_window += 1; }
                                        } else {
                                            st.dup += 1;
                                        }
                                    }
                                    _ => st.unexpected += 1,
                                }
                            }
                            In::Closed(e) => { st.error(e); break; }
                            _ => {}
                        },
                        r = final_rx.changed(), if !known => {
                            known = true;
                            if r.is_ok() { target = *final_rx.borrow(); }
                        }
                        _ = &mut timer => break,
                    }
                }
                (c, st)
            })
        })
        .collect();
    drop(final_rx);

    sleep_until(t0).await;
    let before = probe(cfg);
    let (sender, sst) = sender_task.await.map_err(|e| e.to_string())?;
    let sent = sst.sent;
    let mut st = Stats::default();
    let mut back = vec![park(sender)];
    for r in receivers {
        let (c, s) = r.await.map_err(|e| e.to_string())?;
        st.merge(s);
        back.push(park(c));
    }
    let after = probe(cfg);
    let expected = sent * (members as u64 - 1);
    st.lost = expected.saturating_sub(st.delivered);
    st.sent = sent;
    let errors = st.errors + sst.errors;
    let first_error = st.first_error.clone().or(sst.first_error.clone());
    teardown(cfg, back.into_iter().map(|p| (room.clone(), p)).collect()).await;

    let mut cpu = cpu_json(cfg, &before, &after, st.delivered);
    let per = take_per(&mut cpu);
    eprintln!(
        "fanout: 1 room of {members} members, 1 sender at {msg_rate} msg/s for {duration} s\n  {setup_line}"
    );
    eprintln!(
        "  {:>8} {:>11} {:>11} {:>12} {:>7} {:>5} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10}",
        "sent",
        "expected",
        "delivered",
        "deliveries/s",
        "lost",
        "dup",
        "p50µs",
        "p90µs",
        "p99µs",
        "maxµs",
        "srvCPU s",
        "µs/deliv"
    );
    let f = |v: &Value| {
        if v.is_null() {
            "-".to_owned()
        } else {
            v.to_string()
        }
    };
    eprintln!(
        "  {:>8} {:>11} {:>11} {:>12} {:>7} {:>5} {} {:>9} {:>10}",
        sent,
        expected,
        st.delivered,
        rate(st.in_window, duration),
        st.lost,
        st.dup,
        st.lat.row(),
        f(&cpu["server_cpu_s"]),
        f(&per)
    );
    cpu_split_line(&cpu, &per, "delivery");
    if let Some(e) = &first_error {
        eprintln!("    {errors} error(s); first: {e}");
    }
    cpu["units"] = json!("deliveries");
    Ok(json!({
        "scenario": "fanout",
        "url": cfg.url,
        "acks": cfg.acks,
        "members": members,
        "rate": msg_rate,
        "duration_s": duration,
        "payload_bytes": cfg.payload_bytes,
        "setup": setup_j,
        "sent": sent,
        "send_per_s": rate(sent, duration),
        "send_lag_us": sst.lag.json(),
        "expected_deliveries": expected,
        "delivered": st.delivered,
        "deliveries_per_s": rate(st.in_window, duration),
        "lost": st.lost,
        "duplicates": st.dup,
        "unexpected": st.unexpected,
        "errors": errors,
        "first_error": first_error,
        "latency_us": st.lat.json(),
        "server_cpu_us_per_delivery": per,
        "cpu": cpu,
        "ok": st.delivered > 0 && errors == 0,
    }))
}

// ---------------------------------------------------------------------------------------
// Scenario: idle
// ---------------------------------------------------------------------------------------

async fn scenario_idle(cfg: &Arc<Cfg>, connections: usize, hold: u64) -> R<Value> {
    let rooms = connections.div_ceil(2).max(1);
    let k = rooms * 2;
    let rss = || rss_sum(cfg);
    let rss_before = rss();
    let nodes_before = rss_per_node(cfg);
    let redis_rss = || cfg.redis_pid.and_then(proc_rss_kib);
    let redis_before = redis_rss();
    let t = Instant::now();
    let rs = setup(cfg, "i", rooms, 2).await?;
    let setup_s = t.elapsed().as_secs_f64();
    sleep(Duration::from_millis(200)).await;
    let rss_after = rss();
    let nodes_after = rss_per_node(cfg);
    let redis_after = redis_rss();
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(round2((a as f64 - b as f64) / k as f64)),
        _ => None,
    };
    let (mut lo, mut hi): (Option<u64>, Option<u64>) = (None, None);
    let mut samples = Vec::new();
    for _ in 0..hold {
        sleep(Duration::from_secs(1)).await;
        if let Some(v) = rss() {
            lo = Some(lo.map_or(v, |l| l.min(v)));
            hi = Some(hi.map_or(v, |h| h.max(v)));
            samples.push(v);
        }
    }
    // Still alive after the hold?
    let alive = rs.conns.iter().filter(|p| !p.task.is_finished()).count();
    let (setup_j, setup_line) = (rs.setup_json(k), rs.setup_line());
    teardown(cfg, with_rooms(&rs.ids, 2, rs.conns)).await;

    let f = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    eprintln!(
        "idle: {k} connections ({rooms} rooms of 2), held {hold} s\n  {setup_line}; overall {:.0} connections/s; alive after hold: {alive}/{k}\n  server RSS KiB: before {}, after {}, per connection {} KiB; during hold min {}, max {}",
        k as f64 / setup_s,
        f(rss_before),
        f(rss_after),
        per_conn.map_or("-".to_owned(), |v| v.to_string()),
        f(lo),
        f(hi)
    );
    if cfg.pids.len() > 1 {
        let list = |v: &[Option<u64>]| v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ");
        eprintln!(
            "    nodes: RSS KiB before [{}], after [{}]",
            list(&nodes_before),
            list(&nodes_after)
        );
    }
    if cfg.redis_pid.is_some() {
        eprintln!(
            "    redis: RSS KiB before {}, after {}",
            f(redis_before),
            f(redis_after)
        );
    }
    Ok(json!({
        "scenario": "idle",
        "nodes": cfg.nodes.len(),
        "server_rss_kib_per_node_before": nodes_before,
        "server_rss_kib_per_node_after": nodes_after,
        "redis_rss_kib_before": redis_before,
        "redis_rss_kib_after": redis_after,
        "url": cfg.url,
        "acks": cfg.acks,
        "connections": k,
        "rooms": rooms,
        "hold_s": hold,
        "setup": setup_j,
        "joins_per_s": setup_j["joins_per_s"],
        "setup_per_s": rate(k as u64, setup_s),
        "alive_after_hold": alive,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_kib_per_connection": per_conn,
        "server_rss_kib_hold_min": lo,
        "server_rss_kib_hold_max": hi,
        "server_rss_kib_hold_samples": samples,
        "ok": alive == k,
    }))
}

// ---------------------------------------------------------------------------------------
// Scenario: churn
// ---------------------------------------------------------------------------------------

/// Waits on `c` for the new-message `seq` of `sender` (phase 4); returns its latency in ns.
async fn await_message(c: &mut Conn, sender: u32) -> R<u64> {
    loop {
        match c.recv().await {
            In::Event(t) if is_new_message(&t) => {
                if let Some(p) = parse_new_message(&t)
                    && p.phase == 4
                    && p.sender == sender
                {
                    return Ok(now_ns().saturating_sub(p.ns));
                }
            }
            In::Closed(e) => return Err(e),
            _ => {}
        }
    }
}

/// One churn room: creator on node `node`, joiner on the next one.
async fn churn_once(
    cfg: &Cfg,
    room: &str,
    node: usize,
    joins: &AtomicU64,
    lat: &mut Hist,
) -> R<()> {
    let (a, b) = tokio::join!(open_bounded(cfg, node), open_bounded(cfg, node + 1));
    let (mut a, mut b) = (a?, b?);
    a.join(cfg, room, 0).await?;
    joins.fetch_add(1, Ordering::Relaxed);
    b.join(cfg, room, 1).await?;
    joins.fetch_add(1, Ordering::Relaxed);
    a.send(message_frame(cfg, room, 4, 0, 0)).await?;
    lat.record_ns(await_message(&mut b, 0).await?);
    b.send(message_frame(cfg, room, 4, 1, 0)).await?;
    lat.record_ns(await_message(&mut a, 1).await?);
    let (la, lb) = tokio::join!(a.leave(cfg, room, true), b.leave(cfg, room, true));
    la?;
    lb?;
    tokio::join!(a.close(), b.close());
    Ok(())
}

async fn scenario_churn(cfg: &Arc<Cfg>, duration: f64, concurrency: usize) -> R<Value> {
    let rss = {
        let cfg = cfg.clone();
        move || rss_sum(&cfg)
    };
    let rss_end_probe = rss.clone();
    let rss_start = rss();
    let stop = Arc::new(AtomicBool::new(false));
    let rss_max = Arc::new(AtomicU64::new(rss_start.unwrap_or(0)));
    let sampler = {
        let (stop, rss_max) = (stop.clone(), rss_max.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(v) = rss() {
                    rss_max.fetch_max(v, Ordering::Relaxed);
                }
                sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let joins = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(duration);
    let before = probe(cfg);
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (cfg, joins, counter) = (cfg.clone(), joins.clone(), counter.clone());
            tokio::spawn(async move {
                let mut st = Stats::default();
                let mut rooms = 0u64;
                // A cycle may not outlast the deadline by more than one ack timeout.
                let hard_stop = deadline + cfg.ack_timeout;
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let room = format!("{}-c-{i}", cfg.prefix);
                    let until =
                        hard_stop.min(Instant::now() + cfg.connect_timeout + cfg.ack_timeout * 4);
                    let failed = match tokio::time::timeout_at(
                        until,
                        churn_once(&cfg, &room, i as usize, &joins, &mut st.lat),
                    )
                    .await
                    {
                        Ok(Ok(())) => {
                            rooms += 1;
                            false
                        }
                        Ok(Err(e)) => {
                            st.error(e);
                            true
                        }
                        Err(_) => {
                            st.error("room cycle timed out".to_owned());
                            true
                        }
                    };
                    if failed {
                        // Back off instead of hammering a failing server.
                        sleep_until(deadline.min(Instant::now() + Duration::from_millis(100)))
                            .await;
                    }
                }
                st.delivered = rooms;
                st
            })
        })
        .collect();
    let mut st = Stats::default();
    for w in workers {
        st.merge(w.await.map_err(|e| e.to_string())?);
    }
    let elapsed = t.elapsed().as_secs_f64();
    let after = probe(cfg);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let rss_end = rss_end_probe();
    let rss_max = rss_start.map(|_| rss_max.load(Ordering::Relaxed).max(rss_end.unwrap_or(0)));
    let rooms = st.delivered;
    let joins = joins.load(Ordering::Relaxed);
    let mut cpu = cpu_json(cfg, &before, &after, rooms);
    let per = take_per(&mut cpu);
    let f = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    eprintln!(
        "churn: {} workers for {duration} s: {rooms} rooms ({:.0}/s), {joins} joins ({:.0}/s), {} failed cycles; message latency p50 {} µs, p99 {} µs\n  server RSS KiB: start {}, end {}, max {}; server CPU {} s ({} µs per room)",
        concurrency,
        rooms as f64 / elapsed,
        joins as f64 / elapsed,
        st.errors,
        st.lat.pct(0.5).unwrap_or(0),
        st.lat.pct(0.99).unwrap_or(0),
        f(rss_start),
        f(rss_end),
        f(rss_max),
        cpu["server_cpu_s"],
        per
    );
    cpu_split_line(&cpu, &per, "room");
    if let Some(e) = &st.first_error {
        eprintln!("    first error: {e}");
    }
    Ok(json!({
        "scenario": "churn",
        "url": cfg.url,
        "acks": cfg.acks,
        "concurrency": concurrency,
        "duration_s": duration,
        "elapsed_s": round3(elapsed),
        "rooms": rooms,
        "rooms_per_s": rate(rooms, elapsed),
        "joins": joins,
        "joins_per_s": rate(joins, elapsed),
        "failed_cycles": st.errors,
        "first_error": st.first_error,
        "message_latency_us": st.lat.json(),
        "server_rss_kib_start": rss_start,
        "server_rss_kib_end": rss_end,
        "server_rss_kib_max": rss_max,
        "server_cpu_us_per_room": per,
        "cpu": cpu,
        "ok": rooms > 0,
    }))
}

// ---------------------------------------------------------------------------------------
// Scenario: groupfill
// ---------------------------------------------------------------------------------------

/// Received bytes and frames (all, then public-keys-updated only) so far.
fn rx_counts() -> [u64; 4] {
    [
        RX_BYTES.load(Ordering::Relaxed),
        RX_FRAMES.load(Ordering::Relaxed),
        RX_KEYS_BYTES.load(Ordering::Relaxed),
        RX_KEYS_FRAMES.load(Ordering::Relaxed),
    ]
}

/// Fills `groups` group rooms of `members`, one after the other, one join at a time:
/// member m of group g (on node (g + m) mod N) joins, and the next join waits for its
/// ack. Every connection is opened (and parked: it keeps reading) before the first join.
async fn scenario_groupfill(
    cfg: &Arc<Cfg>,
    groups: usize,
    members: usize,
    key_bytes: usize,
) -> R<Value> {
    if members < 2 {
        return Err("groupfill needs --members of 2 or more".into());
    }
    let ids: Vec<Arc<str>> = (0..groups)
        .map(|g| Arc::from(format!("{}-g{members}-{g}", cfg.prefix)))
        .collect();
    take_connect_lat(cfg);
    let t = Instant::now();
    let mut conns: Vec<Option<Parked>> = open_rooms(cfg, groups, members)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    let connect_s = t.elapsed().as_secs_f64();
    let connect_lat = take_connect_lat(cfg);
    sleep(Duration::from_millis(200)).await;

    // Latency of the join at each position (0 = the creator), over the groups: to its
    // ack, and until every member present has the new key list.
    let mut by_pos: Vec<Hist> = (0..members).map(|_| Hist::default()).collect();
    let mut seen_by_pos: Vec<Hist> = (0..members).map(|_| Hist::default()).collect();
    let mut all_seen = Hist::default();
    // Join k (1-based) sends public-keys-updated to the k members present: after each
    // ack the next join waits for them (1 s at most; after a miss it stops waiting, for
    // a server that sends no such list), so each join's bytes are its own.
    let mut settle = true;
    let mut keys_target = RX_KEYS_FRAMES.load(Ordering::Relaxed);
    let mut bytes_by_pos = vec![0u64; members];
    let mut all = Hist::default();
    let mut failure = None;
    let mut joins = 0u64;
    COUNT_RX.store(true, Ordering::Relaxed);
    let rx0 = rx_counts();
    let mut last = rx0[0];
    let before = probe(cfg);
    let t = Instant::now();
    'fill: for (g, room) in ids.iter().enumerate() {
        for m in 0..members {
            let Some(p) = conns[g * members + m].take() else {
                continue;
            };
            let mut c = match unpark(p).await {
                Ok(c) => c,
                Err(e) => {
                    failure = Some(format!("group {g}, member {m}: {e}"));
                    break 'fill;
                }
            };
            let at = Instant::now();
            let r = c.join_with_key(cfg, room, m, key_bytes).await;
            let ns = at.elapsed().as_nanos() as u64;
            conns[g * members + m] = Some(park(c));
            if let Err(e) = r {
                failure = Some(format!("group {g}, join {}: {e}", m + 1));
                break 'fill;
            }
            joins += 1;
            by_pos[m].record_ns(ns);
            all.record_ns(ns);
            keys_target += m as u64 + 1;
            if settle {
                if await_keys_frames(keys_target, Duration::from_secs(1)).await {
                    let ns = at.elapsed().as_nanos() as u64;
                    seen_by_pos[m].record_ns(ns);
                    all_seen.record_ns(ns);
                } else {
                    settle = false;
                }
            }
            let now = RX_BYTES.load(Ordering::Relaxed);
            bytes_by_pos[m] += now - last;
            last = now;
        }
    }
    let fill_s = t.elapsed().as_secs_f64();
    // The last broadcasts may still be on their way to the other members.
    sleep(Duration::from_millis(300)).await;
    let after = probe(cfg);
    let rx1 = rx_counts();
    COUNT_RX.store(false, Ordering::Relaxed);
    let [bytes, frames, key_bytes_rx, key_frames] =
        [0, 1, 2, 3].map(|i| rx1[i].saturating_sub(rx0[i]));
    let back: Vec<(Arc<str>, Parked)> = conns
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (ids[i / members].clone(), p)))
        .collect();
    teardown(cfg, back).await;

    let mut cpu = cpu_json(cfg, &before, &after, joins);
    let per = take_per(&mut cpu);
    cpu["units"] = json!("joins");
    let per_group = |x: u64| rate(x, groups as f64);
    // Positions to show in the table: 1st, 2nd, then powers of two, and the last.
    let mut shown: Vec<usize> = vec![0, 1];
    let mut k = 4;
    while k < members {
        shown.push(k - 1);
        k *= 2;
    }
    shown.push(members - 1);
    shown.dedup();
    let positions: Vec<Value> = by_pos
        .iter()
        .enumerate()
        .map(|(m, h)| {
            json!({
                "join": m + 1,
                "p50": h.pct(0.5),
                "p99": h.pct(0.99),
                "max": (h.n > 0).then_some(h.max),
                "all_have_keys_p50": seen_by_pos[m].pct(0.5),
                "all_have_keys_p99": seen_by_pos[m].pct(0.99),
                "bytes_per_fill": per_group(bytes_by_pos[m]),
            })
        })
        .collect();
    let f = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
    eprintln!(
        "groupfill: {groups} groups of {members}, filled one join at a time ({key_bytes}-byte keys)\n  setup: {} connections in {connect_s:.2} s; fill {fill_s:.2} s, {joins} joins ({:.0} joins/s)",
        groups * members,
        joins as f64 / fill_s.max(1e-9),
    );
    eprintln!(
        "  join latency µs, all joins: p50 {} p90 {} p99 {} max {}; server CPU {} s = {} µs per join",
        f(all.pct(0.5)),
        f(all.pct(0.9)),
        f(all.pct(0.99)),
        f((all.n > 0).then_some(all.max)),
        cpu["server_cpu_s"],
        per
    );
    eprintln!(
        "  until every member has the new key list, µs: p50 {} p90 {} p99 {} max {}{}",
        f(all_seen.pct(0.5)),
        f(all_seen.pct(0.9)),
        f(all_seen.pct(0.99)),
        f((all_seen.n > 0).then_some(all_seen.max)),
        if settle {
            ""
        } else {
            " (stopped waiting: a list went missing)"
        }
    );
    cpu_split_line(&cpu, &per, "join");
    eprintln!(
        "  received by all clients per fill: {} B in {} frames, of which public-keys-updated {} B in {} frames",
        per_group(bytes),
        per_group(frames),
        per_group(key_bytes_rx),
        per_group(key_frames)
    );
    eprintln!(
        "  {:>6} {:>8} {:>8} {:>8} {:>10} {:>10} {:>12}",
        "join", "ack p50", "ack p99", "ack max", "all p50¹", "all p99¹", "bytes/fill²"
    );
    for &m in &shown {
        let (h, a) = (&by_pos[m], &seen_by_pos[m]);
        eprintln!(
            "  {:>6} {:>8} {:>8} {:>8} {:>10} {:>10} {:>12}",
            m + 1,
            f(h.pct(0.5)),
            f(h.pct(0.99)),
            f((h.n > 0).then_some(h.max)),
            f(a.pct(0.5)),
            f(a.pct(0.99)),
            per_group(bytes_by_pos[m])
        );
    }
    eprintln!(
        "  ¹ until every member present has received the new key list  ² received by all clients for this join"
    );
    if let Some(e) = &failure {
        eprintln!("    failed: {e}");
    }
    Ok(json!({
        "scenario": "groupfill",
        "url": cfg.url,
        "acks": cfg.acks,
        "nodes": cfg.nodes.len(),
        "groups": groups,
        "members": members,
        "key_bytes": key_bytes,
        "connect_s": round3(connect_s),
        "connect_us": connect_lat.json(),
        "fill_s": round3(fill_s),
        "joins": joins,
        "joins_per_s": rate(joins, fill_s),
        "join_latency_us": all.json(),
        "all_have_keys_latency_us": all_seen.json(),
        "waited_for_every_key_list": settle,
        "join_latency_by_position_us": positions,
        "server_cpu_us_per_join": per,
        "cpu": cpu,
        "rx_bytes_per_fill": per_group(bytes),
        "rx_frames_per_fill": per_group(frames),
        "rx_public_keys_updated_bytes_per_fill": per_group(key_bytes_rx),
        "rx_public_keys_updated_frames_per_fill": per_group(key_frames),
        "error": failure,
        "ok": failure.is_none() && joins == (groups * members) as u64,
    }))
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

fn main() {
    START.get_or_init(std::time::Instant::now);
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

fn check_positive(name: &str, v: f64) -> R<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("--{name} must be a positive number"))
    }
}

async fn run(args: Args) -> i32 {
    let mut nodes = Vec::new();
    for raw in args.url.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
        match parse_url(raw) {
            Ok((addr, url)) => nodes.push(Node { addr, url }),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    if nodes.is_empty() {
        eprintln!("error: --url names no server");
        return 2;
    }
    let url = nodes
        .iter()
        .map(|n| n.url.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for (n, v) in [
        ("duration", args.duration),
        ("ack-timeout", args.ack_timeout),
        ("connect-timeout", args.connect_timeout),
        ("rate", args.rate.unwrap_or(1.0)),
    ] {
        if let Err(e) = check_positive(n, v) {
            eprintln!("error: {e}");
            return 2;
        }
    }
    if !(args.drain.is_finite() && args.drain >= 0.0) {
        eprintln!("error: --drain must be 0 or more");
        return 2;
    }
    TRACE.store(args.trace, Ordering::Relaxed);
    let nofile = sys::raise_nofile();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ ((std::process::id() as u64) << 40);
    let cfg = Arc::new(Cfg {
        nodes,
        url,
        acks: args.acks,
        ack_timeout: Duration::from_secs_f64(args.ack_timeout),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        connect_sem: Arc::new(Semaphore::new(args.connect_concurrency.max(1))),
        connect_lat: std::sync::Mutex::new(Hist::default()),
        payload_bytes: args.payload_bytes,
        filler: filler(args.payload_bytes),
        filler_for_keys: filler(args.key_bytes),
        drain: Duration::from_secs_f64(args.drain),
        pids: args.server_pid.clone(),
        redis_pid: args.redis_pid,
        prefix: format!("bb{:x}", nonce & 0xffff_ffff_ffff),
    });
    for pid in cfg.pids.iter().chain(&cfg.redis_pid) {
        if proc_cpu_s(&pid.to_string()).is_none() {
            eprintln!(
                "warning: cannot read /proc/{pid}/stat: server CPU and RSS figures will be null"
            );
        }
    }

    let smoke = args.smoke;
    let s = args.scenario;
    let runs_all = s == Scenario::All || smoke;
    let duration = if smoke { 1.0 } else { args.duration };
    let pairs = PairsParams {
        rooms: if smoke { 4 } else { args.rooms.max(1) },
        window: if smoke { 4 } else { args.window.max(1) },
        duration,
        rate: if smoke {
            200.0
        } else {
            args.rate.unwrap_or(2000.0)
        },
    };
    let fanout_rate = if smoke {
        50.0
    } else {
        args.rate.unwrap_or(200.0)
    };
    let fanout_members: Vec<usize> = if smoke {
        vec![5]
    } else {
        match (args.members, s) {
            (Some(m), _) => vec![m],
            (None, Scenario::All) => vec![50, 500],
            (None, _) => vec![50],
        }
    };
    let idle_conns = if smoke { 20 } else { args.connections };
    let hold = if smoke { 1 } else { args.hold };
    let churn_conc = if smoke { 4 } else { args.concurrency };
    let (fill_groups, fill_members) = match (smoke, s) {
        (true, _) => (2, 5),
        (false, Scenario::Groupfill) => (args.groups.max(1), args.members.unwrap_or(64)),
        (false, _) => (args.groups.max(1), 64),
    };
    let fill = (runs_all || s == Scenario::Groupfill) && {
        if !cfg.acks && s == Scenario::Groupfill {
            eprintln!("error: groupfill times each join by its ack: it needs --acks true");
            return 2;
        }
        cfg.acks
    };

    if let Some((soft, hard)) = nofile {
        let mut need = 0;
        if runs_all || s == Scenario::Idle {
            need = need.max(idle_conns);
        }
        if runs_all || s == Scenario::Fanout {
            need = need.max(fanout_members.iter().copied().max().unwrap_or(0));
        }
        if runs_all || s == Scenario::Pairs {
            need = need.max(pairs.rooms * 2);
        }
        if fill {
            need = need.max(fill_groups * fill_members);
        }
        if (soft as usize) < need + 64 {
            eprintln!(
                "warning: open-file limit {soft} (hard {hard}) is below the {need} connections asked for; \
                 raise it with `ulimit -n` before running"
            );
        }
    }
    eprintln!(
        "blindrelay-bench -> {} (acks {}, server pid {})",
        cfg.url,
        cfg.acks,
        if cfg.pids.is_empty() {
            "none".to_owned()
        } else {
            cfg.pids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    );

    let mut failures = 0;
    let mut report = |name: &str, r: R<Value>| match r {
        Ok(v) => {
            if smoke && v["ok"] != Value::Bool(true) {
                failures += 1;
            }
            println!("{v}");
        }
        Err(e) => {
            failures += 1;
            eprintln!("{name}: FAILED: {e}");
            println!(
                "{}",
                json!({"scenario": name, "url": cfg.url, "error": e, "ok": false})
            );
        }
    };
    let pause = || sleep(Duration::from_millis(if smoke { 100 } else { 1000 }));

    if runs_all || s == Scenario::Pairs {
        report("pairs", scenario_pairs(&cfg, &pairs).await);
        pause().await;
    }
    if runs_all || s == Scenario::Fanout {
        for &m in &fanout_members {
            report(
                "fanout",
                scenario_fanout(&cfg, m, fanout_rate, duration).await,
            );
            pause().await;
        }
    }
    if runs_all || s == Scenario::Idle {
        report("idle", scenario_idle(&cfg, idle_conns, hold).await);
        pause().await;
    }
    if runs_all || s == Scenario::Churn {
        report("churn", scenario_churn(&cfg, duration, churn_conc).await);
    }
    if fill {
        pause().await;
        report(
            "groupfill",
            scenario_groupfill(&cfg, fill_groups, fill_members, args.key_bytes).await,
        );
    } else if runs_all {
        eprintln!("groupfill: skipped (it times each join by its ack; --acks false)");
    }
    if failures > 0 {
        eprintln!(
            "{failures} scenario(s) failed{}",
            if smoke { " or delivered nothing" } else { "" }
        );
        1
    } else {
        0
    }
}
