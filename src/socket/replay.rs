//! History sent to a joining socket, under the replay budget (`REPLAY_BYTES_*`).
//!
//! A client that joins and never reads makes the server hold the whole history in its
//! outgoing queue. socketioxide counts that queue in packets, not bytes, and says nothing
//! of what the client has read, so each replay is counted in [`crate::limits::InFlight`]
//! for one heartbeat round (`PING_INTERVAL_SECS + PING_TIMEOUT_SECS`): a client that has
//! not read what was queued before a ping by then has missed the ping, and its connection
//! is closed, freeing the queue. Replays beyond the budget wait; one that cannot start
//! within two rounds (by then every replay held before it has been given back) gets its
//! socket disconnected (the join stands; the client's
//! reconnect asks for the history again) rather than memory the budget does not cover.

use std::time::Duration;

use serde::Serialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::guard::Client;
use crate::{limits::refused, logging::ConnTag, state::AppState};

/// How often a waiting replay looks for room in the budget.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// Emits `messages-history` (`bytes` long as stored) once the budget has room.
/// Returns false when it could not, and the socket was disconnected.
pub async fn send_history<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    history: &impl Serialize,
    bytes: usize,
) -> bool {
    let ip = socket.extensions.get::<Client>().map(|c| c.ip);
    let (Some(ip), true) = (ip, bytes > 0) else {
        let _ = socket.emit("messages-history", history);
        return true;
    };
    let round = state.config.ping_interval + state.config.ping_timeout;
    let give_up = tokio::time::Instant::now() + round * 2;
    let held = loop {
        match state.guard.replay.hold(ip, bytes) {
            Ok(held) => break held,
            Err(refusal) if tokio::time::Instant::now() >= give_up => {
                refused(refusal.kind);
                tracing::info!(socket = %ConnTag::of(socket.id), kind = refusal.kind, bytes, "history replay refused; disconnecting");
                let _ = socket.clone().disconnect();
                return false;
            }
            Err(_) => tokio::time::sleep(RETRY_EVERY).await,
        }
    };
    let _ = socket.emit("messages-history", history);
    tokio::spawn(async move {
        tokio::time::sleep(round).await;
        drop(held);
    });
    true
}
