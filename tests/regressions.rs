//! Inputs the fuzz targets (`fuzz/`, `bash scripts/fuzz.sh`) found, kept as regression
//! tests with the input inlined. Neither was a server bug: each showed that serde is
//! more lenient than a `serde_json::Value`, which the targets' invariants first assumed.
//! The tests pin what the server does with them.

mod common;

use blindrelay::protocol::{JoinSession, ObjectOnly, SendMessage};
use common::TestServer;

/// payloads, crash-b7963dc4: `{"sessionId":"room-1","userId":"alice","publicKey":"d83d\ude00"}`.
/// A lone surrogate escape is valid JSON grammar (RFC 8259 §8.2) but has no Rust
/// `String`, so a `Value` refuses it. Opaque fields (`publicKey`, `encrypted`,
/// `originalContent`) are relayed as their exact text: the escape passes through
/// untouched, as browsers' `JSON.stringify` writes it. (tests/js/faults.test.mjs checks
/// that such a message reaches the other member.)
#[test]
fn lone_surrogate_escapes_in_opaque_fields_are_kept_verbatim() {
    let input = br#"{"sessionId":"room-1","userId":"alice","publicKey":"d83d\ude00"}"#;
    assert!(serde_json::from_slice::<serde_json::Value>(input).is_err());
    let ObjectOnly(join) = serde_json::from_slice::<ObjectOnly<JoinSession>>(input).unwrap();
    assert_eq!(join.public_key.unwrap().get(), r#""d83d\ude00""#);

    let input =
        br#"{"sessionId":"room-1","encrypted":{"ct":"\udc00\ud800"},"originalContent":"\ud83d"}"#;
    let ObjectOnly(msg) = serde_json::from_slice::<ObjectOnly<SendMessage>>(input).unwrap();
    assert_eq!(msg.encrypted.get(), r#"{"ct":"\udc00\ud800"}"#);
    assert_eq!(msg.original_content.unwrap().get(), r#""\ud83d""#);

    // A lone surrogate in a field the server reads as text is refused.
    let input = br#"{"sessionId":"room-1","userId":"\ude00"}"#;
    assert!(serde_json::from_slice::<ObjectOnly<JoinSession>>(input).is_err());
}

/// reserve_body, crash-0d2c3adb: invalid UTF-8 (`\xc2p`) inside the string of an unknown
/// field. serde skips unknown fields without checking their UTF-8, and unknown fields
/// are ignored (docs/protocol.md), so the reservation succeeds on the valid fields; invalid UTF-8
/// in a field the server reads is a 400.
#[tokio::test]
async fn reserve_body_with_invalid_utf8_in_an_unknown_field() {
    let server = TestServer::start().await;
    let post = |body: &'static [u8]| {
        reqwest::Client::new()
            .post(server.url("/api/reserve-session"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let res = post(b"{\"sessionId\":\"room-4\",\"authKey\":\"k\",\"chatModDDDDDe\":\"n\xc2pe\"}")
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["sessionId"], "room-4");
    assert_eq!(body["chatMode"], "group");
    assert_eq!(server.health().await["sessions"], 1);

    let res = post(b"{\"sessionId\":\"room-5\",\"authKey\":\"k\xc2p\"}")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "BAD_REQUEST");
    assert_eq!(server.health().await["sessions"], 1);
}
