//! `POST /api/reserve-session` with an arbitrary body, through the real router (so the
//! body type, its `ObjectOnly` wrapper, the 16 KiB limit and the handler's checks are
//! all exercised, without widening anything in `src/http.rs`).
//!
//! Invariants: every answer is 200, 400 or 413 (only for bodies over the limit), with a
//! JSON body carrying the documented `code`; a 200 comes only from a JSON object whose `sessionId` is a valid id and whose `authKey` is 1-1024 bytes, it names
//! that id and adds exactly one session; any refusal leaves the store unchanged; the same
//! body sent again after a 200 is a 409 `SESSION_EXISTS`.

#![no_main]

use std::sync::LazyLock;

use axum::{body::Body, http::Request};
use blindrelay::{AppState, Config, protocol::SessionId};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    session_id: String,
    auth_key: String,
}

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
});

fn post(state: &AppState, body: &[u8]) -> (u16, Value) {
    let request = Request::post("/api/reserve-session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    RT.block_on(async {
        let response = blindrelay::http::routes(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"));
        (status, json)
    })
}

/// Sessions the node holds (through the store interface the routes use).
fn sessions(state: &AppState) -> usize {
    RT.block_on(state.store.stats()).expect("the in-memory store always answers").sessions
}

fuzz_target!(|data: &[u8]| {
    // A fresh node per input.
    let state = AppState::new(Config::default());
    let (status, body) = post(&state, data);
    let code = body.get("code").and_then(Value::as_str);
    match status {
        200 => {
            assert_eq!(body["success"], Value::Bool(true));
            let id = body["sessionId"].as_str().expect("sessionId");
            assert!(SessionId::parse(id).is_ok());
            // Read back as serde reads it: not as a `Value`, which is stricter (serde
            // skips an unknown field's string without checking its UTF-8; found by this
            // target, pinned in tests/regressions.rs).
            let sent: Sent = serde_json::from_slice(data).expect("a 200 body decodes");
            assert_eq!(sent.session_id, id);
            assert!(!sent.auth_key.is_empty() && sent.auth_key.len() <= 1024);
            assert!(["group", "private", "password"].contains(&body["chatMode"].as_str().unwrap()));
            assert_eq!(sessions(&state), 1);
            // Again: the session exists now.
            let (again, body) = post(&state, data);
            assert_eq!(again, 409);
            assert_eq!(body["code"], "SESSION_EXISTS");
            assert_eq!(sessions(&state), 1);
        }
        400 => {
            assert_eq!(code, Some("BAD_REQUEST"));
            assert_eq!(sessions(&state), 0);
        }
        413 => {
            assert!(data.len() > blindrelay::http::RESERVE_BODY_LIMIT);
            assert_eq!(sessions(&state), 0);
        }
        other => panic!("unexpected status {other}: {body}"),
    }
});
