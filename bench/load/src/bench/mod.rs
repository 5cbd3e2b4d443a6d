//! `blindrelay-bench`: a load generator for Socket.IO chat relays.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself ([`crate::client`]), so it
//! costs less than the server it loads, and it loads any server that speaks the protocol:
//! blindrelay, the floor relay (`bench-floor`), the Node.js peer (`bench/node-peer`), or
//! the original Node server.
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
//!
//! Layout: the connection setup every scenario shares (connect, park, join, leave,
//! teardown) is [`setup`]; the messages [`payload`]; the figures [`stats`] and, with the
//! servers' CPU and memory, [`report`]; what a run does, from the flags, [`plan`] (and
//! [`smoke`] for `--smoke`); then one module per scenario: [`pairs`], [`fanout`],
//! [`idle`], [`churn`], [`groupfill`].

mod churn;
mod fanout;
mod groupfill;
mod idle;
mod pairs;
mod payload;
mod plan;
mod report;
mod setup;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::sleep;

use crate::client::{self, Endpoint};
use crate::{R, procfs};
use plan::Plan;
use stats::Hist;

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

    /// Scenarios not to run, even with `all` (comma-separated or repeated): bench.sh runs
    /// idle apart, on a fresh server, since after other scenarios it measures reused memory.
    #[arg(long, value_enum, value_delimiter = ',', action = ArgAction::Append)]
    skip: Vec<Scenario>,

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

    /// Messages per second in total, spread evenly over the senders. Default for pairs: a
    /// fixed-rate phase at 2000, then one at 1000; for fanout 200 (its single sender).
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
    /// reported beside the nodes', and added to them in `total_cpu_us_per_unit`. A Redis
    /// Cluster: every primary's PID, comma-separated or the flag repeated; Redis CPU and
    /// RSS are then summed over them (and also given per PID).
    #[arg(long, value_delimiter = ',', action = ArgAction::Append)]
    redis_pid: Vec<u32>,

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

struct Cfg {
    /// The nodes, in --url order (one for a single server).
    nodes: Vec<Endpoint>,
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
    /// redis-server PIDs (one, every primary of a Redis Cluster, or none).
    redis_pids: Vec<u32>,
    /// Prefix of every room id, unique per run so that rooms left by earlier runs (kept
    /// by blindrelay for SESSION_TTL_SECS) are never reused.
    prefix: String,
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

/// The generator's `main`: parses the flags, runs, returns the exit status.
pub fn main() -> i32 {
    payload::start_clock();
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
            return 1;
        }
    };
    let code = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_secs(1));
    code
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
        match Endpoint::parse(raw) {
            Ok(node) => nodes.push(node),
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
    client::set_trace(args.trace);
    let nofile = procfs::raise_nofile();
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
        filler: payload::filler(args.payload_bytes),
        filler_for_keys: payload::filler(args.key_bytes),
        drain: Duration::from_secs_f64(args.drain),
        pids: args.server_pid.clone(),
        redis_pids: args.redis_pid.clone(),
        prefix: format!("bb{:x}", nonce & 0xffff_ffff_ffff),
    });
    for pid in cfg.pids.iter().chain(&cfg.redis_pids) {
        if procfs::cpu_s(&pid.to_string()).is_none() {
            eprintln!(
                "warning: cannot read /proc/{pid}/stat: server CPU and RSS figures will be null"
            );
        }
    }

    let smoke = args.smoke;
    let plan = Plan::new(&args);
    let fill = plan.runs(Scenario::Groupfill) && {
        if !cfg.acks && args.scenario == Scenario::Groupfill {
            eprintln!("error: groupfill times each join by its ack: it needs --acks true");
            return 2;
        }
        cfg.acks
    };

    if let Some((soft, hard)) = nofile {
        let need = plan.connections(fill);
        if (soft as usize) < need + 64 {
            eprintln!(
                "warning: open-file limit {soft} (hard {hard}) is below the {need} connections asked for; \
                 raise it with `ulimit -n` before running"
            );
        }
    }
    let list = |pids: &[u32]| {
        if pids.is_empty() {
            "none".to_owned()
        } else {
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    eprintln!(
        "blindrelay-bench -> {} (acks {}, server pid {}{})",
        cfg.url,
        cfg.acks,
        list(&cfg.pids),
        if cfg.redis_pids.is_empty() {
            String::new()
        } else {
            format!(", redis pid {}", list(&cfg.redis_pids))
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

    if plan.runs(Scenario::Pairs) {
        report("pairs", pairs::run(&cfg, &plan.pairs).await);
        pause().await;
    }
    if plan.runs(Scenario::Fanout) {
        for &m in &plan.fanout_members {
            report(
                "fanout",
                fanout::run(&cfg, m, plan.fanout_rate, plan.duration).await,
            );
            pause().await;
        }
    }
    if plan.runs(Scenario::Idle) {
        report(
            "idle",
            idle::run(&cfg, plan.idle_connections, plan.hold).await,
        );
        pause().await;
    }
    if plan.runs(Scenario::Churn) {
        report(
            "churn",
            churn::run(&cfg, plan.duration, plan.churn_concurrency).await,
        );
    }
    if fill {
        pause().await;
        report(
            "groupfill",
            groupfill::run(&cfg, plan.fill_groups, plan.fill_members, plan.key_bytes).await,
        );
    } else if plan.all {
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
