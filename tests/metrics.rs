//! `/metrics` parses as Prometheus text and its counters move with real traffic.
//! (Its own test binary: the metrics recorder is process-wide.)

mod common;

use common::{TestServer, create, join, unique};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::json;

async fn scrape(server: &TestServer, token: Option<&str>) -> Scrape {
    let mut req = reqwest::Client::new().get(server.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
}

/// The value of `name` with these labels (0 when absent).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let server = TestServer::start().await;
    let before = scrape(&server, None).await;

    let session = unique("m");
    let mut a = server.client().await;
    create(&mut a, &session, "alice").await;
    let mut b = server.client().await;
    assert_eq!(
        join(&mut b, &format!("{session}:nope"), "bob", json!({})).await["error"],
        "INVALID_KEY"
    );
    join(&mut b, &format!("{session}:k"), "bob", json!({})).await;
    a.ack(
        "send-message",
        json!({ "sessionId": session, "encrypted": "0123456789" }),
    )
    .await;
    b.next("new-message").await;
    // A refused event other than a join: in its ack alone, and counted.
    let ack = b
        .ack(
            "send-message",
            json!({ "sessionId": session, "from": "alice", "encrypted": "x" }),
        )
        .await;
    assert_eq!(ack["error"], "FORBIDDEN", "{ack}");
    assert_eq!(
        b.received("session-error").await.len(),
        1,
        "the refused join's only"
    );

    let after = scrape(&server, None).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("blindrelay_joins_total", &[("mode", "group")]), 2.0);
    assert_eq!(
        delta("blindrelay_join_failures_total", &[("code", "INVALID_KEY")]),
        1.0
    );
    assert_eq!(
        delta(
            "blindrelay_errors_total",
            &[("event", "join-session"), ("code", "INVALID_KEY")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "blindrelay_errors_total",
            &[("event", "send-message"), ("code", "FORBIDDEN")]
        ),
        1.0
    );
    assert_eq!(delta("blindrelay_messages_relayed_total", &[]), 1.0);
    assert_eq!(
        delta("blindrelay_bytes_relayed_total", &[]),
        "\"0123456789\"".len() as f64
    );
    assert_eq!(delta("blindrelay_connections_total", &[]), 2.0);
    assert_eq!(value(&after, "blindrelay_connections", &[]), 2.0);
    assert_eq!(
        value(&after, "blindrelay_sessions", &[("mode", "group")]),
        1.0
    );
    assert!(value(&after, "blindrelay_history_bytes", &[]) > 0.0);
    assert!(
        delta(
            "blindrelay_event_duration_seconds_count",
            &[("event", "send-message")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn metrics_token_is_required_when_set() {
    let server = TestServer::with(|c| c.metrics_token = Some("t0ken".into())).await;
    let res = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 401);
    scrape(&server, Some("t0ken")).await;
}
