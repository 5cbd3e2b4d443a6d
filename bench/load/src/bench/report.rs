//! Server CPU and memory around a phase (from /proc), and the lines that report them.

use serde_json::{Value, json};
use tokio::time::Instant;

use super::Cfg;
use super::stats::{round2, round3};
use crate::procfs;

/// VmRSS summed over the server PIDs (None without PIDs or when one cannot be read).
pub fn rss_sum(cfg: &Cfg) -> Option<u64> {
    sum(&rss_per_node(cfg))
}

/// VmRSS of each server PID.
pub fn rss_per_node(cfg: &Cfg) -> Vec<Option<u64>> {
    cfg.pids.iter().map(|&p| procfs::rss_kib(p)).collect()
}

/// VmRSS of each redis-server PID (one, or every primary of a Redis Cluster).
pub fn redis_rss_per_pid(cfg: &Cfg) -> Vec<Option<u64>> {
    cfg.redis_pids.iter().map(|&p| procfs::rss_kib(p)).collect()
}

/// Sum of figures, one per process: None without processes or when one is missing (a
/// partial sum would pass for the whole).
pub fn sum<T: std::iter::Sum<T> + Copy>(v: &[Option<T>]) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        v.iter().copied().sum()
    }
}

/// CPU of the servers, of Redis and of the generator at one moment.
pub struct Probe {
    pub at: Instant,
    /// One per server PID.
    pub server: Vec<Option<f64>>,
    /// One per redis-server PID.
    pub redis: Vec<Option<f64>>,
    pub client: Option<f64>,
}

/// The CPU figures now.
pub fn probe(cfg: &Cfg) -> Probe {
    Probe {
        at: Instant::now(),
        server: cfg
            .pids
            .iter()
            .map(|p| procfs::cpu_s(&p.to_string()))
            .collect(),
        redis: cfg
            .redis_pids
            .iter()
            .map(|p| procfs::cpu_s(&p.to_string()))
            .collect(),
        client: procfs::cpu_s("self"),
    }
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// CPU figures between two probes; `units` delivered messages (or deliveries, joins).
/// `server_*` is summed over the nodes; with several nodes the per-node figures follow,
/// with --redis-pid Redis's own and the total (nodes + Redis). `redis_*` is summed over
/// the redis-server PIDs; with several (a Redis Cluster) the per-PID figures follow.
pub fn cpu_json(cfg: &Cfg, before: &Probe, after: &Probe, units: u64) -> Value {
    let deltas = |a: &[Option<f64>], b: &[Option<f64>]| -> Vec<Option<f64>> {
        a.iter().zip(b).map(|(&a, &b)| delta(a, b)).collect()
    };
    let nodes = deltas(&before.server, &after.server);
    let server = sum(&nodes);
    let redis_each = deltas(&before.redis, &after.redis);
    let redis = sum(&redis_each);
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
    if !cfg.redis_pids.is_empty() {
        let rss_each = redis_rss_per_pid(cfg);
        j["redis_cpu_s"] = json!(redis.map(round3));
        j["redis_cpu_us_per_unit"] = json!(per(redis));
        j["redis_rss_kib"] = json!(sum(&rss_each));
        let total = match (server, redis) {
            (Some(s), Some(r)) => Some(s + r),
            _ => None,
        };
        j["total_cpu_us_per_unit"] = json!(per(total));
        if cfg.redis_pids.len() > 1 {
            j["redis_pids"] = json!(cfg.redis_pids);
            j["redis_cpu_s_per_pid"] =
                json!(redis_each.iter().map(|c| c.map(round3)).collect::<Vec<_>>());
            j["redis_rss_kib_per_pid"] = json!(rss_each);
        }
    }
    j
}

/// A figure of a table: `-` for none.
pub fn show(v: &Value) -> String {
    if v.is_null() {
        "-".to_owned()
    } else {
        v.to_string()
    }
}

/// With several nodes or Redis: one more table line with the CPU split.
pub fn cpu_split_line(cpu: &Value, per_unit: &Value, unit: &str) {
    if !cpu["server_cpu_s_per_node"].is_null() {
        eprintln!(
            "    nodes: CPU s {} (sum {} µs/{unit}), RSS KiB {}",
            show(&cpu["server_cpu_s_per_node"]),
            show(per_unit),
            show(&cpu["server_rss_kib_per_node"]),
        );
    }
    if cpu.get("redis_cpu_s").is_some() {
        let each = if cpu["redis_cpu_s_per_pid"].is_null() {
            String::new()
        } else {
            format!(
                " (per process {} s, RSS KiB {})",
                show(&cpu["redis_cpu_s_per_pid"]),
                show(&cpu["redis_rss_kib_per_pid"]),
            )
        };
        eprintln!(
            "    redis: CPU {} s{each} ({} µs/{unit}); nodes + redis {} µs/{unit}",
            show(&cpu["redis_cpu_s"]),
            show(&cpu["redis_cpu_us_per_unit"]),
            show(&cpu["total_cpu_us_per_unit"]),
        );
    }
}

/// Takes `server_cpu_us_per_unit` out of [`cpu_json`]'s figures (each scenario names it
/// after its unit).
pub fn take_per(cpu: &mut Value) -> Value {
    cpu.as_object_mut()
        .and_then(|o| o.remove("server_cpu_us_per_unit"))
        .unwrap_or(Value::Null)
}
