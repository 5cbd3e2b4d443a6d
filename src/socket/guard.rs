//! The abuse limits as they apply to Socket.IO connections: admission (per-address
//! rate and caps), each socket's event and byte budget, the join gate (failed-join
//! lockouts), the join timeout, and cutting off readers too slow for what they are sent.
//! The limits themselves are in [`crate::limits`].

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use socketioxide::{SendError, SocketError, adapter::Adapter, extract::SocketRef, handler::Value};

use crate::{
    limits::{ConnectionPermit, Refused, SocketBudget, refused},
    logging::{ConnTag, SessionTag},
    protocol::{AppError, JoinSession, SessionId},
    state::AppState,
};

/// Where a socket connected from, and its place under the connection caps (given back
/// when the socket, and so this, is dropped).
#[derive(Clone)]
pub struct Client {
    pub ip: IpAddr,
    _permit: Arc<ConnectionPermit>,
}

/// Connect middleware: admits the connection under the per-address rate and the caps.
/// A refusal reaches socket.io-client as `connect_error` whose message starts with
/// the code (`RATE_LIMITED: ...` or `LIMIT_REACHED: ...`).
pub fn admit<A: Adapter>(socket: SocketRef<A>, state: AppState) -> Result<(), Refused> {
    let parts = socket.req_parts();
    let ip = state.guard.client_ip(&parts.extensions, &parts.headers);
    match state.guard.admit(ip) {
        Ok(permit) => {
            socket.extensions.insert(Client {
                ip,
                _permit: Arc::new(permit),
            });
            Ok(())
        }
        Err(refusal) => {
            refused(refusal.kind);
            tracing::info!(socket = %ConnTag::of(socket.id), kind = refusal.kind, "connection refused");
            Err(refusal)
        }
    }
}

/// A socket's budget, and whether it has been cut off.
#[derive(Clone)]
pub struct SocketGuard(Arc<Inner>);

struct Inner {
    budget: SocketBudget,
    cut_off: AtomicBool,
    /// In a streak of refused events (logged once per streak).
    limited: AtomicBool,
}

impl SocketGuard {
    /// `shared`: the process's in-flight budget and this socket's address.
    pub fn new(
        limits: &crate::config::AbuseLimits,
        shared: Option<(Arc<crate::limits::InFlight>, IpAddr)>,
    ) -> Self {
        let budget = SocketBudget::new(limits);
        let budget = match shared {
            Some((inflight, ip)) => budget.shared_with(inflight, ip),
            None => budget,
        };
        SocketGuard(Arc::new(Inner {
            budget,
            cut_off: AtomicBool::new(false),
            limited: AtomicBool::new(false),
        }))
    }

    pub fn is_cut_off(&self) -> bool {
        self.0.cut_off.load(Ordering::Relaxed)
    }

    /// Admits a received event of `bytes` into the socket's queue (see [`SocketBudget`]).
    pub fn admit(&self, bytes: usize) -> Result<(), Refused> {
        let result = self.0.budget.admit(bytes);
        if result.is_ok() {
            self.0.limited.store(false, Ordering::Relaxed);
        }
        result
    }

    /// Waits until the socket's byte rate lets an admitted event be handled.
    pub async fn pace(&self, bytes: usize) {
        self.0.budget.pace(bytes).await;
    }

    /// An admitted event was handled or dropped.
    pub fn release(&self, bytes: usize) {
        self.0.budget.release(bytes);
    }

    /// Counts a refused event; logs the first of a streak.
    pub fn refused<A: Adapter>(&self, socket: &SocketRef<A>, refusal: &Refused) {
        refused(refusal.kind);
        if !self.0.limited.swap(true, Ordering::Relaxed) {
            tracing::info!(socket = %ConnTag::of(socket.id), kind = refusal.kind, "rate limited");
        }
    }
}

/// Bytes of an event as received: its text and any binary attachments.
pub fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(text, bins) => {
            text.len() + bins.as_ref().map_or(0, |b| b.iter().map(|b| b.len()).sum())
        }
        Value::Bytes(b) => b.len(),
    }
}

/// Whether a send failed because the socket's outgoing buffer is full.
pub fn buffer_full(result: &Result<(), SendError>) -> bool {
    matches!(
        result,
        Err(SendError::Socket(SocketError::InternalChannelFull))
    )
}

/// Cuts off a reader too slow for what it is sent: its events are ignored, its queue
/// worker leaves its sessions at once, and its transport is closed. socketioxide can
/// only disconnect a socket by queueing a packet, which a full buffer refuses: so this
/// retries until it goes through; Engine.IO's heartbeat, whose ping a full buffer refuses
/// too, closes the transport within the ping interval at the latest.
pub fn cut_off<A: Adapter>(socket: &SocketRef<A>) {
    let Some(guard) = socket.extensions.get::<SocketGuard>() else {
        return;
    };
    if guard.0.cut_off.swap(true, Ordering::Relaxed) {
        return;
    }
    refused("slow_reader");
    tracing::info!(socket = %ConnTag::of(socket.id), "outgoing buffer full: disconnecting a slow reader");
    if let Some(worker) = super::Worker::of(socket) {
        // Leaves the sessions now if the worker is idle, else after its current job.
        worker.push_control(socket, super::Job::Disconnect(None));
    }
    disconnect_soon(socket.clone());
}

/// Disconnects `socket`, retrying while its outgoing buffer is full.
fn disconnect_soon<A: Adapter>(socket: SocketRef<A>) {
    tokio::spawn(async move {
        for _ in 0..1200 {
            match socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return,
            }
        }
    });
}

/// Counts and logs a connection the transport closed for a budget (a flood of pings,
/// see `engineioxide::watch`).
pub fn closed_over_budget<A: Adapter>(socket: &SocketRef<A>) {
    let parts = socket.req_parts();
    let watch = parts
        .extensions
        .get::<engineioxide::watch::ConnectionWatch>();
    if let Some(kind) = watch.and_then(|w| w.closed_for()) {
        refused(kind);
        tracing::info!(socket = %ConnTag::of(socket.id), kind, "connection closed: over its budget");
    }
}

/// No session joined within `JOIN_TIMEOUT_SECS`: the socket is disconnected.
pub fn join_timed_out<A: Adapter>(socket: &SocketRef<A>) {
    refused("join_timeout");
    tracing::info!(socket = %ConnTag::of(socket.id), "no session joined in time: disconnecting");
    disconnect_soon(socket.clone());
}

/// A join let through the gate; [`JoinGate::done`] records how it went.
pub struct JoinGate {
    ip: IpAddr,
    session: SessionId,
}

impl JoinGate {
    /// Refuses a join from an address (or address and session) locked out by failed
    /// joins, with `RATE_LIMITED`, even when it carries the right key.
    pub fn check<A: Adapter>(
        state: &AppState,
        client: Option<&Client>,
        socket: &SocketRef<A>,
        p: &JoinSession,
    ) -> Result<JoinGate, AppError> {
        let ip = client.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.ip);
        let session = p.session_id.id.clone();
        // A creator's join may create a session: the same per-address budget as
        // reservations, so sessions are not made faster through one path than the other.
        let creator_budget = || match p.is_creator {
            Some(true) => state.guard.check_reserve(ip),
            _ => Ok(()),
        };
        if let Err(refusal) = state
            .guard
            .check_join(ip, &session)
            .and_then(|()| creator_budget())
        {
            refused(refusal.kind);
            tracing::info!(socket = %ConnTag::of(socket.id), session = %SessionTag::of(&session), kind = refusal.kind, "join locked out");
            return Err(refusal.into_app_error());
        }
        Ok(JoinGate { ip, session })
    }

    /// Counts the join's outcome. A wrong key or password that starts a lockout says how
    /// long it lasts, and the room is told (`join-lockout`), so its creator knows why a
    /// friend cannot come in.
    pub async fn done<A: Adapter>(
        self,
        state: &AppState,
        socket: &SocketRef<A>,
        result: &mut Result<crate::protocol::AckBody, AppError>,
    ) {
        let outcome = result.as_ref().err().map(|e| e.error);
        if let Some(lockout) = state.guard.join_result(self.ip, &self.session, outcome) {
            if let Err(e) = result {
                e.retry_after_ms = Some(lockout.as_millis() as u64);
            }
            let notice = JoinLockout {
                retry_after_ms: lockout.as_millis() as u64,
            };
            let room = super::rooms::session(&self.session);
            let _ = socket.to(room).emit("join-lockout", &notice).await;
        }
        // Creating a session tells as much about an id as a failed join: counted alike.
        if let Ok(crate::protocol::AckBody::Joined(ack)) = result
            && ack.created
        {
            state.guard.probed(self.ip);
        }
    }
}

/// `join-lockout`: someone's wrong keys or passwords locked their address out of the room.
#[derive(serde::Serialize)]
struct JoinLockout {
    #[serde(rename = "retryAfterMs")]
    retry_after_ms: u64,
}
