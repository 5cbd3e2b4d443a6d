//! State shared by the HTTP routes and the socket handlers.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use crate::{
    config::Config,
    store::{SessionStore, StoreLimits},
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: SessionStore,
    /// Per-address abuse limits (see `limits`).
    pub guard: crate::limits::Guard,
    pub started: Instant,
    /// Connected Socket.IO sockets.
    pub connections: AtomicUsize,
    /// Set at shutdown: `/ready` fails and new connections are refused.
    draining: AtomicBool,
    message_ids: AtomicU64,
    /// Makes generated message ids unique across restarts and nodes.
    id_prefix: String,
}

impl AppState {
    pub fn new(config: Config) -> Self {
        let store = SessionStore::new(StoreLimits {
            session_ttl: config.session_ttl,
            max_sessions: config.max_sessions,
            max_group_members: config.max_group_members,
            history_max_messages: config.history_max_messages,
            history_max_bytes: config.history_max_bytes,
            history_total_max_bytes: config.abuse.history_total_max_bytes,
        });
        AppState(Arc::new(Inner {
            guard: crate::limits::Guard::new(&config.abuse),
            config,
            store,
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            message_ids: AtomicU64::new(0),
            id_prefix: format!("{:08x}", crate::logging::random_u64() as u32),
        }))
    }
}

impl Inner {
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// An id for a message sent without `clientMessageId`.
    pub fn next_message_id(&self) -> Arc<str> {
        let n = self.message_ids.fetch_add(1, Ordering::Relaxed);
        format!("msg-{}-{}{n:x}", crate::protocol::now_ms(), self.id_prefix).into()
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
