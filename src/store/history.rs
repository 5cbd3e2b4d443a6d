//! A session's bounded message history.
//!
//! A message is kept once per (id, sender, recipient): clients of private rooms send one
//! copy per recipient under the same id, each encrypted for that recipient, and every
//! recipient must find its own copy on rejoin. A retry of a stored triple is a duplicate.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::protocol::{Message, Recipient, UserId};

/// Bytes counted per message on top of its ciphertext: ids, type, bookkeeping.
pub(super) const MESSAGE_OVERHEAD: usize = 128;

/// What appending a message did.
#[derive(Debug)]
pub enum Appended {
    /// Stored. `first_of_id` is false when another recipient's copy of the same id
    /// from the same sender was stored before (the sender is confirmed once per id).
    Stored {
        message: Arc<Message>,
        first_of_id: bool,
    },
    /// This (id, sender, recipient) is already stored: neither store nor relay again.
    Duplicate { timestamp: u64 },
}

/// A message's id and sender; the copies stored under it differ by recipient.
type IdKey = (Arc<str>, UserId);
/// The recipients stored under one [`IdKey`], with their timestamps.
type Copies = Vec<(Option<Recipient>, u64)>;

#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<Arc<Message>>,
    bytes: usize,
    index: HashMap<IdKey, Copies>,
    /// The store's count of history bytes over all sessions (`HISTORY_TOTAL_MAX_BYTES`),
    /// kept in step with `bytes`, down to zero when the history is dropped.
    total: Option<Arc<AtomicUsize>>,
}

impl Drop for History {
    fn drop(&mut self) {
        if let Some(total) = &self.total {
            total.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

/// The size a message counts for against `HISTORY_MAX_BYTES`.
pub fn message_cost(m: &Message) -> usize {
    m.encrypted.get().len()
        + m.attachments.len_bytes()
        + m.id.len()
        + m.kind.len()
        + m.from.as_str().len()
        + MESSAGE_OVERHEAD
}

impl History {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Counts this history's bytes in `total` from now on (idempotent).
    pub fn track(&mut self, total: &Arc<AtomicUsize>) {
        if self.total.is_none() {
            total.fetch_add(self.bytes, Ordering::Relaxed);
            self.total = Some(total.clone());
        }
    }

    /// Drops the oldest message; false when there was none.
    pub fn drop_oldest(&mut self) -> bool {
        match self.entries.pop_front() {
            Some(old) => {
                self.forget(&old);
                true
            }
            None => false,
        }
    }

    /// Appends `message` unless its triple is stored, then drops the oldest entries
    /// until both bounds hold. The caller has checked that one message fits `max_bytes`.
    pub fn append(&mut self, message: Message, max_messages: usize, max_bytes: usize) -> Appended {
        let key = (message.id.clone(), message.from.clone());
        let copies = self.index.entry(key).or_default();
        if let Some((_, ts)) = copies.iter().find(|(r, _)| *r == message.to) {
            return Appended::Duplicate { timestamp: *ts };
        }
        let first_of_id = copies.is_empty();
        copies.push((message.to.clone(), message.timestamp));
        let message = Arc::new(message);
        let cost = message_cost(&message);
        self.bytes += cost;
        if let Some(total) = &self.total {
            total.fetch_add(cost, Ordering::Relaxed);
        }
        self.entries.push_back(message.clone());
        while self.entries.len() > max_messages || self.bytes > max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.forget(&old);
        }
        Appended::Stored {
            message,
            first_of_id,
        }
    }

    fn forget(&mut self, old: &Message) {
        let cost = message_cost(old);
        self.bytes -= cost;
        if let Some(total) = &self.total {
            total.fetch_sub(cost, Ordering::Relaxed);
        }
        let key = (old.id.clone(), old.from.clone());
        if let Some(copies) = self.index.get_mut(&key) {
            copies.retain(|(r, _)| *r != old.to);
            if copies.is_empty() {
                self.index.remove(&key);
            }
        }
    }

    /// Whether `reader` received message `id` of `from`: a copy of it addressed to
    /// `reader`, or to everyone (see [`delivered_to`]). What a delivery receipt must name
    /// (`message-delivered`): one lookup in the dedup index per id.
    pub fn received(&self, id: &str, from: &UserId, reader: &UserId) -> bool {
        self.index
            .get(&(Arc::from(id), from.clone()))
            .is_some_and(|copies| copies.iter().any(|(to, _)| delivered_to(to, from, reader)))
    }

    /// Every message, oldest first.
    pub fn messages(&self) -> impl Iterator<Item = &Arc<Message>> {
        self.entries.iter()
    }

    /// The messages `user` may read: addressed to it, to everyone, or sent by it.
    pub fn visible_to(&self, user: &UserId) -> Vec<Arc<Message>> {
        self.entries
            .iter()
            .filter(|m| match &m.to {
                None | Some(Recipient::All) => true,
                Some(Recipient::User(to)) => to == user || m.from == *user,
            })
            .cloned()
            .collect()
    }
}

/// Whether a copy from `from` addressed to `to` was relayed to `reader` as a recipient:
/// to everyone (no `to`, or `all`) reaches every member but its sender; to a userId,
/// that member only. The rule a receipt is checked against, here and in Redis
/// (`lua/receipt.lua`).
pub fn delivered_to(to: &Option<Recipient>, from: &UserId, reader: &UserId) -> bool {
    match to {
        None | Some(Recipient::All) => reader != from,
        Some(Recipient::User(u)) => u == reader && reader != from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::DisplayName;

    fn msg(id: &str, from: &str, to: Option<&str>, body: &str) -> Message {
        Message {
            id: id.into(),
            from: UserId::parse(from).unwrap(),
            to: to.map(|t| {
                if t == "all" {
                    Recipient::All
                } else {
                    Recipient::User(UserId::parse(t).unwrap())
                }
            }),
            encrypted: serde_json::value::to_raw_value(body).unwrap().into(),
            attachments: Default::default(),
            timestamp: 1,
            kind: "text".into(),
            sender_display_name: DisplayName::default(),
        }
    }

    #[test]
    fn one_copy_per_recipient_and_retries_are_duplicates() {
        let mut h = History::default();
        assert!(matches!(
            h.append(msg("m1", "a", Some("b"), "for-b"), 10, 1 << 20),
            Appended::Stored {
                first_of_id: true,
                ..
            }
        ));
        assert!(matches!(
            h.append(msg("m1", "a", Some("c"), "for-c"), 10, 1 << 20),
            Appended::Stored {
                first_of_id: false,
                ..
            }
        ));
        assert!(matches!(
            h.append(msg("m1", "a", Some("b"), "again"), 10, 1 << 20),
            Appended::Duplicate { .. }
        ));
        let b = UserId::parse("b").unwrap();
        let seen: Vec<_> = h
            .visible_to(&b)
            .iter()
            .map(|m| m.encrypted.get().to_owned())
            .collect();
        assert_eq!(seen, vec!["\"for-b\""]);
        assert_eq!(h.visible_to(&UserId::parse("a").unwrap()).len(), 2);
    }

    #[test]
    fn a_receipt_names_a_message_its_claimant_received() {
        let mut h = History::default();
        let [a, b, c] = ["a", "b", "c"].map(|u| UserId::parse(u).unwrap());
        h.append(msg("all", "a", Some("all"), "x"), 10, 1 << 20);
        h.append(msg("none", "a", None, "x"), 10, 1 << 20);
        h.append(msg("dm", "a", Some("b"), "x"), 10, 1 << 20);
        assert!(h.received("all", &a, &b) && h.received("all", &a, &c));
        assert!(h.received("none", &a, &c));
        assert!(h.received("dm", &a, &b));
        assert!(!h.received("dm", &a, &c), "not a recipient");
        assert!(!h.received("all", &a, &a), "not its own sender");
        assert!(!h.received("all", &b, &c), "not that sender's");
        assert!(!h.received("nope", &a, &b), "no such id");
        // An evicted message is no longer known.
        for i in 0..10 {
            h.append(msg(&format!("m{i}"), "a", None, "x"), 10, 1 << 20);
        }
        assert!(!h.received("dm", &a, &b));
    }

    #[test]
    fn bounds_drop_the_oldest_and_forget_their_ids() {
        let mut h = History::default();
        for i in 0..5 {
            h.append(msg(&format!("m{i}"), "a", None, "x"), 3, 1 << 20);
        }
        assert_eq!(h.len(), 3);
        let ids: Vec<_> = h
            .visible_to(&UserId::parse("z").unwrap())
            .iter()
            .map(|m| m.id.to_string())
            .collect();
        assert_eq!(ids, ["m2", "m3", "m4"]);
        // A trimmed id may be stored again.
        assert!(matches!(
            h.append(msg("m0", "a", None, "x"), 3, 1 << 20),
            Appended::Stored { .. }
        ));
        let one = message_cost(&msg("m9", "a", None, "x"));
        let mut h = History::default();
        for i in 0..4 {
            h.append(msg(&format!("m{i}"), "a", None, "x"), 100, one * 2);
        }
        assert_eq!(h.len(), 2);
        assert!(h.bytes() <= one * 2);
    }

    #[test]
    fn a_tracked_history_keeps_the_total_in_step_until_dropped() {
        let total = Arc::new(AtomicUsize::new(0));
        let mut h = History::default();
        h.append(msg("m0", "a", None, "before"), 10, 1 << 20);
        h.track(&total);
        h.track(&total);
        assert_eq!(total.load(Ordering::Relaxed), h.bytes());
        for i in 1..5 {
            h.append(msg(&format!("m{i}"), "a", None, "x"), 3, 1 << 20);
        }
        assert_eq!(total.load(Ordering::Relaxed), h.bytes());
        assert!(h.drop_oldest());
        assert_eq!(h.len(), 2);
        assert_eq!(total.load(Ordering::Relaxed), h.bytes());
        drop(h);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
