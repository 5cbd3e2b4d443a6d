//! Socket.IO connections.
//!
//! Every event of a socket goes through its [`queue::Worker`], which handles them in
//! arrival order (see there why, and how an idle socket holds nothing of ours).
//!
//! The worker and the handlers are installed by a connect *middleware*, which runs
//! before socketioxide tells the client it is connected (a connect handler runs after,
//! and an event sent at once would find no handler). The worker starts in the connect
//! handler, once the connection is established; events wait in its queue until then.

mod guard;
mod handlers;
mod queue;
mod replay;
mod tell;

pub use handlers::announce_left;
pub(crate) mod rooms;

use queue::{Admitted, Job, Worker};

use std::sync::{Arc, atomic::Ordering};

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef},
    handler::{FromMessageParts, MessageHandler, Value},
    socket::Socket,
};

use crate::{
    logging::ConnTag,
    protocol::{AppError, ErrorAck, ErrorCode, EventKind, OkAck},
    state::AppState,
};

/// Registers the default namespace. With the Redis adapter, the returned future
/// subscribes to the cluster's channels.
pub fn register<A>(io: &SocketIo<A>, state: AppState) -> A::InitRes
where
    A: Adapter + socketioxide_core::adapter::DefinedAdapter,
{
    use socketioxide::handler::ConnectHandler;
    let admit_state = state.clone();
    let on_connect = async move |socket: SocketRef<A>| start_worker(socket);
    let install = async move |socket: SocketRef<A>| install_queue(socket, state);
    let admit = async move |socket: SocketRef<A>| guard::admit(socket, admit_state);
    // The last middleware added runs first: the limits before anything is allocated.
    io.ns("/", on_connect.with(install).with(admit))
}

/// Connect middleware: the worker and handlers, in place before the client may send.
fn install_queue<A: Adapter>(
    socket: SocketRef<A>,
    state: AppState,
) -> Result<(), std::convert::Infallible> {
    let ip = socket.extensions.get::<guard::Client>().map(|c| c.ip);
    let shared = ip.map(|ip| (state.guard.inflight.clone(), ip));
    let limits = guard::SocketGuard::new(&state.config.abuse, shared);
    socket.extensions.insert(limits.clone());
    let worker = Worker::install(&socket, state, limits);
    socket.on_fallback(Enqueue {
        worker: worker.clone(),
    });
    socket.on_disconnect(async move |socket: SocketRef<A>| {
        guard::closed_over_budget(&socket);
        worker.push_control(&socket, Job::Disconnect(None));
    });
    Ok(())
}

/// Connect handler: the connection is established; its events are handled from now on.
fn start_worker<A: Adapter>(socket: SocketRef<A>) {
    if !Worker::of(&socket).is_some_and(|worker| worker.start(&socket)) {
        return;
    }
    crate::telemetry::connection_accepted();
    tracing::info!(socket = %ConnTag::of(socket.id), transport = ?socket.transport_type(), "connected");
}

/// At shutdown: every local socket leaves its sessions (others are told), as its
/// disconnect would, and this returns once they all have (so that, with Redis, no
/// member is left present on a node that is gone, blocking its own reconnect).
/// socketioxide 0.18's `close()` drops its namespaces before closing the transports, so
/// disconnect handlers do not run then; this does their work.
pub async fn disconnect_all<A: Adapter>(io: &SocketIo<A>) {
    let mut done = Vec::new();
    for socket in io.sockets() {
        if let Some(worker) = Worker::of(&socket) {
            let (left, rx) = tokio::sync::oneshot::channel();
            worker.push_control(&socket, Job::Disconnect(Some(left)));
            done.push(rx);
        }
    }
    for rx in done {
        let _ = rx.await;
    }
}

/// After this node missed broadcasts: every local socket is sent its sessions' keys
/// and history again, in its queue's order.
pub async fn resync_all<A: Adapter>(io: &SocketIo<A>) {
    for socket in io.local().sockets() {
        if let Some(worker) = Worker::of(&socket) {
            worker.push_control(&socket, Job::Resync);
        }
    }
}

/// Hands an event to its socket's worker, synchronously and so in arrival order.
/// Events beyond the socket's budget are refused here, before they are decoded.
struct Enqueue<A: Adapter> {
    worker: Arc<Worker<A>>,
}

impl<A: Adapter> Clone for Enqueue<A> {
    fn clone(&self) -> Self {
        Enqueue {
            worker: self.worker.clone(),
        }
    }
}

/// Marker type for our [`MessageHandler`] implementation.
struct Enqueued;

impl<A: Adapter> MessageHandler<A, Enqueued> for Enqueue<A> {
    fn call(&self, s: Arc<Socket<A>>, mut data: Value, ack_id: Option<i64>) {
        let limits = self.worker.limits();
        if limits.is_cut_off() {
            return;
        }
        // Unknown events count too: they cost the server a read and a parse.
        let bytes = guard::value_len(&data);
        let admitted = limits
            .admit(bytes)
            .map(|()| Admitted::new(limits.clone(), bytes));
        let known = Event::from_message_parts(&s, &mut data, &ack_id)
            .ok()
            .and_then(|Event(name)| EventKind::from_name(&name));
        let Some(kind) = known else {
            return;
        };
        let admitted = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
                let socket = SocketRef::from(s);
                limits.refused(&socket, &refusal);
                if send_error(&socket, ack, kind, &refusal.into_app_error()) {
                    guard::cut_off(&socket);
                }
                return;
            }
        };
        let socket = SocketRef::from(s.clone());
        let full = |socket: &SocketRef<A>, ack| {
            let err = AppError::new(ErrorCode::RateLimited, "Too many events at once; slow down");
            if reply::<A, ()>(socket, ack, kind, Err(err)) {
                guard::cut_off(socket);
            }
        };
        // A full queue refuses the event before its payload is decoded.
        if self.worker.is_full() {
            let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
            return full(&socket, ack);
        }
        let event = Box::new(handlers::decode(kind, &s, &mut data, &ack_id));
        let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
        let job = Job::Event {
            kind,
            event,
            ack,
            admitted,
        };
        if let Err(Job::Event { ack, admitted, .. }) = self.worker.push_event(&socket, job) {
            drop(admitted);
            full(&socket, ack);
        }
    }
}

/// The socket is gone (or cut off): it leaves its sessions.
async fn finish<A: Adapter>(
    state: &AppState,
    socket: &SocketRef<A>,
    joined: &mut handlers::Memberships,
) {
    Box::pin(handlers::disconnect(state, socket, joined)).await;
    state.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::info!(socket = %ConnTag::of(socket.id), "disconnected");
}

/// Answers an event: the ack, and for a refused join also `session-error`. True when the
/// socket's outgoing buffer was full (a reader too slow for what it is sent).
pub(crate) fn reply<A: Adapter, T: Serialize>(
    socket: &SocketRef<A>,
    ack: AckSender<A>,
    kind: EventKind,
    result: Result<T, AppError>,
) -> bool {
    match result {
        Ok(body) => guard::buffer_full(&ack.send(&OkAck::new(body))),
        Err(err) => {
            tracing::info!(socket = %ConnTag::of(socket.id), event = kind.name(), error = err.error.as_str(), "refused");
            send_error(socket, ack, kind, &err)
        }
    }
}

/// The error half of [`reply`], without its log line (a flood of refusals is logged
/// once per streak by the caller). True when the outgoing buffer was full.
///
/// Only a refused `join-session` is also emitted as `session-error`, as the original
/// server did: the End2End Chat app (which sends no acks) treats every `session-error`
/// as fatal and leaves the room, and it sends events before its join completes. Every
/// other refusal is in the ack alone, and counted in `blindrelay_errors_total`.
fn send_error<A: Adapter>(
    socket: &SocketRef<A>,
    ack: AckSender<A>,
    kind: EventKind,
    err: &AppError,
) -> bool {
    let code = err.error.as_str();
    metrics::counter!(crate::telemetry::ERRORS_TOTAL, "event" => kind.name(), "code" => code)
        .increment(1);
    if kind == EventKind::JoinSession {
        metrics::counter!(crate::telemetry::JOIN_FAILURES_TOTAL, "code" => code).increment(1);
    }
    let acked = ack.send(&ErrorAck { ok: false, err });
    if kind != EventKind::JoinSession {
        return guard::buffer_full(&acked);
    }
    let emitted = socket.emit("session-error", err);
    guard::buffer_full(&acked) || guard::buffer_full(&emitted)
}
