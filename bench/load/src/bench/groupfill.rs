//! groupfill: `--groups` group rooms of `--members` filled one join at a time, each join
//! waiting for its ack: join latency by position, server CPU per join, and the bytes all
//! clients receive (every join sends the whole key list to the room).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::Cfg;
use super::report::{cpu_json, cpu_split_line, probe, take_per};
use super::setup::{Parked, open_rooms, park, take_connect_lat, teardown, unpark};
use super::stats::{Hist, rate, round3};
use crate::{R, rx};

/// Fills `groups` group rooms of `members`, one after the other, one join at a time:
/// member m of group g (on node (g + m) mod N) joins, and the next join waits for its
/// ack. Every connection is opened (and parked: it keeps reading) before the first join.
pub async fn run(cfg: &Arc<Cfg>, groups: usize, members: usize, key_bytes: usize) -> R<Value> {
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
    let mut keys_target = rx::keys_frames();
    let mut bytes_by_pos = vec![0u64; members];
    let mut all = Hist::default();
    let mut failure = None;
    let mut joins = 0u64;
    rx::set_counting(true);
    let rx0 = rx::counts();
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
                if rx::await_keys_frames(keys_target, Duration::from_secs(1)).await {
                    let ns = at.elapsed().as_nanos() as u64;
                    seen_by_pos[m].record_ns(ns);
                    all_seen.record_ns(ns);
                } else {
                    settle = false;
                }
            }
            let now = rx::bytes();
            bytes_by_pos[m] += now - last;
            last = now;
        }
    }
    let fill_s = t.elapsed().as_secs_f64();
    // The last broadcasts may still be on their way to the other members.
    sleep(Duration::from_millis(300)).await;
    let after = probe(cfg);
    let rx1 = rx::counts();
    rx::set_counting(false);
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
