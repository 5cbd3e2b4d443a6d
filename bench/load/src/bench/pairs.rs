//! pairs: two-person rooms, both members sending; a saturation phase (closed loop,
//! `--window` messages in flight per member), then a fixed-rate phase at each rate (`--rate`
//! in all; without it 2,000 then 1,000 msg/s).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use super::Cfg;
use super::payload::{is_new_message, message_frame, now_ns, parse_new_message};
use super::report::{Probe, cpu_json, cpu_split_line, probe, show, take_per};
use super::setup::{Parked, park, setup, teardown, unpark};
use super::stats::{Hist, Seen, Stats, rate};
use crate::R;
use crate::client::{Conn, In};

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
        "  {:<22} {:>9} {:>10} {:>10} {:>6} {:>5} {} {:>9} {:>8}",
        "phase",
        "sent",
        "delivered",
        "deliv/s",
        "lost",
        "dup",
        Hist::header(),
        "srvCPU s",
        "µs/msg"
    );
}

fn table_row(name: &str, st: &Stats, j: &Value) {
    eprintln!(
        "  {:<22} {:>9} {:>10} {:>10} {:>6} {:>5} {} {:>9} {:>8}",
        name,
        st.sent,
        st.delivered,
        show(&j["delivered_per_s"]),
        st.lost,
        st.dup,
        st.lat.row(),
        show(&j["cpu"]["server_cpu_s"]),
        show(&j["server_cpu_us_per_msg"]),
    );
    cpu_split_line(&j["cpu"], &j["server_cpu_us_per_msg"], "msg");
    if let Some(e) = &st.first_error {
        eprintln!("    {} error(s); first: {e}", st.errors);
    }
}

/// The sizes of a pairs run.
pub struct Params {
    pub rooms: usize,
    pub window: u64,
    pub duration: f64,
    /// One fixed-rate phase per rate (messages per second over all rooms), in order.
    pub rates: Vec<f64>,
}

/// Runs pairs: one JSON line's figures.
pub async fn run(cfg: &Arc<Cfg>, p: &Params) -> R<Value> {
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

    // One fixed-rate phase per rate, one message per wake-up of a room's ticker.
    let n = p.rooms as f64;
    let mut conns = conns;
    let mut fixed = Vec::with_capacity(p.rates.len());
    for (i, &rate) in p.rates.iter().enumerate() {
        let period = Duration::from_secs_f64(n / rate); // per room; each member every 2 periods
        let (rest, fix, before, after) = pairs_phase(
            cfg,
            &ids,
            conns,
            |r, t0| PairMode::Fixed {
                first: t0 + period.mul_f64(r as f64 / n),
                period,
            },
            2 + i as u32,
            dur,
        )
        .await;
        conns = rest;
        let mut j = phase_json(cfg, &fix, &before, &after, p.duration);
        j["target_rate"] = json!(rate);
        j["latency_from"] = json!("actual send time");
        j["send_lag_us"] = fix.lag.json();
        fixed.push((rate, fix, j));
    }

    let keep: Vec<(Arc<str>, Parked)> = conns
        .into_iter()
        .zip(&ids)
        .filter_map(|(pc, id)| pc.map(|two| two.map(|p| (id.clone(), p))))
        .flatten()
        .collect();
    teardown(cfg, keep).await;

    let sat_j = phase_json(cfg, &sat, &b1, &a1, p.duration);
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
    for (rate, fix, j) in &fixed {
        table_row(&format!("fixed {rate} msg/s"), fix, j);
    }
    for (rate, fix, _) in &fixed {
        eprintln!(
            "  fixed {rate} msg/s: latency from the actual send time; send lag p99 {} µs, max {} µs",
            fix.lag.pct(0.99).unwrap_or(0),
            fix.lag.max
        );
    }
    let ok = sat.delivered > 0
        && sat.errors == 0
        && fixed
            .iter()
            .all(|(_, f, _)| f.delivered > 0 && f.errors == 0);
    let fixed_j: Vec<Value> = fixed.into_iter().map(|(_, _, j)| j).collect();

    Ok(json!({
        "scenario": "pairs",
        "url": cfg.url,
        "acks": cfg.acks,
        "rooms": p.rooms,
        "connections": p.rooms * 2,
        "window": p.window,
        "duration_s": p.duration,
        "rate": p.rates.first(),
        "payload_bytes": cfg.payload_bytes,
        "setup": setup_j,
        "saturation": sat_j,
        // The first rate's phase under its old name, for readers of earlier runs.
        "fixed_rate": fixed_j.first(),
        "fixed_rates": fixed_j,
        "ok": ok,
    }))
}
