//! Deletes sessions that have been empty and idle for `SESSION_TTL_SECS` (with Redis,
//! which expires their keys itself: drops them from the session index).
//!
//! Lookups already treat such sessions as gone (so the interval never extends a
//! lifetime); the reaper frees their memory.

use std::time::Duration;

use crate::state::AppState;

pub async fn run(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let reaped = state.store.reap().await;
        if reaped > 0 {
            metrics::counter!(crate::telemetry::SESSIONS_REAPED_TOTAL).increment(reaped as u64);
            tracing::info!(reaped, "reaped expired sessions");
        }
    }
}
