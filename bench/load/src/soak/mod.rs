//! `blindrelay-soak`: a bounded soak test of a running blindrelay (loopback).
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket through the same client as
//! `blindrelay-bench` ([`crate::client`]). For `--duration` seconds:
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
//!
//! Layout: the honest workers are [`honest`], the abusive ones [`abuse`]; this module holds
//! the flags, the counters, the server's `/health` and the summary.

mod abuse;
mod honest;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout};

use crate::client::{Conn, Endpoint};
use crate::{R, procfs};

/// Soak test of a running blindrelay (loopback): honest sessions and abusive clients for
/// --duration, then every session must be reaped. Exit status 0 on a pass, 1 on a failure,
/// 2 for bad arguments.
#[derive(Parser, Debug, Clone)]
#[command(name = "blindrelay-soak", version)]
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
// Configuration shared by every worker
// ---------------------------------------------------------------------------------------

struct Cfg {
    server: Endpoint,
    /// Connections being opened, at most (--connect-concurrency).
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

/// Opens a connection (at most --connect-concurrency being opened at a time, each within
/// 20 s) and counts it.
async fn connect(cfg: &Cfg) -> R<Conn> {
    let (c, _) = Conn::open_bounded(&cfg.server, &cfg.sem, Duration::from_secs(20)).await?;
    cfg.c.connections_opened.fetch_add(1, Ordering::Relaxed);
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// The server: /health and RSS
// ---------------------------------------------------------------------------------------

/// The server's `GET /health` (10 s at most).
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

#[derive(Default)]
struct Peaks {
    rss_kib: u64,
    connections: u64,
    sessions: u64,
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

/// The soak tool's `main`: parses the flags, runs, returns the exit status.
pub fn main() -> i32 {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> i32 {
    let server = match Endpoint::parse(&args.url) {
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
    let start_health = match health(&server.addr).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("blindrelay-soak: the server does not answer /health: {e}");
            return 2;
        }
    };
    let addr = server.addr.clone();
    let rss_start = args.server_pid.and_then(procfs::rss_kib);
    let started = Instant::now();
    let cfg = Arc::new(Cfg {
        server,
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
                let rss = pid.and_then(procfs::rss_kib).unwrap_or(0);
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
        tasks.push(tokio::spawn(honest::honest(cfg.clone(), w, seed)));
    }
    for k in 0..abusers {
        tasks.push(tokio::spawn(abuse::abuser(cfg.clone(), k, seed)));
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
    let rss_end = args.server_pid.and_then(procfs::rss_kib);
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
