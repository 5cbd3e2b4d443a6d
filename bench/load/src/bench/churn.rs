//! churn: `--concurrency` workers each creating a two-person room, exchanging one
//! message each way, leaving and closing, in a loop for `--duration`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep, sleep_until};

use super::Cfg;
use super::payload::{is_new_message, message_frame, now_ns, parse_new_message};
use super::report::{cpu_json, cpu_split_line, probe, rss_sum, take_per};
use super::setup::connect;
use super::stats::{Hist, Stats, rate, round3};
use crate::R;
use crate::client::{Conn, In};

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
    let (a, b) = tokio::join!(connect(cfg, node), connect(cfg, node + 1));
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

/// Runs churn: one JSON line's figures.
pub async fn run(cfg: &Arc<Cfg>, duration: f64, concurrency: usize) -> R<Value> {
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
