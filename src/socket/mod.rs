//! Socket.IO connections.
//!
//! socketioxide runs each event handler in its own task, so two events of one socket
//! could be handled out of order (a `send-message` before the `join-session` sent just
//! before it). The Node server handles a socket's events in order and clients rely on
//! it. So each socket gets a queue: a synchronous [`MessageHandler`] pushes every event
//! onto it in arrival order, and one task per socket handles them one after the other,
//! its disconnect last.
//!
//! The queue and the handlers are installed by a connect *middleware*, which runs
//! before socketioxide tells the client it is connected (a connect handler runs after,
//! and an event sent at once would find no handler). The worker starts in the connect
//! handler, once the connection is established; events wait in the queue until then.

mod guard;
mod handlers;
mod replay;

pub use handlers::announce_left;
mod rooms;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use serde::Serialize;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef},
    handler::{FromMessageParts, MessageHandler, Value},
    socket::Socket,
};
use tokio::sync::mpsc;

use crate::{
    logging::ConnTag,
    protocol::{AppError, ErrorAck, ErrorCode, OkAck},
    state::AppState,
};

/// Events a socket may queue before it is refused with `RATE_LIMITED`.
const QUEUE_CAPACITY: usize = 256;

/// The client events we handle; any other name is ignored, as the original does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    JoinSession,
    SavePublicKey,
    GetPublicKeys,
    SendMessage,
    SetSessionKey,
    Typing,
    StoppedTyping,
    FileDownloaded,
    LeaveSession,
    CloseSession,
    RemoveMember,
    ResetLink,
    MessageDelivered,
}

impl EventKind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [EventKind; 13] = [
        Self::JoinSession,
        Self::SavePublicKey,
        Self::GetPublicKeys,
        Self::SendMessage,
        Self::SetSessionKey,
        Self::Typing,
        Self::StoppedTyping,
        Self::FileDownloaded,
        Self::LeaveSession,
        Self::CloseSession,
        Self::RemoveMember,
        Self::ResetLink,
        Self::MessageDelivered,
    ];

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "join-session" => Self::JoinSession,
            "save-public-key" => Self::SavePublicKey,
            "get-public-keys" => Self::GetPublicKeys,
            "send-message" => Self::SendMessage,
            "set-session-key" => Self::SetSessionKey,
            "typing" => Self::Typing,
            "stopped-typing" => Self::StoppedTyping,
            "file-downloaded" => Self::FileDownloaded,
            "leave-session" => Self::LeaveSession,
            "close-session" => Self::CloseSession,
            "remove-member" => Self::RemoveMember,
            "reset-link" => Self::ResetLink,
            "message-delivered" => Self::MessageDelivered,
            _ => return None,
        })
    }

    /// `leave-session` and `close-session`: still handled when the transport closed
    /// right after them.
    pub fn is_goodbye(self) -> bool {
        matches!(self, Self::LeaveSession | Self::CloseSession)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::JoinSession => "join-session",
            Self::SavePublicKey => "save-public-key",
            Self::GetPublicKeys => "get-public-keys",
            Self::SendMessage => "send-message",
            Self::SetSessionKey => "set-session-key",
            Self::Typing => "typing",
            Self::StoppedTyping => "stopped-typing",
            Self::FileDownloaded => "file-downloaded",
            Self::LeaveSession => "leave-session",
            Self::CloseSession => "close-session",
            Self::RemoveMember => "remove-member",
            Self::ResetLink => "reset-link",
            Self::MessageDelivered => "message-delivered",
        }
    }
}

enum Job<A: Adapter> {
    /// A decoded event (or why it could not be decoded) and its acknowledgement. Boxed:
    /// the channel allocates its slots up front, per socket, so a `Job` stays small.
    Event {
        kind: EventKind,
        event: Box<Result<handlers::ClientEvent, AppError>>,
        ack: AckSender<A>,
        /// Its size as received, admitted into the socket's byte budget.
        bytes: usize,
    },
    /// Send the joined sessions' keys and history again (broadcasts were missed).
    Resync,
    /// The socket is gone: it leaves its sessions, then says so on the sender if any.
    Disconnect(Option<tokio::sync::oneshot::Sender<()>>),
}

/// The sending half of a socket's queue, kept in the socket's extensions.
struct Queue<A: Adapter>(mpsc::Sender<Job<A>>);

impl<A: Adapter> Clone for Queue<A> {
    fn clone(&self) -> Self {
        Queue(self.0.clone())
    }
}

/// The receiving half, handed from the middleware to the connect handler.
struct PendingWorker<A: Adapter>(Arc<std::sync::Mutex<Option<mpsc::Receiver<Job<A>>>>>);

impl<A: Adapter> Clone for PendingWorker<A> {
    fn clone(&self) -> Self {
        PendingWorker(self.0.clone())
    }
}

/// Registers the default namespace. With the Redis adapter, the returned future
/// subscribes to the cluster's channels.
pub fn register<A>(io: &SocketIo<A>, state: AppState) -> A::InitRes
where
    A: Adapter + socketioxide_core::adapter::DefinedAdapter,
{
    use socketioxide::handler::ConnectHandler;
    let (admit_state, queue_state) = (state.clone(), state.clone());
    let on_connect = async move |socket: SocketRef<A>| start_worker(socket, state);
    let install = async move |socket: SocketRef<A>| install_queue(socket, queue_state);
    let admit = async move |socket: SocketRef<A>| guard::admit(socket, admit_state);
    // The last middleware added runs first: the limits before anything is allocated.
    io.ns("/", on_connect.with(install).with(admit))
}

/// Connect middleware: the queue and handlers, in place before the client may send.
fn install_queue<A: Adapter>(
    socket: SocketRef<A>,
    state: AppState,
) -> Result<(), std::convert::Infallible> {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    socket.extensions.insert(Queue::<A>(tx));
    let pending = PendingWorker(Arc::new(std::sync::Mutex::new(Some(rx))));
    socket.extensions.insert(pending);
    let ip = socket.extensions.get::<guard::Client>().map(|c| c.ip);
    let shared = ip.map(|ip| (state.guard.inflight.clone(), ip));
    let limits = guard::SocketGuard::new(&state.config.abuse, shared);
    socket.extensions.insert(limits.clone());
    socket.on_fallback(Enqueue { limits });
    socket.on_disconnect(async |socket: SocketRef<A>| {
        if let Some(Queue(tx)) = socket.extensions.get::<Queue<A>>() {
            // Waits for room in a full queue: the disconnect must be handled.
            let _ = tx.send(Job::Disconnect(None)).await;
        }
    });
    Ok(())
}

/// Connect handler: the connection is established; its events are handled from now on.
fn start_worker<A: Adapter>(socket: SocketRef<A>, state: AppState) {
    let pending = socket.extensions.remove::<PendingWorker<A>>();
    let Some(rx) = pending.and_then(|PendingWorker(slot)| slot.lock().ok()?.take()) else {
        return;
    };
    state.connections.fetch_add(1, Ordering::Relaxed);
    crate::telemetry::connection_accepted();
    tracing::info!(socket = %ConnTag::of(socket.id), transport = ?socket.transport_type(), "connected");
    tokio::spawn(run_queue(state, socket, rx));
}

/// At shutdown: every local socket leaves its sessions (others are told), as its
/// disconnect would, and this returns once they all have (so that, with Redis, no
/// member is left present on a node that is gone, blocking its own reconnect).
/// socketioxide 0.18's `close()` drops its namespaces before closing the transports, so
/// disconnect handlers do not run then; this does their work.
pub async fn disconnect_all<A: Adapter>(io: &SocketIo<A>) {
    let mut done = Vec::new();
    for socket in io.sockets() {
        if let Some(Queue(tx)) = socket.extensions.get::<Queue<A>>() {
            let (left, rx) = tokio::sync::oneshot::channel();
            if tx.send(Job::Disconnect(Some(left))).await.is_ok() {
                done.push(rx);
            }
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
        if let Some(Queue(tx)) = socket.extensions.get::<Queue<A>>() {
            let _ = tx.try_send(Job::Resync);
        }
    }
}

/// Pushes an event onto its socket's queue, synchronously and so in arrival order.
/// Events beyond the socket's budget are refused here, before they are decoded.
#[derive(Clone)]
struct Enqueue {
    limits: guard::SocketGuard,
}

/// Marker type for our [`MessageHandler`] implementation.
struct Enqueued;

impl<A: Adapter> MessageHandler<A, Enqueued> for Enqueue {
    fn call(&self, s: Arc<Socket<A>>, mut data: Value, ack_id: Option<i64>) {
        if self.limits.is_cut_off() {
            return;
        }
        // Unknown events count too: they cost the server a read and a parse.
        let bytes = guard::value_len(&data);
        let over_budget = self.limits.admit(bytes).err();
        let known = Event::from_message_parts(&s, &mut data, &ack_id)
            .ok()
            .and_then(|Event(name)| EventKind::from_name(&name));
        let Some(kind) = known else {
            if over_budget.is_none() {
                self.limits.release(bytes);
            }
            return;
        };
        if let Some(refusal) = over_budget {
            let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
            let socket = SocketRef::from(s);
            self.limits.refused(&socket, &refusal);
            if send_error(&socket, ack, kind, &refusal.into_app_error()) {
                guard::cut_off(&socket);
            }
            return;
        }
        let Some(Queue(tx)) = s.extensions.get::<Queue<A>>() else {
            self.limits.release(bytes);
            return;
        };
        let full = |s: Arc<Socket<A>>, ack| {
            self.limits.release(bytes);
            let err = AppError::new(ErrorCode::RateLimited, "Too many events at once; slow down");
            let socket = SocketRef::from(s);
            if reply::<A, ()>(&socket, ack, kind, Err(err)) {
                guard::cut_off(&socket);
            }
        };
        // A full queue refuses the event before its payload is decoded.
        if tx.capacity() == 0 {
            let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
            return full(s, ack);
        }
        let event = Box::new(handlers::decode(kind, &s, &mut data, &ack_id));
        let Ok(ack) = AckSender::from_message_parts(&s, &mut data, &ack_id);
        match tx.try_send(Job::Event {
            kind,
            event,
            ack,
            bytes,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Job::Event { ack, .. })) => full(s, ack),
            Err(_) => self.limits.release(bytes),
        }
    }
}

async fn run_queue<A: Adapter>(
    state: AppState,
    socket: SocketRef<A>,
    mut rx: mpsc::Receiver<Job<A>>,
) {
    let mut joined = handlers::Memberships::default();
    let limits = socket.extensions.get::<guard::SocketGuard>();
    let client = socket.extensions.get::<guard::Client>();
    let cut_off = || limits.as_ref().is_some_and(guard::SocketGuard::is_cut_off);
    let release = |bytes| {
        if let Some(limits) = &limits {
            limits.release(bytes);
        }
    };
    // A socket must join a session within JOIN_TIMEOUT_SECS (once is enough).
    let mut ever_joined = false;
    let join_deadline = tokio::time::sleep(state.config.abuse.join_timeout);
    tokio::pin!(join_deadline);
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
            () = &mut join_deadline, if !ever_joined => {
                ever_joined = true;
                guard::join_timed_out(&socket);
                continue;
            }
        };
        match job {
            // Events read before the transport closed are moot once it has, but for a
            // goodbye: the apps send leave-session and close at once, and the others
            // must hear of it now, not after the presence grace.
            Job::Event { bytes, kind, .. }
                if cut_off() || (!socket.connected() && !kind.is_goodbye()) =>
            {
                release(bytes);
            }
            Job::Event {
                kind,
                event,
                ack,
                bytes,
            } => {
                // Beyond its byte rate a socket's events wait here: its later events
                // queue behind (up to SOCKET_QUEUED_BYTES), others are not slowed.
                if let Some(limits) = &limits {
                    limits.pace(bytes).await;
                }
                let started = Instant::now();
                let result = match *event {
                    Ok(handlers::ClientEvent::JoinSession(p)) => {
                        let gated = guard::JoinGate::check(&state, client.as_ref(), &socket, &p);
                        match gated {
                            Err(err) => Err(err),
                            Ok(gate) => {
                                let event = handlers::ClientEvent::JoinSession(p);
                                let mut result =
                                    Box::pin(handlers::handle(&state, &socket, &mut joined, event))
                                        .await;
                                gate.done(&state, &socket, &mut result).await;
                                ever_joined |= result.is_ok();
                                result
                            }
                        }
                    }
                    // Boxed so the idle task keeps none of the handlers' state.
                    Ok(event) => {
                        Box::pin(handlers::handle(&state, &socket, &mut joined, event)).await
                    }
                    Err(err) => Err(err),
                };
                crate::telemetry::event_handled(kind, started.elapsed().as_secs_f64());
                release(bytes);
                let full = match result {
                    Ok(body) => reply(&socket, ack, kind, Ok(body)),
                    Err(err) => reply::<A, ()>(&socket, ack, kind, Err(err)),
                };
                if full {
                    guard::cut_off(&socket);
                }
            }
            Job::Resync => handlers::resync(&state, &socket, &joined).await,
            Job::Disconnect(done) => {
                finish(&state, &socket, &mut joined).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                break;
            }
        }
        // A reader too slow for what it is sent leaves its sessions now; its transport
        // is closed as soon as it can be (see `guard::cut_off`).
        if cut_off() {
            finish(&state, &socket, &mut joined).await;
            break;
        }
    }
    socket.extensions.remove::<Queue<A>>();
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
