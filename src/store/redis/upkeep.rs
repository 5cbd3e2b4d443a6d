//! The deployment as a whole: counts, the session summaries of `GET /sessions`, the
//! reaper, and the shedding of the largest histories on a cluster.

use super::*;

/// Rows `GET /sessions` lists per mode.
const SUMMARY_LIMIT: usize = 1000;

impl RedisStore {
    /// Sessions not yet expired, read from the global index (a cluster's scripts
    /// cannot).
    pub(super) async fn session_count(&self) -> Result<usize, AppError> {
        let now = format!("({}", now_ms());
        let mut pipe = redis::pipe();
        for mode in [ChatMode::Group, ChatMode::Private, ChatMode::Password] {
            pipe.zcount(
                format!("{}idx:{}", self.global, mode.as_str()),
                &now,
                "+inf",
            );
        }
        let counts: Vec<usize> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|_| AppError::unavailable())?;
        Ok(counts.into_iter().sum())
    }

    /// Counts, and with `prune` drops expired sessions from the index.
    async fn counts(&self, prune: bool) -> Result<(StoreStats, usize), AppError> {
        let now = now_ms().to_string();
        let prune: &[u8] = if prune { b"1" } else { b"0" };
        let reply = self
            .invoke(
                &self.scripts.stats,
                Slot::Global,
                &[now.as_bytes(), prune],
                "",
            )
            .await?;
        let mut r = Reply::new(reply)?;
        if r.status() != "OK" {
            return Err(refusal(r.status(), &self.limits));
        }
        let (group, private, password, active, pruned) =
            (r.int()?, r.int()?, r.int()?, r.int()?, r.int()?);
        let history_bytes = r.int()?;
        let stats = StoreStats {
            sessions: group + private + password,
            active,
            group,
            private,
            password,
            history_bytes,
        };
        Ok((stats, pruned))
    }

    pub async fn stats(&self) -> Result<StoreStats, AppError> {
        Ok(self.counts(false).await?.0)
    }

    /// Redis expires sessions itself; this prunes them from the index and counts them.
    pub async fn reap(&self) -> usize {
        let Ok((stats, pruned)) = self.counts(true).await else {
            return 0;
        };
        if let Err(e) = self.shed(stats.history_bytes).await {
            tracing::warn!(error = ?e.error, "cannot shed history over HISTORY_TOTAL_MAX_BYTES");
        }
        pruned
    }

    pub async fn summaries(&self) -> Result<Vec<SessionSummary>, AppError> {
        let now = now_ms();
        let (now_s, limit) = (now.to_string(), SUMMARY_LIMIT.to_string());
        let args: [&[u8]; 2] = [now_s.as_bytes(), limit.as_bytes()];
        let mut listed = Reply::new(
            self.invoke(&self.scripts.summaries, Slot::Global, &args, "")
                .await?,
        )?;
        let mut out = Vec::new();
        while !listed.is_empty() {
            let session_id =
                SessionId::parse(&listed.string()?).map_err(|_| AppError::unavailable())?;
            let chat_mode = listed.mode()?;
            let mut r = Reply::new(
                self.run(&self.scripts.summary, session_id.as_str(), &[])
                    .await?,
            )?;
            if r.status() != "OK" {
                continue; // expired since it was listed
            }
            let reserved = r.string()? == "r";
            let (members, public_keys, messages) = (r.int()?, r.int()?, r.int()?);
            let history_bytes = r.string()?.parse().unwrap_or_default();
            let last: u64 = r.string()?.parse().unwrap_or_default();
            out.push(SessionSummary {
                session_id,
                chat_mode,
                reserved,
                members,
                public_keys,
                messages,
                history_bytes,
                idle_secs: now.saturating_sub(last) / 1000,
            });
        }
        Ok(out)
    }

    /// On a cluster, keeps `HISTORY_TOTAL_MAX_BYTES` (the scripts cannot read the
    /// total there): while the total is over the budget, the largest history loses
    /// its oldest messages down to the next largest, until 90 % of the budget, as
    /// `lua/append.lua` does on one server. Returns the messages dropped.
    async fn shed(&self, mut total: usize) -> Result<u64, AppError> {
        let budget = self.limits.history_total_max_bytes;
        if !self.conn.is_cluster() || budget == 0 || total <= budget {
            return Ok(0);
        }
        let target = budget - budget / 10;
        let mut evicted = 0;
        // Bounded: each round empties the largest history down to the next one.
        for _ in 0..1000 {
            if total <= target {
                break;
            }
            let top: Vec<(String, usize)> = redis::cmd("ZREVRANGE")
                .arg(format!("{}hb:size", self.global))
                .arg(0)
                .arg(1)
                .arg("WITHSCORES")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|_| AppError::unavailable())?;
            let Some((sid, size)) = top.first().cloned() else {
                break;
            };
            let next = top.get(1).map_or(0, |(_, s)| *s);
            let keep = next.max(size.saturating_sub(total - target));
            let keep_s = keep.to_string();
            let mut r = self
                .run_ok(&self.scripts.shed, &sid, &[keep_s.as_bytes()])
                .await?;
            let (after, dropped) = (r.int()?, r.int()?);
            total = total.saturating_sub(size.saturating_sub(after));
            evicted += dropped as u64;
            if size == after {
                break; // nothing more to drop there
            }
        }
        if evicted > 0 {
            metrics::counter!(crate::telemetry::HISTORY_EVICTED_TOTAL).increment(evicted);
        }
        Ok(evicted)
    }
}
