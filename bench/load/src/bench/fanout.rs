//! fanout: one room of `--members`, one sender at `--rate`, every other member receiving.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, sleep_until};

use super::Cfg;
use super::payload::{is_new_message, message_frame, now_ns, parse_new_message};
use super::report::{cpu_json, cpu_split_line, probe, show, take_per};
use super::setup::{park, setup, teardown, unpark};
use super::stats::{Hist, Seen, Stats, rate};
use crate::R;
use crate::client::In;

/// Runs fanout with `members` members: one JSON line's figures.
pub async fn run(cfg: &Arc<Cfg>, members: usize, msg_rate: f64, duration: f64) -> R<Value> {
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
        "  {:>8} {:>11} {:>11} {:>12} {:>7} {:>5} {} {:>9} {:>10}",
        "sent",
        "expected",
        "delivered",
        "deliveries/s",
        "lost",
        "dup",
        Hist::header(),
        "srvCPU s",
        "µs/deliv"
    );
    eprintln!(
        "  {:>8} {:>11} {:>11} {:>12} {:>7} {:>5} {} {:>9} {:>10}",
        sent,
        expected,
        st.delivered,
        rate(st.in_window, duration),
        st.lost,
        st.dup,
        st.lat.row(),
        show(&cpu["server_cpu_s"]),
        show(&per)
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
