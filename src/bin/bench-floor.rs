//! The floor blindrelay is measured against: a relay on the same socketioxide version
//! with no checks and no state. `join-session` joins the room named by `sessionId` (up to
//! the first `:`); `send-message` goes to the rest of that room as `new-message` and back
//! to the sender as `message-sent` (the confirmation every client of the protocol gets).
//! Same transport, framing and serialisation as blindrelay, none of its rules or state.
//!
//! `cargo run --release --features bench --bin bench-floor -- [PORT]`

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

fn room(session_id: &str) -> String {
    session_id.split(':').next().unwrap_or_default().to_owned()
}

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
            async |socket: SocketRef, Data(raw): Data<Box<RawValue>>| {
                if let Ok(p) = serde_json::from_str::<Room>(raw.get()) {
                    let _ = socket
                        .to(room(&p.session_id))
                        .emit("new-message", &raw)
                        .await;
                    let _ = socket.emit("message-sent", &raw);
                }
            },
        );
    });
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bench-floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
