//! What the server's connection layer tells Engine.IO about the connection under a
//! session, and the budgets Engine.IO applies with it. (blindrelay's patch; see
//! `PATCH.md`.)
//!
//! The server inserts a [`ConnectionWatch`] into each request's extensions; a session
//! takes the one of the request that made it, and a WebSocket upgrade the one of its
//! own connection. Without one, a session behaves as upstream's.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

/// A connection's byte counter and the limits that go with it.
#[derive(Clone, Debug)]
pub struct ConnectionWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Bytes read from and written to the connection so far.
    moved: AtomicU64,
    limits: WatchLimits,
    /// Why Engine.IO closed the connection for a budget, if it did.
    closed_for: OnceLock<&'static str>,
}

/// The limits a [`ConnectionWatch`] carries.
#[derive(Clone, Copy, Debug)]
pub struct WatchLimits {
    /// A connection that moves at least this many bytes a second (either way) is alive
    /// even while its pong is late: the pong waits behind a long upload, or the ping
    /// behind a long download. 0: only pongs count, as upstream.
    pub min_bytes_per_sec: u64,
    /// Bytes of packets waiting to be written to the client; beyond it new packets are
    /// refused as by a full buffer. `usize::MAX`: no limit but the packet count.
    pub max_queued_bytes: usize,
    /// WebSocket ping frames and Engine.IO pings a client may send per [`PING_WINDOW`];
    /// beyond it the connection is closed. Browsers send no WebSocket pings, and an
    /// EIO4 client only pongs.
    pub max_ws_pings: u32,
}

/// The window `max_ws_pings` counts over.
pub const PING_WINDOW: Duration = Duration::from_secs(10);

impl ConnectionWatch {
    /// A new connection's watch.
    pub fn new(limits: WatchLimits) -> Self {
        ConnectionWatch {
            inner: Arc::new(Inner {
                moved: AtomicU64::new(0),
                limits,
                closed_for: OnceLock::new(),
            }),
        }
    }

    /// Counts `n` bytes read from or written to the connection.
    #[inline]
    pub fn moved(&self, n: usize) {
        self.inner.moved.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes moved so far.
    pub fn total(&self) -> u64 {
        self.inner.moved.load(Ordering::Relaxed)
    }

    /// The limits.
    pub fn limits(&self) -> WatchLimits {
        self.inner.limits
    }

    /// Records why Engine.IO closed the connection (the first reason wins).
    pub(crate) fn close_for(&self, reason: &'static str) {
        let _ = self.inner.closed_for.set(reason);
    }

    /// Why Engine.IO closed the connection for a budget, if it did.
    pub fn closed_for(&self) -> Option<&'static str> {
        self.inner.closed_for.get().copied()
    }

    /// Whether the connection moved at least the floor rate since `since` (a mark
    /// taken `elapsed` ago), and moved at all.
    pub(crate) fn kept_pace(&self, since: u64, elapsed: Duration) -> bool {
        let floor = self.inner.limits.min_bytes_per_sec;
        if floor == 0 {
            return false;
        }
        let moved = self.total().saturating_sub(since);
        moved > 0 && moved as f64 >= floor as f64 * elapsed.as_secs_f64()
    }
}
