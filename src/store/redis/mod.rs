//! The Redis session store: the same operations as [`MemoryStore`](super::MemoryStore),
//! shared by every node of a deployment.
//!
//! Each operation is one Lua script (in `lua/`, each prefixed with `lua/common.lua`), so
//! a check and the change it guards run atomically across nodes: two nodes racing a
//! third person into a private room still admit one. Credentials are stored as keyed
//! digests ([`DigestKey`]), compared inside the script: Redis never holds a room's key,
//! and a copy of Redis alone cannot be searched for passwords. Connection ids are
//! transport credentials too (an Engine.IO `sid` lets its holder post as that
//! connection), so Redis names connections by their keyed digest as well.
//!
//! On a Redis Cluster every key of a session shares its hash tag (`<prefix>s:{<id>}`), so
//! its scripts run on the shard that owns it, and sessions spread over all shards. The
//! deployment's few global keys (session index, history total, node registry) share the
//! `{g}` slot; a session script cannot touch them there, so it returns their changes as a
//! ledger that the node applies next (`lua/ledger.lua`). On one server the scripts make
//! those changes themselves, in the same atomic step. What a cluster gives up: the
//! session limit and the history total are checked against counts read a moment before,
//! so concurrent creations may pass `MAX_SESSIONS` by the number in flight, and
//! `HISTORY_TOTAL_MAX_BYTES` is enforced at each reaper tick instead of at each message.
//!
//! A failed round trip answers `UNAVAILABLE`; the connection reconnects (or follows the
//! cluster's failover) on its own, so service resumes when Redis returns.

mod clock;
mod members;
mod messages;
mod scripts;
mod upkeep;
mod value;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::{Script, Value};
use serde_json::value::RawValue;

use self::{
    messages::visible_history,
    scripts::{Scripts, Slot},
    value::{Reply, Row},
};
use super::{
    Appended, ConnId, HistoryView, JoinRequest, Joined, Left, MessageDraft, Removed, ReserveError,
    SessionSummary, StoreLimits, StoreStats, digest::DigestKey, resume,
};
use crate::{
    bus::SessionBus,
    protocol::{
        AppError, ChatMode, DisplayName, ErrorCode, Opaque, PublicKeyEntry, Recipient, SessionId,
        UserId, attachments, delivery::RawMessage, now_ms,
    },
    redis_link::Link,
    secret::Secret,
};

/// On a cluster, how far a session's history size may move before its message tells the
/// global total (a round trip to the `{g}` slot): a sixteenth of its bound.
pub fn account_grain(limits: &StoreLimits) -> usize {
    (limits.history_max_bytes / 16).max(1)
}

/// The prefix of the deployment's global keys: one slot on a cluster.
pub fn global_prefix(prefix: &str) -> String {
    format!("{prefix}{{g}}")
}

pub struct RedisStore {
    conn: Link,
    /// The session channels this node reads (see [`crate::bus`]); without it (the
    /// store's tests), messages are relayed by the adapter.
    channels: Option<Arc<SessionBus>>,
    /// Whether this node's pub/sub link works: without it, a change could be stored
    /// but not broadcast, so operations wait for it.
    bus: crate::cluster::BusHealth,
    prefix: Arc<str>,
    /// `global_prefix(prefix)`.
    global: Arc<str>,
    /// This node's id: the connections it binds are listed under it, for its lease.
    node: Arc<str>,
    limits: StoreLimits,
    scripts: Scripts,
    clock: clock::RedisClock,
    digests: DigestKey,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// A script's refusal, as the in-memory store words it.
fn refusal(code: &str, limits: &StoreLimits) -> AppError {
    use ErrorCode as E;
    match code {
        "SESSION_NOT_FOUND" => AppError::session_not_found(),
        "SESSION_EXPIRED" => AppError::session_expired(),
        "NO_CREATOR_KEY" => AppError::bad_request("A creator must give an authKey"),
        "LIMIT_REACHED_SESSIONS" => {
            AppError::new(E::LimitReached, "The server holds too many sessions")
        }
        "LIMIT_REACHED_GROUP" => AppError::new(
            E::LimitReached,
            format!(
                "A group session holds at most {} members",
                limits.max_group_members
            ),
        ),
        "INVALID_KEY" => AppError::invalid_key(),
        "INVALID_KEY_CREATOR" => AppError::creator_key_mismatch(),
        "INVALID_PASSWORD" => AppError::invalid_password(),
        "SESSION_NOT_ACTIVE" => AppError::session_not_active(),
        "SESSION_FULL" => AppError::session_full(),
        "FORBIDDEN_CONN_BOUND" => {
            AppError::forbidden("This connection already joined as another user")
        }
        "FORBIDDEN_OTHER_USER" => AppError::forbidden("This connection joined as another user"),
        "FORBIDDEN_RESUME" => {
            AppError::forbidden("This resume token does not belong to this member")
        }
        "RESUME_TOKEN_REQUIRED" => resume::token_required(),
        "MEMBER_PRESENT" => AppError::new(
            E::MemberPresent,
            "This person is already in the room on another connection",
        ),
        "FORBIDDEN_NOT_CREATOR_KEY" => {
            AppError::forbidden("Only the session's creator may set its key")
        }
        "FORBIDDEN_NOT_CREATOR_CLOSE" => {
            AppError::forbidden("Only the session's creator may close it")
        }
        "FORBIDDEN_NOT_CREATOR_REMOVE" => AppError::creator_only("remove a member"),
        "FORBIDDEN_NOT_CREATOR_RESET" => AppError::creator_only("reset its link"),
        "REMOVE_SELF" => AppError::cannot_remove_self(),
        "NO_SUCH_MEMBER" => AppError::no_such_member(),
        "PASSWORD_KEY_EXPECTED" => AppError::password_key_expected(),
        "REMOVED" => AppError::removed(),
        "TOO_LARGE" => AppError::too_large("This message", limits.history_max_bytes),
        // Ran after its fence: nothing was changed (see common.lua).
        "FENCED" => AppError::unavailable(),
        "NOT_IN_SESSION" => AppError::not_in_session(),
        other => {
            tracing::error!(reply = other, "unexpected reply from a Redis script");
            AppError::unavailable()
        }
    }
}

impl RedisStore {
    pub fn new(
        conn: Link,
        bus: crate::cluster::BusHealth,
        prefix: &str,
        node: Arc<str>,
        limits: StoreLimits,
        digests: DigestKey,
    ) -> Self {
        RedisStore {
            conn,
            channels: None,
            bus,
            prefix: prefix.into(),
            global: global_prefix(prefix).into(),
            node,
            limits,
            scripts: Scripts::new(),
            clock: clock::RedisClock::default(),
            digests,
        }
    }

    /// With the session bus: the append script publishes what it stores.
    pub fn with_bus(mut self, channels: Arc<SessionBus>) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Whether appending `draft` also publishes it to the other nodes (then the handler
    /// delivers it to this node's sockets only). Binary attachments go the adapter's way.
    pub fn publishes(&self, draft: &MessageDraft) -> bool {
        self.channels.is_some() && draft.attachments.is_empty()
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Whether it runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// Measures Redis's clock, for the scripts' fences (at start, then every lease tick).
    pub async fn sync_clock(&self) -> Result<(), redis::RedisError> {
        self.clock.sync(&self.conn).await
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// PING, answered within a second, and the pub/sub link up.
    pub async fn ping(&self) -> bool {
        if !self.bus.is_up() {
            return false;
        }
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(1), ping).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketioxide::socket::Sid;

    #[test]
    fn a_connection_is_named_by_a_keyed_digest_of_its_sid() {
        let key = DigestKey::new(&Secret::from("k1-0123456789abcdef0123456789abcdef"));
        let other = DigestKey::new(&Secret::from("k2-0123456789abcdef0123456789abcdef"));
        let sid = Sid::new();
        let name = key.conn("room", sid);
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!name.contains(&sid.to_string()));
        assert_eq!(name, key.conn("room", sid), "stable: every script finds it");
        assert_ne!(name, key.conn("room", Sid::new()));
        assert_ne!(name, other.conn("room", sid), "keyed");
        assert_ne!(
            name,
            key.digest("room", &sid.to_string()),
            "not a credential's digest"
        );
    }
}
