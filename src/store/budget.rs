//! `HISTORY_TOTAL_MAX_BYTES`: a memory budget for the histories of all sessions.
//!
//! Every [`History`](super::History) the store appends to keeps a shared byte count in
//! step (and gives its bytes back when it is dropped with its session). When an append
//! pushes the count over the budget, the largest histories lose their oldest messages
//! first, down to 90 % of the budget, so that the scan over all sessions runs once per
//! tenth of the budget rather than on every message. Small rooms keep their history
//! while one huge room is what pays for the excess.

use std::{collections::BinaryHeap, sync::atomic::Ordering};

use super::MemoryStore;
use crate::protocol::SessionId;

impl MemoryStore {
    /// History bytes over all sessions.
    pub fn history_total_bytes(&self) -> usize {
        self.history_total.load(Ordering::Relaxed)
    }

    /// Trims the largest histories when the total is over budget; returns how many
    /// messages were dropped.
    pub fn enforce_history_budget(&self) -> usize {
        let budget = self.limits.history_total_max_bytes;
        if budget == 0 || self.history_total_bytes() <= budget {
            return 0;
        }
        let target = budget - budget / 10;
        // A snapshot of the sizes; each room is locked again, alone, to drop from it.
        let mut heap: BinaryHeap<(usize, SessionId)> = self
            .sessions
            .iter()
            .filter(|e| !e.value().history.is_empty())
            .map(|e| (e.value().history.bytes(), e.key().clone()))
            .collect();
        let mut dropped = 0;
        while self.history_total_bytes() > target {
            let Some((_, id)) = heap.pop() else { break };
            let Some(mut session) = self.sessions.get_mut(&id) else {
                continue;
            };
            // Down to the next largest (or the target), oldest first.
            let next = heap.peek().map_or(0, |(bytes, _)| *bytes);
            while session.history.bytes() > 0
                && (session.history.bytes() >= next || heap.is_empty())
                && self.history_total_bytes() > target
            {
                if !session.history.drop_oldest() {
                    break;
                }
                dropped += 1;
            }
            let left = session.history.bytes();
            drop(session);
            if left > 0 {
                heap.push((left, id));
            }
        }
        if dropped > 0 {
            metrics::counter!(crate::telemetry::HISTORY_EVICTED_TOTAL).increment(dropped as u64);
            tracing::info!(
                dropped,
                total = self.history_total_bytes(),
                budget,
                "history budget: dropped the oldest messages of the largest rooms"
            );
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        protocol::{ChatMode, UserId},
        secret::Secret,
        store::{JoinRequest, MessageDraft, StoreLimits},
    };

    fn store(budget: usize) -> MemoryStore {
        MemoryStore::new(StoreLimits {
            session_ttl: Duration::from_secs(60),
            unused_session_ttl: Duration::from_secs(60),
            max_sessions: 100,
            max_group_members: 10,
            history_max_messages: 1000,
            history_max_bytes: 1 << 20,
            history_total_max_bytes: budget,
            presence_grace: std::time::Duration::ZERO,
        })
    }

    type Sid = socketioxide::socket::Sid;

    fn room(s: &MemoryStore, name: &str, c: Sid) -> SessionId {
        let id = SessionId::parse(name).unwrap();
        s.join(JoinRequest {
            session: id.clone(),
            user: UserId::parse("u").unwrap(),
            display_name: None,
            public_key: None,
            is_creator: true,
            credential: Some(Secret::from("k")),
            chat_mode: Some(ChatMode::Group),
            resume: None,
            acked: false,
            conn: c,
        })
        .unwrap();
        id
    }

    fn send(s: &MemoryStore, id: &SessionId, c: Sid, n: usize, size: usize) {
        for i in 0..n {
            let body = serde_json::value::to_raw_value(&"x".repeat(size)).unwrap();
            let draft = MessageDraft {
                id: format!("m{i}").into(),
                to: None,
                encrypted: body.into(),
                attachments: Default::default(),
                kind: "text".into(),
                timestamp: 1,
            };
            s.append_message(id, c, None, |from, name| draft.into_message(from, name))
                .unwrap();
        }
    }

    #[test]
    fn the_largest_history_pays_for_the_excess_and_deleted_rooms_give_bytes_back() {
        let s = store(100_000);
        let (c1, c2) = (Sid::new(), Sid::new());
        let small = room(&s, "small", c1);
        let big = room(&s, "big", c2);
        send(&s, &small, c1, 5, 1000);
        let small_bytes = s
            .summaries()
            .iter()
            .find(|r| r.session_id == small)
            .unwrap()
            .history_bytes;
        send(&s, &big, c2, 120, 1000);
        assert!(
            s.history_total_bytes() <= 100_000,
            "{}",
            s.history_total_bytes()
        );
        let rows = s.summaries();
        let small_row = rows.iter().find(|r| r.session_id == small).unwrap();
        assert_eq!(small_row.messages, 5, "the small room keeps its history");
        assert_eq!(small_row.history_bytes, small_bytes);
        let big_row = rows.iter().find(|r| r.session_id == big).unwrap();
        assert!(big_row.messages < 120);
        assert_eq!(s.history_total_bytes(), s.stats().history_bytes);
        // Closing a room gives its bytes back.
        s.close(&big, c2).unwrap();
        assert_eq!(s.history_total_bytes(), small_bytes);
    }
}
