//! Holding under abuse, where a raw WebSocket is needed: a transport that never
//! connects the Socket.IO namespace, and a reader that stops reading. (The other limits
//! are crossed with socket.io-client in tests/js/abuse.test.mjs.)

mod common;

use std::time::Duration;

use blindrelay::config::AbuseLimits;
use common::{Client, TestServer, create, join, unique};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(server: &TestServer) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    ws
}

/// The next text frame, answering pings; `None` once the connection is gone.
async fn next_text(ws: &mut Ws, within: Duration) -> Option<String> {
    loop {
        let msg = tokio::time::timeout(within, ws.next())
            .await
            .expect("a frame or the end in time");
        match msg {
            Some(Ok(WsMessage::Text(t))) if t.as_str() == "2" => {
                let _ = ws.send(WsMessage::text("3")).await;
            }
            Some(Ok(WsMessage::Text(t))) => return Some(t.as_str().to_owned()),
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// An honest pair in its own session; panics unless a message goes through.
async fn honest_pair(server: &TestServer) -> (Client, Client, String) {
    let session = unique("honest");
    let mut a = server.client().await;
    let mut b = server.client().await;
    assert_eq!(create(&mut a, &session, "alice").await["ok"], true);
    assert_eq!(
        join(&mut b, &format!("{session}:k"), "bob", json!({})).await["ok"],
        true
    );
    talk(&mut a, &mut b, &session).await;
    (a, b, session)
}

async fn talk(a: &mut Client, b: &mut Client, session: &str) {
    let text = unique("honest-text");
    let ack = a
        .ack(
            "send-message",
            json!({ "sessionId": session, "encrypted": text }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    loop {
        if b.next("new-message").await["encrypted"] == text.as_str() {
            break;
        }
    }
}

async fn refused(server: &TestServer, kind: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("blindrelay_refused_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().expect("number"))
}

#[tokio::test]
async fn a_transport_that_never_connects_the_namespace_is_closed_after_connect_timeout() {
    let server = TestServer::with(|c| c.abuse.connect_timeout = Duration::from_secs(1)).await;
    let (mut a, mut b, session) = honest_pair(&server).await;
    let mut ws = raw(&server).await;
    let open = next_text(&mut ws, Duration::from_secs(5)).await;
    assert!(open.is_some_and(|o| o.starts_with('0')), "engine.io open");
    // No "40": the server closes the transport once CONNECT_TIMEOUT_SECS (1 s) is up
    // (with Engine.IO's close packet, "1", or without).
    let mut end = next_text(&mut ws, Duration::from_secs(5)).await;
    if end.as_deref() == Some("1") {
        end = next_text(&mut ws, Duration::from_secs(5)).await;
    }
    assert_eq!(end, None);
    talk(&mut a, &mut b, &session).await;
}

#[tokio::test]
async fn a_reader_too_slow_for_what_it_is_sent_is_cut_off_and_leaves_its_session() {
    let server = TestServer::with(|c| {
        c.abuse = AbuseLimits {
            max_buffered_packets: 16,
            ..AbuseLimits::off()
        };
    })
    .await;
    let (mut h1, mut h2, honest_session) = honest_pair(&server).await;

    let session = unique("slow");
    let mut sender = server.client().await;
    assert_eq!(create(&mut sender, &session, "sender").await["ok"], true);

    // The slow reader connects and joins, reading until its join ack.
    let mut slow = raw(&server).await;
    assert!(next_text(&mut slow, Duration::from_secs(5)).await.is_some());
    slow.send(WsMessage::text("40")).await.expect("connect");
    // As socket.io-client does, nothing is sent before the namespace is connected.
    loop {
        let frame = next_text(&mut slow, Duration::from_secs(5)).await;
        if frame.expect("connected").starts_with("40") {
            break;
        }
    }
    let join = json!(["join-session", { "sessionId": format!("{session}:k"), "userId": "slow" }]);
    slow.send(WsMessage::text(format!("420{join}")))
        .await
        .expect("join");
    loop {
        let frame = next_text(&mut slow, Duration::from_secs(5))
            .await
            .expect("open");
        if let Some(ack) = frame.strip_prefix("430") {
            assert!(ack.contains("\"ok\":true"), "{ack}");
            break;
        }
    }
    sender.clear();

    // From now on it reads nothing. The sender's messages fill the socket's TCP
    // buffers, then its packet buffer (16). Its own events, sent meanwhile, are read
    // only while the server's writes to it make progress: either an ack finds the
    // buffer full, or its writes stop moving for a PING_TIMEOUT_SECS window; both cut it
    // off.
    let big = "x".repeat(256 * 1024);
    let typing = json!(["typing", { "sessionId": session }]);
    let mut cut_off = false;
    for batch in 0..60 {
        for i in 0..8 {
            let ack = sender
                .ack(
                    "send-message",
                    json!({ "sessionId": session, "encrypted": big, "clientMessageId": format!("m{batch}-{i}") }),
                )
                .await;
            assert_eq!(ack["ok"], true, "{ack}");
        }
        // Its own writes may wait too, once the server stops reading it.
        let probe = slow.send(WsMessage::text(format!("42{batch}{typing}")));
        let _ = tokio::time::timeout(Duration::from_millis(200), probe).await;
        if !sender.received("user-left").await.is_empty() {
            cut_off = true;
            break;
        }
    }
    if !cut_off {
        // The last probe may still be in flight; or the server no longer reads the slow
        // socket (its reads wait behind its held-up writes), so no ack of its finds the
        // buffer full: then its writes, stalled for a PING_TIMEOUT_SECS window (10 s),
        // cut it off, and it is announced PRESENCE_GRACE_SECS (1 s) later.
        let bound = Duration::from_secs(10 * 2 + 1 + 4);
        assert_eq!(
            sender.next_within("user-left", bound).await["userId"],
            "slow"
        );
    }
    let cut = refused(&server, "slow_reader").await + refused(&server, "write_too_slow").await;
    assert!(cut >= 1.0, "counted as a slow reader");
    // The honest pair in another session never noticed.
    talk(&mut h1, &mut h2, &honest_session).await;

    // Once the slow reader reads again, what it finds ends with its disconnect.
    let mut disconnected = false;
    while let Some(frame) = next_text(&mut slow, Duration::from_secs(10)).await {
        if frame.starts_with("41") {
            disconnected = true;
            break;
        }
    }
    // Closed by a `41`, or by the transport (its unanswered pings end it too, within
    // PING_INTERVAL_SECS + PING_TIMEOUT_SECS): the stream ends or errors.
    assert!(
        disconnected || !matches!(slow.next().await, Some(Ok(_))),
        "the slow reader was disconnected"
    );
}
