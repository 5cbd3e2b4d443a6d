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
    store::{MemoryStore, Store, StoreLimits},
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    /// Per-address abuse limits (see `limits`).
    pub guard: Arc<crate::limits::Guard>,
    pub started: Instant,
    /// Connected Socket.IO sockets.
    pub connections: AtomicUsize,
    /// Set at shutdown: `/ready` fails and new connections are refused.
    draining: AtomicBool,
    /// When the drain began (ms since the epoch), 0 before.
    drain_started_ms: AtomicU64,
    message_ids: AtomicU64,
    /// Makes generated message ids unique across restarts and nodes.
    id_prefix: String,
}

impl AppState {
    /// State with an in-memory store.
    pub fn new(config: Config) -> Self {
        let store = Store::Memory(MemoryStore::new(StoreLimits::from(&config)));
        Self::with_store(config, store)
    }

    pub fn with_store(config: Config, store: Store) -> Self {
        AppState(Arc::new(Inner {
            guard: Arc::new(crate::limits::Guard::new(&config.abuse)),
            config,
            store,
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            drain_started_ms: AtomicU64::new(0),
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
        self.drain_started_ms
            .store(crate::protocol::now_ms(), Ordering::Relaxed);
        self.draining.store(true, Ordering::Relaxed);
    }

    /// When the drain began, if it has.
    pub fn drain_started_ms(&self) -> Option<u64> {
        Some(self.drain_started_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
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
