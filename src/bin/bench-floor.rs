//! The floor blindrelay is measured against: a relay on the same socketioxide version
//! with no checks and no state. `join-session` joins the room named by `sessionId` (up to
//! the first `:`); `send-message` goes to the rest of that room as `new-message` and back
//! to the sender as `message-sent` (the confirmation every client of the protocol gets).
//! Same transport, framing and serialisation as blindrelay, none of its rules or state.
//!
//! `cargo run --release --features bench --bin bench-floor -- [PORT]`

use axum::serve::ListenerExt;
use serde_json::value::RawValue;
use socketioxide::{
    SocketIo,
    extract::{Data, SocketRef},
};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Room {
    session_id: String,
}

/// The fields blindrelay reads from `send-message`, relayed as they came.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    encrypted: Box<RawValue>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_message_id: Option<String>,
}

fn room(session_id: &str) -> String {
    session_id.split(':').next().unwrap_or_default().to_owned()
}

/// The same allocator as blindrelay's binary, so that the comparison is of the relays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3101);
    let (layer, io) = SocketIo::builder()
        .max_payload(20 * 1024 * 1024)
        .build_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on(
            "join-session",
            async |socket: SocketRef, Data(p): Data<Room>| {
                socket.join(room(&p.session_id));
            },
        );
        socket.on(
            "send-message",
            async |socket: SocketRef, Data(m): Data<Message>| {
                let _ = socket.to(room(&m.session_id)).emit("new-message", &m).await;
                let _ = socket.emit("message-sent", &m);
            },
        );
    });
    let app = axum::Router::new().layer(layer);
    let listener = blindrelay::listen(([127, 0, 0, 1], port).into())?;
    eprintln!("bench-floor listening on {}", listener.local_addr()?);
    axum::serve(listener.tap_io(|tcp| drop(tcp.set_nodelay(true))), app).await
}
