//! Integration tests: a real server in-process, real WebSocket connections.

mod common;

use std::time::Duration;

use common::{Client, TestServer, WAIT, create, join, unique};
use serde_json::{Value, json};

fn code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], false, "expected an error ack, got {ack}");
    ack["error"].as_str().expect("error code")
}

/// A creator and a joiner in a fresh session of `mode`.
async fn pair(server: &TestServer, mode: &str) -> (Client, Client, String) {
    let (a, b, session, _) = pair_with_token(server, mode).await;
    (a, b, session)
}

/// [`pair`], and the joiner's resume token (what a second socket of bob's presents).
async fn pair_with_token(server: &TestServer, mode: &str) -> (Client, Client, String, String) {
    let session = unique(mode);
    assert_eq!(server.reserve(&session, "key-1", mode).await.status(), 200);
    let mut a = server.client().await;
    let ack = join(
        &mut a,
        &session,
        "alice",
        json!({ "isCreator": true, "authKey": "key-1" }),
    )
    .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["isCreator"], true);
    let mut b = server.client().await;
    let ack = join(&mut b, &format!("{session}:key-1"), "bob", json!({})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let token = resume_token(&ack);
    a.clear();
    b.clear();
    (a, b, session, token)
}

/// The resume token a join ack carries (every join that presented none is issued one).
fn resume_token(ack: &Value) -> String {
    ack["resumeToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no resumeToken in {ack}"))
        .to_owned()
}

#[tokio::test]
async fn a_group_session_relays_keys_and_messages_without_plaintext() {
    let server = TestServer::start().await;
    let session = unique("g");
    let mut a = server.client().await;
    create(&mut a, &session, "alice").await;
    a.clear();
    let mut b = server.client().await;
    let ack = join(&mut b, &format!("{session}:k"), "bob", json!({})).await;
    let token = resume_token(&ack);
    assert_eq!(
        ack,
        json!({ "ok": true, "sessionId": session, "userId": "bob", "chatMode": "group", "isCreator": false, "resumeToken": token })
    );

    let joined = a.next("user-joined").await;
    assert_eq!(joined["userId"], "bob");
    let keys = a.next("public-keys-updated").await;
    let mut users: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["userId"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(b.next("session-metadata").await["chatMode"], "group");

    let ack = a
        .ack("send-message", json!({ "sessionId": session, "encrypted": {"iv": "x", "ct": "y"}, "originalContent": "PLAINTEXT-1", "clientMessageId": "m1" }))
        .await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["id"], "m1");
    let got = b.next("new-message").await;
    assert_eq!(got["from"], "alice");
    assert_eq!(got["encrypted"], json!({"iv": "x", "ct": "y"}));
    assert_eq!(got["senderDisplayName"], "alice");
    assert!(
        !got.to_string().contains("PLAINTEXT-1"),
        "plaintext relayed: {got}"
    );
    let sent = a.next("message-sent").await;
    assert_eq!(sent["originalContent"], "PLAINTEXT-1");

    // A new socket of bob (beside the first: with his resume token) reads the history:
    // the message, without the plaintext.
    let mut b2 = server.client().await;
    let ack = join(
        &mut b2,
        &format!("{session}:k"),
        "bob",
        json!({ "resumeToken": token }),
    )
    .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let history = b2.next("messages-history").await;
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert!(!history.to_string().contains("PLAINTEXT-1"));
}

#[tokio::test]
async fn a_sockets_events_are_handled_in_the_order_sent() {
    let server = TestServer::start().await;
    for i in 0..25 {
        let session = unique("order");
        let mut c = server.client().await;
        // No wait between the join and the message, as old clients do.
        c.emit(
            "join-session",
            json!({ "sessionId": session, "userId": "u", "isCreator": true, "authKey": "k" }),
        );
        let ack = c
            .ack(
                "send-message",
                json!({ "sessionId": session, "encrypted": "c" }),
            )
            .await;
        assert_eq!(ack["ok"], true, "round {i}: {ack}");
        c.close();
    }
}

#[tokio::test]
async fn malformed_payloads_are_refused_and_harm_nobody() {
    let server = TestServer::start().await;
    let (mut a, mut b, session) = pair(&server, "group").await;
    let mut evil = server.client().await;
    let events = [
        "join-session",
        "save-public-key",
        "get-public-keys",
        "send-message",
        "set-session-key",
        "typing",
        "stopped-typing",
        "file-downloaded",
        "leave-session",
        "close-session",
    ];
    let long = "x".repeat(200);
    let bad = [
        json!("a string"),
        json!(42),
        json!([1, 2]),
        Value::Null,
        json!({}),
        json!({ "sessionId": 7 }),
        json!({ "sessionId": long }),
        json!({ "sessionId": "bad id!" }),
        json!({ "sessionId": session, "userId": ["x"] }),
        // An array holding the fields in order is not an object.
        json!([session, "alice"]),
    ];
    for event in events {
        for payload in &bad {
            let ack = evil.ack(event, payload.clone()).await;
            assert_eq!(code(&ack), "BAD_REQUEST", "{event} {payload}: {ack}");
        }
        // No payload at all.
        let ack = evil.ack_args(event, vec![]).await;
        assert_eq!(code(&ack), "BAD_REQUEST", "{event} without payload");
    }
    // Unknown events are ignored: the next ack still comes, in order.
    evil.emit("no-such-event", json!({ "x": 1 }));
    let ack = evil
        .ack("get-public-keys", json!({ "sessionId": session }))
        .await;
    assert_eq!(code(&ack), "NOT_IN_SESSION");
    // Every refusal was in its ack alone: only a refused join-session is also a
    // session-error. Those of the joins came before this last ack; nothing else did.
    let errors = evil.received("session-error").await;
    assert!(
        errors.iter().all(|e| e["error"] == "BAD_REQUEST"),
        "{errors:?}"
    );
    assert_eq!(
        errors.len(),
        bad.len() + 1,
        "one session-error per refused join-session, none for other events: {errors:?}"
    );
    // A packet that does not parse ends that connection only (as in Socket.IO's Node server).
    evil.send_raw("42[\"send-message\"".into());
    evil.next("transport-closed").await;

    // The honest pair still talks.
    let ack = a
        .ack(
            "send-message",
            json!({ "sessionId": session, "encrypted": "still-here" }),
        )
        .await;
    assert_eq!(ack["ok"], true);
    assert_eq!(b.next("new-message").await["encrypted"], "still-here");
}

#[tokio::test]
async fn only_members_act_and_only_as_themselves() {
    let server = TestServer::start().await;
    let (mut a, mut b, session) = pair(&server, "group").await;
    let mut outsider = server.client().await;
    let s = json!(session);
    let member_events = [
        (
            "save-public-key",
            json!({ "sessionId": s, "publicKey": "pk" }),
        ),
        ("get-public-keys", json!({ "sessionId": s })),
        ("send-message", json!({ "sessionId": s, "encrypted": "c" })),
        (
            "set-session-key",
            json!({ "sessionId": s, "encryptedKeys": {} }),
        ),
        ("typing", json!({ "sessionId": s })),
        ("stopped-typing", json!({ "sessionId": s })),
        (
            "file-downloaded",
            json!({ "sessionId": s, "senderId": "alice", "fileName": "f" }),
        ),
        ("leave-session", json!({ "sessionId": s })),
        ("close-session", json!({ "sessionId": s })),
    ];
    for (event, payload) in &member_events {
        let ack = outsider.ack(event, payload.clone()).await;
        assert_eq!(code(&ack), "NOT_IN_SESSION", "{event}");
    }
    // Refused in the ack alone (the last ack came after anything sent before it).
    assert_eq!(
        outsider.received("session-error").await,
        Vec::<Value>::new()
    );
    // No event but join creates a session.
    let ghost = unique("ghost");
    let ack = outsider
        .ack(
            "save-public-key",
            json!({ "sessionId": ghost, "publicKey": "pk" }),
        )
        .await;
    assert_eq!(code(&ack), "NOT_IN_SESSION");
    assert_eq!(server.health().await["sessions"], 1);

    // Speaking as someone else.
    let spoofs = [
        (
            "send-message",
            json!({ "sessionId": s, "from": "alice", "encrypted": "c" }),
        ),
        (
            "save-public-key",
            json!({ "sessionId": s, "userId": "alice", "publicKey": "pk" }),
        ),
        ("typing", json!({ "sessionId": s, "userId": "alice" })),
        (
            "leave-session",
            json!({ "sessionId": s, "userId": "alice" }),
        ),
        (
            "set-session-key",
            json!({ "sessionId": s, "encryptedKeys": { "bob": "k" } }),
        ),
        ("close-session", json!({ "sessionId": s })),
    ];
    for (event, payload) in &spoofs {
        let ack = b.ack(event, payload.clone()).await;
        assert_eq!(code(&ack), "FORBIDDEN", "{event}: {ack}");
    }
    assert_eq!(b.received("session-error").await, Vec::<Value>::new());
    // downloadedBy is free text (the app sends a display name) and is not read: the
    // notice names the member the connection joined as.
    let ack = b
        .ack(
            "file-downloaded",
            json!({ "sessionId": s, "downloadedBy": "alice", "senderId": "alice", "fileName": "f", "timestamp": 5 }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        a.next("download-notification").await,
        json!({ "downloadedBy": "bob", "userId": "bob", "fileName": "f", "timestamp": 5.0 })
    );
    // Without `from`, the bound user is used.
    b.ack("send-message", json!({ "sessionId": s, "encrypted": "c2" }))
        .await;
    assert_eq!(a.next("new-message").await["from"], "bob");
}

#[tokio::test]
async fn history_keeps_one_copy_per_recipient_and_no_retries() {
    let server = TestServer::start().await;
    let (mut a, mut b, session, bob) = pair_with_token(&server, "group").await;
    let mut c = server.client().await;
    let carol = resume_token(&join(&mut c, &format!("{session}:key-1"), "carol", json!({})).await);
    for (to, body) in [("bob", "for-bob"), ("carol", "for-carol")] {
        let ack = a.ack("send-message", json!({ "sessionId": session, "to": to, "encrypted": body, "clientMessageId": "m1" })).await;
        assert_eq!(ack["ok"], true);
        assert!(ack.get("duplicate").is_none());
    }
    let retry = a.ack("send-message", json!({ "sessionId": session, "to": "bob", "encrypted": "for-bob", "clientMessageId": "m1" })).await;
    assert_eq!(retry["duplicate"], true);
    assert_eq!(b.next("new-message").await["encrypted"], "for-bob");
    assert_eq!(c.next("new-message").await["encrypted"], "for-carol");
    // message-sent once per id.
    a.ack("get-public-keys", json!({ "sessionId": session }))
        .await;
    assert_eq!(a.received("message-sent").await.len(), 1);
    b.ack("get-public-keys", json!({ "sessionId": session }))
        .await;
    assert!(
        b.received("new-message").await.is_empty(),
        "a retry was relayed again"
    );

    // Each one's new socket (beside its first one: with its resume token).
    for (user, token, want) in [("bob", &bob, "for-bob"), ("carol", &carol, "for-carol")] {
        let mut again = server.client().await;
        let ack = join(
            &mut again,
            &format!("{session}:key-1"),
            user,
            json!({ "resumeToken": token }),
        )
        .await;
        assert_eq!(ack["ok"], true, "{ack}");
        let history = again.next("messages-history").await;
        let bodies: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["encrypted"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, [want], "{user}'s history");
        // A copy addressed to its reader carries the placeholder, never plaintext.
        assert_eq!(history[0]["originalContent"], "🔒", "{history}");
    }
}

#[tokio::test]
async fn empty_sessions_expire_but_occupied_ones_never_do() {
    let server = TestServer::with(|c| {
        c.session_ttl = Duration::from_secs(1);
        c.reaper_interval = Duration::from_secs(1);
    })
    .await;
    let (a, mut b, session) = pair(&server, "group").await;
    a.close();
    // Past the TTL (the thing under test), bob is still connected: the session stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ack = b
        .ack(
            "send-message",
            json!({ "sessionId": session, "encrypted": "c" }),
        )
        .await;
    assert_eq!(ack["ok"], true, "an occupied session was reaped: {ack}");
    b.close();
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.health().await["sessions"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an empty session outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = server.client().await;
    let ack = join(&mut c, &format!("{session}:key-1"), "carol", json!({})).await;
    assert_eq!(code(&ack), "SESSION_NOT_FOUND");
}

#[tokio::test]
async fn an_idle_session_past_its_ttl_answers_session_expired() {
    let server = TestServer::with(|c| {
        c.session_ttl = Duration::from_secs(1);
        c.reaper_interval = Duration::from_secs(3600);
    })
    .await;
    let session = unique("exp");
    assert_eq!(server.reserve(&session, "k", "group").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = server.client().await;
    let ack = join(&mut c, &format!("{session}:k"), "bob", json!({})).await;
    assert_eq!(code(&ack), "SESSION_EXPIRED");
}

#[tokio::test]
async fn leave_and_close_delete_the_session_at_once() {
    let server = TestServer::start().await;
    let (mut a, mut b, session) = pair(&server, "private").await;
    assert_eq!(
        b.ack("leave-session", json!({ "sessionId": session }))
            .await["ok"],
        true
    );
    assert_eq!(a.next("user-left").await["userId"], "bob");
    assert_eq!(
        a.ack("leave-session", json!({ "sessionId": session }))
            .await["ok"],
        true
    );
    assert_eq!(server.health().await["sessions"], 0);

    let (mut a, mut b, session) = pair(&server, "group").await;
    assert_eq!(
        code(
            &b.ack("close-session", json!({ "sessionId": session }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        a.ack("close-session", json!({ "sessionId": session }))
            .await["ok"],
        true
    );
    for c in [&mut a, &mut b] {
        let closed = c.next("session-closed").await;
        assert_eq!(closed["sessionId"], session);
        let ack = c
            .ack(
                "send-message",
                json!({ "sessionId": session, "encrypted": "x" }),
            )
            .await;
        assert_eq!(code(&ack), "NOT_IN_SESSION");
    }
    assert_eq!(server.health().await["sessions"], 0);
}

#[tokio::test]
async fn oversized_fields_answer_payload_too_large() {
    let server = TestServer::with(|c| c.history_max_bytes = 4096).await;
    let (mut a, _b, session) = pair(&server, "group").await;
    let big_key = "k".repeat(17 * 1024);
    let ack = a
        .ack(
            "save-public-key",
            json!({ "sessionId": session, "publicKey": big_key }),
        )
        .await;
    assert_eq!(code(&ack), "PAYLOAD_TOO_LARGE");
    let ack = a
        .ack(
            "send-message",
            json!({ "sessionId": session, "encrypted": "c".repeat(8192) }),
        )
        .await;
    assert_eq!(code(&ack), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn shutdown_closes_sockets_and_returns_promptly() {
    let server = TestServer::start().await;
    let (mut a, _b, _session) = pair(&server, "group").await;
    let took = server.shutdown().await;
    assert!(took < Duration::from_secs(6), "shutdown took {took:?}");
    // The client sees its connection end.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen =
            a.received("transport-closed").await.len() + a.received("disconnect").await.len();
        if seen > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "socket still open after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
