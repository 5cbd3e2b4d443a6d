//! The floor blindrelay is measured against: a relay on the same socketioxide version
//! with no checks and no state. `join-session` joins the room named by `sessionId` (up to
//! the first `:`) and `leave-session` leaves it, each answering `{"ok":true}` when the
//! client asks for an ack (as blindrelay does: the generator then times joins and leaves
//! the same way on both); `send-message` goes to the rest of that room as `new-message`
//! and back to the sender as `message-sent` (the confirmation every client of the
//! protocol gets). Same transport, framing and serialisation as blindrelay, none of its
//! rules or state: no key lists, no history, no presence notices.
//!
//! `cargo run --release -p blindrelay-load --bin bench-floor -- [PORT]`

use axum::serve::ListenerExt;
use serde_json::value::RawValue;
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
    handler::ConnectHandler,
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

/// `{"ok":true}`: the ack, sent only when the client asked for one.
#[derive(serde::Serialize)]
struct Acked {
    ok: bool,
}

/// The floor's handlers on a new socket.
fn install(socket: SocketRef) -> Result<(), std::convert::Infallible> {
    socket.on(
        "join-session",
        async |socket: SocketRef, Data(p): Data<Room>, ack: AckSender| {
            socket.join(room(&p.session_id));
            let _ = ack.send(&Acked { ok: true });
        },
    );
    socket.on(
        "leave-session",
        async |socket: SocketRef, Data(p): Data<Room>, ack: AckSender| {
            socket.leave(room(&p.session_id));
            let _ = ack.send(&Acked { ok: true });
        },
    );
    socket.on(
        "send-message",
        async |socket: SocketRef, Data(m): Data<Message>| {
            let _ = socket.to(room(&m.session_id)).emit("new-message", &m).await;
            let _ = socket.emit("message-sent", &m);
        },
    );
    Ok(())
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
    // blindrelay's transport settings (its defaults): heartbeat, and the packets a socket
    // may have waiting (socketioxide's default 128 dropped messages at saturation).
    let (layer, io) = SocketIo::builder()
        .max_payload(20 * 1024 * 1024)
        .ping_interval(std::time::Duration::from_secs(10))
        .ping_timeout(std::time::Duration::from_secs(10))
        .max_buffer_size(512)
        .build_layer();
    // The handlers go in from a connect middleware, which runs before the client is told
    // it is connected (as blindrelay installs its own): registered in the connect handler,
    // they raced the client's first events, and a join sent at once was sometimes lost.
    let install = async |socket: SocketRef| install(socket);
    io.ns("/", (async |_: SocketRef| {}).with(install));
    let app = axum::Router::new().layer(layer);
    let listener = blindrelay::listen(([127, 0, 0, 1], port).into())?;
    eprintln!("bench-floor listening on {}", listener.local_addr()?);
    axum::serve(listener.tap_io(|tcp| drop(tcp.set_nodelay(true))), app).await
}
