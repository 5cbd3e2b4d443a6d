//! idle: `--connections` connections joined two per room and held open: join rate and
//! server memory per connection.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::Cfg;
use super::report::{redis_rss_per_pid, rss_per_node, rss_sum, sum};
use super::setup::{setup, teardown, with_rooms};
use super::stats::{rate, round2};
use crate::R;

/// Runs idle: one JSON line's figures.
pub async fn run(cfg: &Arc<Cfg>, connections: usize, hold: u64) -> R<Value> {
    let rooms = connections.div_ceil(2).max(1);
    let k = rooms * 2;
    let rss = || rss_sum(cfg);
    let rss_before = rss();
    let nodes_before = rss_per_node(cfg);
    let redis_before_each = redis_rss_per_pid(cfg);
    let redis_before = sum(&redis_before_each);
    let t = Instant::now();
    let rs = setup(cfg, "i", rooms, 2).await?;
    let setup_s = t.elapsed().as_secs_f64();
    sleep(Duration::from_millis(200)).await;
    let rss_after = rss();
    let nodes_after = rss_per_node(cfg);
    let redis_after_each = redis_rss_per_pid(cfg);
    let redis_after = sum(&redis_after_each);
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
    let list = |v: &[Option<u64>]| v.iter().map(|&x| f(x)).collect::<Vec<_>>().join(", ");
    if cfg.pids.len() > 1 {
        eprintln!(
            "    nodes: RSS KiB before [{}], after [{}]",
            list(&nodes_before),
            list(&nodes_after)
        );
    }
    if cfg.redis_pids.len() > 1 {
        eprintln!(
            "    redis: RSS KiB before {} [{}], after {} [{}]",
            f(redis_before),
            list(&redis_before_each),
            f(redis_after),
            list(&redis_after_each)
        );
    } else if !cfg.redis_pids.is_empty() {
        eprintln!(
            "    redis: RSS KiB before {}, after {}",
            f(redis_before),
            f(redis_after)
        );
    }
    let mut j = json!({
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
    });
    if cfg.redis_pids.len() > 1 {
        j["redis_pids"] = json!(cfg.redis_pids);
        j["redis_rss_kib_per_pid_before"] = json!(redis_before_each);
        j["redis_rss_kib_per_pid_after"] = json!(redis_after_each);
    }
    Ok(j)
}
