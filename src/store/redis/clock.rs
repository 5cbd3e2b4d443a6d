//! Redis's clock as this node sees it, for the scripts' fences (see `lua/common.lua`).
//! A fence is a deadline in Redis's clock, so the node's clock may be off by any amount.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::{protocol::now_ms, redis_link::Link};

/// How far Redis's clock is ahead of this node's, in ms (negative: behind).
#[derive(Default)]
pub struct RedisClock {
    offset_ms: AtomicI64,
}

impl RedisClock {
    /// The fence for a script sent now that must run within `within`.
    pub fn fence(&self, within: std::time::Duration) -> String {
        let now = now_ms() as i64 + self.offset_ms.load(Ordering::Relaxed);
        (now + within.as_millis() as i64).to_string()
    }

    /// Measures the offset with `TIME`, taking the middle of the round trip.
    pub async fn sync(&self, conn: &Link) -> Result<(), redis::RedisError> {
        let before = now_ms() as i64;
        let mut conn = conn.clone();
        let time = redis::cmd("TIME");
        let (secs, micros): (i64, i64) = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            time.query_async(&mut conn),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::Io, "no answer to TIME within 2 s"))
        })??;
        let after = now_ms() as i64;
        let redis_ms = secs * 1000 + micros / 1000;
        self.offset_ms
            .store(redis_ms - (before + after) / 2, Ordering::Relaxed);
        Ok(())
    }
}
