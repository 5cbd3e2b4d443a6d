//! Counters of what every connection receives (groupfill: the bytes each join costs).
//! Off unless [`set_counting`] turned them on; [`crate::client::Conn::recv`] feeds them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::timeout;

/// While set, every text frame received by any connection is counted.
static COUNT_RX: AtomicBool = AtomicBool::new(false);
static RX_BYTES: AtomicU64 = AtomicU64::new(0);
static RX_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Of which `public-keys-updated` events.
static RX_KEYS_BYTES: AtomicU64 = AtomicU64::new(0);
static RX_KEYS_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Woken at every public-keys-updated counted.
static KEYS_NOTIFY: Notify = Notify::const_new();

/// Counts every text frame received from now on (`true`), or no more.
pub fn set_counting(on: bool) {
    COUNT_RX.store(on, Ordering::Relaxed);
}

/// One text frame received.
pub(crate) fn count(t: &str) {
    if !COUNT_RX.load(Ordering::Relaxed) {
        return;
    }
    let n = t.len() as u64;
    RX_BYTES.fetch_add(n, Ordering::Relaxed);
    RX_FRAMES.fetch_add(1, Ordering::Relaxed);
    if t.starts_with("42[\"public-keys-updated\"") {
        RX_KEYS_BYTES.fetch_add(n, Ordering::Relaxed);
        RX_KEYS_FRAMES.fetch_add(1, Ordering::Relaxed);
        KEYS_NOTIFY.notify_waiters();
    }
}

/// Received bytes and frames (all, then public-keys-updated only) so far.
pub fn counts() -> [u64; 4] {
    [
        RX_BYTES.load(Ordering::Relaxed),
        RX_FRAMES.load(Ordering::Relaxed),
        RX_KEYS_BYTES.load(Ordering::Relaxed),
        RX_KEYS_FRAMES.load(Ordering::Relaxed),
    ]
}

/// Bytes counted so far.
pub fn bytes() -> u64 {
    RX_BYTES.load(Ordering::Relaxed)
}

/// public-keys-updated frames counted so far.
pub fn keys_frames() -> u64 {
    RX_KEYS_FRAMES.load(Ordering::Relaxed)
}

/// Waits until `target` public-keys-updated frames have been counted, `limit` at most.
pub async fn await_keys_frames(target: u64, limit: Duration) -> bool {
    timeout(limit, async {
        loop {
            let woken = KEYS_NOTIFY.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if RX_KEYS_FRAMES.load(Ordering::Relaxed) >= target {
                return;
            }
            woken.await;
        }
    })
    .await
    .is_ok()
}
