//! Each socket's events, handled one after the other in arrival order.
//!
//! socketioxide runs each async event handler in a task of its own, so two events of
//! one socket could be handled out of order (a `send-message` before the
//! `join-session` sent just before it). The Node server handles a socket's events in
//! order and clients rely on it. So a synchronous handler hands every event to the
//! socket's [`Worker`], which handles it at once, on the transport's own task, when
//! nothing of that socket is pending, and otherwise queues it behind what is.
//!
//! A handler that has to wait (Redis, the socket's byte pace) goes on in a task spawned
//! for it, which drains the queue and ends. So an idle socket holds no task, no channel
//! and no timer of ours (they cost it kilobytes), and an event handled at once costs no
//! wake-up of another task.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, atomic::Ordering},
    task::{Context, Poll, Waker},
    time::Instant,
};

use socketioxide::{
    adapter::Adapter,
    extract::{AckSender, SocketRef},
};
use tokio::task::AbortHandle;

use super::{guard, handlers};
use crate::{
    protocol::{AppError, ClientEvent, EventKind},
    state::AppState,
};

/// Events a socket may queue before it is refused with `RATE_LIMITED`.
pub const QUEUE_CAPACITY: usize = 256;

pub enum Job<A: Adapter> {
    /// A decoded event (or why it could not be decoded) and its acknowledgement. Boxed:
    /// a `Job` stays small in the queue.
    Event {
        kind: EventKind,
        event: Box<Result<ClientEvent, AppError>>,
        ack: AckSender<A>,
        /// Its size as received, in the socket's byte budget while this lives.
        admitted: Admitted,
    },
    /// Send the joined sessions' keys and history again (broadcasts were missed).
    Resync,
    /// The socket is gone: it leaves its sessions, then says so on the sender if any.
    Disconnect(Option<tokio::sync::oneshot::Sender<()>>),
}

/// An event's bytes admitted into its socket's budget ([`guard::SocketGuard::admit`]),
/// given back when the event is handled or dropped, whichever way that happens.
pub struct Admitted {
    limits: guard::SocketGuard,
    bytes: usize,
}

impl Admitted {
    pub fn new(limits: guard::SocketGuard, bytes: usize) -> Self {
        Admitted { limits, bytes }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.limits.release(self.bytes);
    }
}

/// What a drain carries from one job to the next: the sessions the socket joined.
#[derive(Default)]
struct Progress {
    joined: handlers::Memberships,
}

/// One socket's queue. Kept in the socket's extensions (see [`Worker::of`]).
pub struct Worker<A: Adapter> {
    state: AppState,
    limits: guard::SocketGuard,
    inner: Mutex<Inner<A>>,
}

struct Inner<A: Adapter> {
    jobs: VecDeque<Job<A>>,
    /// Here while nothing drains the queue; a drain takes it and gives it back.
    idle: Option<Progress>,
    /// The connect handler ran: jobs may be handled (they wait until then).
    started: bool,
    /// The socket left its sessions: later jobs are dropped.
    finished: bool,
    /// Set by the first join (see [`Worker::start`]): cancels the join timeout.
    joined_once: bool,
    join_timer: Option<AbortHandle>,
}

/// The extension that holds a socket's worker (`Arc` for socketioxide's `Clone` bound).
struct Slot<A: Adapter>(Arc<Worker<A>>);

impl<A: Adapter> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<A: Adapter> Worker<A> {
    /// Makes the socket's worker and keeps it in its extensions.
    pub fn install(
        socket: &SocketRef<A>,
        state: AppState,
        limits: guard::SocketGuard,
    ) -> Arc<Self> {
        let worker = Arc::new(Worker {
            state,
            limits,
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                idle: Some(Progress::default()),
                started: false,
                finished: false,
                joined_once: false,
                join_timer: None,
            }),
        });
        socket.extensions.insert(Slot(worker.clone()));
        worker
    }

    pub fn of(socket: &SocketRef<A>) -> Option<Arc<Self>> {
        socket.extensions.get::<Slot<A>>().map(|Slot(w)| w)
    }

    pub fn limits(&self) -> &guard::SocketGuard {
        &self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Inner<A>> {
        // A panic while the lock was held cannot leave the queue inconsistent: every
        // change under it is a single push, pop or flag.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection is established: queued events are handled from now on, the
    /// socket counts as connected (until its disconnect is handled), and it must join a
    /// session within `JOIN_TIMEOUT_SECS`. False when it disconnected before this ran
    /// (socketioxide may run the connect handler after the disconnect handler): it is
    /// then never counted.
    pub fn start(self: &Arc<Self>, socket: &SocketRef<A>) -> bool {
        let progress = {
            let mut inner = self.lock();
            if inner.finished {
                return false;
            }
            inner.started = true;
            // Counted under the lock, so its disconnect cannot be handled first.
            self.state.connections.fetch_add(1, Ordering::Relaxed);
            let (worker, socket) = (self.clone(), socket.clone());
            let timeout = self.state.config.abuse.join_timeout;
            let timer = tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                if !worker.lock().joined_once {
                    guard::join_timed_out(&socket);
                }
            });
            inner.join_timer = Some(timer.abort_handle());
            if inner.jobs.is_empty() {
                None
            } else {
                inner.idle.take()
            }
        };
        if let Some(progress) = progress {
            self.drain(socket, progress);
        }
        true
    }

    /// Whether a client event would be refused now (checked before it is decoded).
    pub fn is_full(&self) -> bool {
        self.lock().jobs.len() >= QUEUE_CAPACITY
    }

    /// Queues a client event; gives it back when the queue is full.
    pub fn push_event(self: &Arc<Self>, socket: &SocketRef<A>, job: Job<A>) -> Result<(), Job<A>> {
        let progress = {
            let mut inner = self.lock();
            if inner.finished {
                return Ok(()); // moot: dropped, its bytes given back
            }
            if inner.jobs.len() >= QUEUE_CAPACITY {
                return Err(job);
            }
            inner.jobs.push_back(job);
            inner.take_if_ready()
        };
        if let Some(progress) = progress {
            self.drain(socket, progress);
        }
        Ok(())
    }

    /// Queues a disconnect (never refused) or a resync (dropped when the queue is full:
    /// the socket is then too far behind for it to matter).
    pub fn push_control(self: &Arc<Self>, socket: &SocketRef<A>, job: Job<A>) {
        let progress = {
            let mut inner = self.lock();
            if inner.finished {
                return;
            }
            match job {
                Job::Resync if inner.jobs.len() >= QUEUE_CAPACITY => return,
                Job::Disconnect(_) if !inner.started => {
                    // Never connected, so never counted: nothing to leave. Dropping the
                    // queued events drops the socket references they hold.
                    inner.finished = true;
                    inner.jobs.clear();
                    return;
                }
                _ => {}
            }
            inner.jobs.push_back(job);
            inner.take_if_ready()
        };
        if let Some(progress) = progress {
            self.drain(socket, progress);
        }
    }

    /// Handles the queued jobs: as far as it can at once, on the caller's task, and the
    /// rest in a task of its own from the first one that has to wait.
    fn drain(self: &Arc<Self>, socket: &SocketRef<A>, progress: Progress) {
        let mut run = Box::pin(self.clone().run(socket.clone(), progress));
        // The noop waker is never woken: a pending `run` is polled again, with its
        // task's waker, as soon as it is spawned.
        if run.as_mut().poll(&mut Context::from_waker(Waker::noop())) == Poll::Pending {
            tokio::spawn(run);
        }
    }

    async fn run(self: Arc<Self>, socket: SocketRef<A>, mut progress: Progress) {
        loop {
            let job = {
                let mut inner = self.lock();
                match inner.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        inner.idle = Some(progress);
                        return;
                    }
                }
            };
            if self.handle(&socket, &mut progress, job).await == Flow::Finished {
                let mut inner = self.lock();
                inner.finished = true;
                inner.jobs.clear();
                if let Some(timer) = inner.join_timer.take() {
                    timer.abort();
                }
                return;
            }
        }
    }

    async fn handle(&self, socket: &SocketRef<A>, progress: &mut Progress, job: Job<A>) -> Flow {
        let state = &self.state;
        match job {
            // Events read before the transport closed are moot once it has, but for a
            // goodbye: the apps send leave-session and close at once, and the others
            // must hear of it now, not after the presence grace.
            Job::Event { kind, .. }
                if self.limits.is_cut_off() || (!socket.connected() && !kind.is_goodbye()) => {}
            Job::Event {
                kind,
                event,
                ack,
                admitted,
            } => {
                // Beyond its byte rate a socket's events wait here: its later events
                // queue behind (up to SOCKET_QUEUED_BYTES), others are not slowed.
                self.limits.pace(admitted.bytes).await;
                let started = Instant::now();
                let joined = &mut progress.joined;
                let result = match *event {
                    Ok(ClientEvent::JoinSession(p)) => {
                        let client = socket.extensions.get::<guard::Client>();
                        match guard::JoinGate::check(state, client.as_ref(), socket, &p) {
                            Err(err) => Err(err),
                            Ok(gate) => {
                                let event = ClientEvent::JoinSession(p);
                                let mut result =
                                    Box::pin(handlers::handle(state, socket, joined, event)).await;
                                gate.done(state, socket, &mut result).await;
                                if result.is_ok() {
                                    self.joined();
                                }
                                result
                            }
                        }
                    }
                    // Boxed: the handlers' state lives only while one runs.
                    Ok(event) => Box::pin(handlers::handle(state, socket, joined, event)).await,
                    Err(err) => Err(err),
                };
                crate::telemetry::event_handled(kind, started.elapsed().as_secs_f64());
                drop(admitted);
                let full = match result {
                    Ok(body) => super::reply(socket, ack, kind, Ok(body)),
                    Err(err) => super::reply::<A, ()>(socket, ack, kind, Err(err)),
                };
                if full {
                    guard::cut_off(socket);
                }
            }
            Job::Resync => handlers::resync(state, socket, &progress.joined).await,
            Job::Disconnect(done) => {
                super::finish(state, socket, &mut progress.joined).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
                return Flow::Finished;
            }
        }
        // A reader too slow for what it is sent leaves its sessions now; its transport
        // is closed as soon as it can be (see `guard::cut_off`).
        if self.limits.is_cut_off() {
            super::finish(state, socket, &mut progress.joined).await;
            return Flow::Finished;
        }
        Flow::Going
    }

    /// A join succeeded: the join timeout no longer applies.
    fn joined(&self) {
        let mut inner = self.lock();
        inner.joined_once = true;
        if let Some(timer) = inner.join_timer.take() {
            timer.abort();
        }
    }
}

impl<A: Adapter> Inner<A> {
    /// The drain's progress, when the queue may be drained and nothing drains it.
    fn take_if_ready(&mut self) -> Option<Progress> {
        if self.started { self.idle.take() } else { None }
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Going,
    Finished,
}
