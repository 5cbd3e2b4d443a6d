//! Prometheus metrics (`GET /metrics`). Counters and histograms are recorded where things
//! happen; gauges are read from the store when scraped, so they cost nothing between scrapes.

use std::sync::{LazyLock, OnceLock};

use metrics::{
    Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{
    protocol::{ChatMode, EventKind},
    state::AppState,
};

pub const CONNECTIONS_TOTAL: &str = "blindrelay_connections_total";
pub const JOINS_TOTAL: &str = "blindrelay_joins_total";
pub const JOIN_FAILURES_TOTAL: &str = "blindrelay_join_failures_total";
pub const ERRORS_TOTAL: &str = "blindrelay_errors_total";
pub const MESSAGES_RELAYED_TOTAL: &str = "blindrelay_messages_relayed_total";
pub const BYTES_RELAYED_TOTAL: &str = "blindrelay_bytes_relayed_total";
pub const SESSIONS_REAPED_TOTAL: &str = "blindrelay_sessions_reaped_total";
pub const EVENT_DURATION: &str = "blindrelay_event_duration_seconds";
pub const REDIS_DURATION: &str = "blindrelay_redis_duration_seconds";
pub const REDIS_ERRORS_TOTAL: &str = "blindrelay_redis_errors_total";
pub const BUS_OVERFLOWS_TOTAL: &str = "blindrelay_bus_overflows_total";

/// Latency buckets, in seconds: 50 µs to 250 ms.
const BUCKETS: &[f64] = &[
    0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25,
];
pub const REFUSED_TOTAL: &str = "blindrelay_refused_total";
pub const HISTORY_EVICTED_TOTAL: &str = "blindrelay_history_evicted_total";

/// The process-wide recorder (the `metrics` macros write to one global recorder, so
/// several servers in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(EVENT_DURATION.into()), BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(REDIS_DURATION.into()), BUCKETS))
            .expect("static buckets are valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; then ours stays empty.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(CONNECTIONS_TOTAL, "Socket.IO connections accepted");
    describe_counter!(JOINS_TOTAL, "Successful join-session events, by chat mode");
    describe_counter!(
        JOIN_FAILURES_TOTAL,
        "Refused join-session events, by error code"
    );
    describe_counter!(ERRORS_TOTAL, "Refused events, by event and error code");
    describe_counter!(MESSAGES_RELAYED_TOTAL, "Messages stored and relayed");
    describe_counter!(BYTES_RELAYED_TOTAL, "Ciphertext bytes of relayed messages");
    describe_counter!(
        SESSIONS_REAPED_TOTAL,
        "Sessions deleted after their inactivity lifetime"
    );
    describe_counter!(
        REFUSED_TOTAL,
        "Things refused or cut off by an abuse limit, by kind (SECURITY.md)"
    );
    describe_counter!(
        HISTORY_EVICTED_TOTAL,
        "Messages dropped from the largest histories to keep HISTORY_TOTAL_MAX_BYTES"
    );
    describe_histogram!(
        EVENT_DURATION,
        metrics::Unit::Seconds,
        "Time to handle a client event, by event"
    );
    describe_histogram!(
        REDIS_DURATION,
        metrics::Unit::Seconds,
        "Round trip of one Redis store operation (a script call)"
    );
    describe_counter!(REDIS_ERRORS_TOTAL, "Redis store operations that failed");
    describe_counter!(
        BUS_OVERFLOWS_TOTAL,
        "Times this node's Redis broadcast backlog filled (operations refused, then history resent)"
    );
    describe_gauge!("blindrelay_connections", "Connected Socket.IO sockets");
    describe_gauge!("blindrelay_sessions", "Sessions held, by chat mode");
    describe_gauge!(
        "blindrelay_sessions_active",
        "Sessions with at least one connected member"
    );
    describe_gauge!(
        "blindrelay_history_bytes",
        "Bytes of message history held, all sessions"
    );
    describe_gauge!(
        "blindrelay_draining",
        "1 while the server drains for shutdown"
    );
}

/// The Prometheus text exposition, with gauges refreshed from `state`.
pub async fn render(state: &AppState) -> String {
    let handle = handle();
    // With Redis down, the session gauges keep their last values.
    let Ok(stats) = state.store.stats().await else {
        return handle.render();
    };
    gauge!("blindrelay_connections").set(state.connection_count() as f64);
    for (mode, count) in [
        (ChatMode::Group, stats.group),
        (ChatMode::Private, stats.private),
        (ChatMode::Password, stats.password),
    ] {
        gauge!("blindrelay_sessions", "mode" => mode.as_str()).set(count as f64);
    }
    gauge!("blindrelay_sessions_active").set(stats.active as f64);
    gauge!("blindrelay_history_bytes").set(stats.history_bytes as f64);
    gauge!("blindrelay_draining").set(if state.is_draining() { 1.0 } else { 0.0 });
    handle.render()
}

pub fn connection_accepted() {
    counter!(CONNECTIONS_TOTAL).increment(1);
}

/// Counted per message, so the handles are looked up once (after [`handle`] installed the
/// recorder, which `serve` does before any socket exists).
pub fn message_relayed(ciphertext_bytes: usize) {
    static HANDLES: LazyLock<(Counter, Counter)> = LazyLock::new(|| {
        (
            counter!(MESSAGES_RELAYED_TOTAL),
            counter!(BYTES_RELAYED_TOTAL),
        )
    });
    HANDLES.0.increment(1);
    HANDLES.1.increment(ciphertext_bytes as u64);
}

/// Records how long handling one event took.
pub fn event_handled(event: EventKind, seconds: f64) {
    static HANDLES: LazyLock<Vec<Histogram>> = LazyLock::new(|| {
        EventKind::ALL
            .iter()
            .map(|k| histogram!(EVENT_DURATION, "event" => k.name()))
            .collect()
    });
    if let Some(h) = HANDLES.get(event as usize) {
        h.record(seconds);
    }
}

/// Folds recorded histogram samples into their buckets every few seconds. Without it
/// they pile up until a scrape of `/metrics` (the soak found ~8 bytes kept per event on a
/// server nobody scraped).
pub async fn run_upkeep() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle().run_upkeep();
    }
}

/// Records one Redis round trip.
pub fn redis_round_trip(seconds: f64, ok: bool) {
    static HANDLES: LazyLock<(Histogram, Counter)> =
        LazyLock::new(|| (histogram!(REDIS_DURATION), counter!(REDIS_ERRORS_TOTAL)));
    HANDLES.0.record(seconds);
    if !ok {
        HANDLES.1.increment(1);
    }
}

/// Counts one thing refused (or a socket cut off) by an abuse limit; `kind` names the
/// limit (`socket_events`, `ip_connects`, `session_lockout`, `slow_reader`, ...).
pub fn refused(kind: &'static str) {
    counter!(REFUSED_TOTAL, "kind" => kind).increment(1);
}
