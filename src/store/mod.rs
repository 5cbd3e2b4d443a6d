//! Session state, behind one interface with two implementations: [`MemoryStore`] (one
//! process, the default) and [`RedisStore`] (any number of nodes sharing a Redis).
//!
//! Every operation checks membership, identity and limits atomically: under the room's
//! lock in memory, inside one Lua script in Redis. The store knows connections only by
//! their Socket.IO id ([`ConnId`]); it never emits. Handlers turn what an operation
//! returns into events, unaware of which store answered.

mod budget;
pub mod digest;
mod history;
mod memory;
pub mod record;
pub mod redis;
pub mod resume;
mod session;
pub mod snapshot;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::value::RawValue;
use socketioxide::socket::Sid;

pub use digest::DigestKey;
pub use history::{Appended, History, message_cost};
pub use memory::MemoryStore;
pub use redis::{RedisStore, global_prefix};
pub use session::{Lifecycle, Member, Session};

use crate::{
    protocol::{
        AppError, ChatMode, DisplayName, Message, Opaque, PublicKeyEntry, Recipient, SessionId,
        UserId,
        delivery::{HistoryFor, OwnMessages, RawMessage},
    },
    secret::Secret,
};

/// A connection, as the store knows it.
pub type ConnId = Sid;

/// The limits the store enforces.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub session_ttl: Duration,
    /// The TTL of an empty session that was never used beyond its creator's join.
    pub unused_session_ttl: Duration,
    pub max_sessions: usize,
    pub max_group_members: usize,
    pub history_max_messages: usize,
    pub history_max_bytes: usize,
    /// Bytes of history over all sessions (0 = unbounded); see `budget.rs`.
    pub history_total_max_bytes: usize,
    /// A member back within this of its last connection's drop is not a new member.
    pub presence_grace: Duration,
}

impl From<&crate::config::Config> for StoreLimits {
    fn from(config: &crate::config::Config) -> Self {
        StoreLimits {
            session_ttl: config.session_ttl,
            // Never longer than the TTL of a used session.
            unused_session_ttl: config.unused_session_ttl.min(config.session_ttl),
            max_sessions: config.max_sessions,
            max_group_members: config.max_group_members,
            history_max_messages: config.history_max_messages,
            history_max_bytes: config.history_max_bytes,
            history_total_max_bytes: config.abuse.history_total_max_bytes,
            presence_grace: config.presence_grace,
        }
    }
}

/// A join request, validated but not yet authorised.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub session: SessionId,
    pub user: UserId,
    pub display_name: Option<DisplayName>,
    pub public_key: Option<Opaque>,
    pub is_creator: bool,
    /// The explicit `authKey`, else what followed the id in `sessionId`.
    pub credential: Option<Secret>,
    /// The mode of a session the creator's join creates (default group).
    pub chat_mode: Option<ChatMode>,
    /// The member's resume token, if its client kept one (see [`resume`]).
    pub resume: Option<Secret>,
    /// The join asked for an ack, so a token issued to it reaches its client.
    pub acked: bool,
    pub conn: ConnId,
}

/// What a successful join tells the handler to send.
#[derive(Debug)]
pub struct Joined {
    pub mode: ChatMode,
    pub is_creator: bool,
    /// The userId was not present before: the others get `user-joined`.
    pub new_member: bool,
    /// This connection had already joined as this user (the End2End Chat app joins twice
    /// on entry): `history` is empty, since the connection was sent it already.
    pub repeat: bool,
    /// This join created the session (a creator's join of an unknown id).
    pub created: bool,
    /// The member's first join since the session came back from a snapshot (a restart
    /// of this in-memory node kept it); never on Redis, where no restart loses a room.
    pub restored: bool,
    /// A new resume token for the joiner's ack (none when it proved itself with one).
    pub resume_token: Option<String>,
    /// The member had a public key and this join replaced it with another one.
    pub key_changed: bool,
    pub display_name: DisplayName,
    pub history: HistoryView,
    pub group_key: Option<Box<serde_json::value::RawValue>>,
    pub keys: Vec<PublicKeyEntry>,
}

/// The history a joiner may read, as its store holds it.
#[derive(Debug)]
pub enum HistoryView {
    Memory(Vec<Arc<Message>>),
    /// Message JSON as Redis holds it.
    Raw(Vec<RawMessage>),
}

impl HistoryView {
    pub fn empty() -> Self {
        HistoryView::Memory(Vec::new())
    }

    /// Bytes of the history as stored: what sending it queues, roughly.
    pub fn bytes(&self) -> usize {
        match self {
            HistoryView::Memory(m) => m.iter().map(|m| message_cost(m)).sum(),
            HistoryView::Raw(r) => r.iter().map(|m| m.json.get().len() + m.from.len()).sum(),
        }
    }

    /// `messages-history` as `reader` is sent it (see [`delivery`](crate::protocol::delivery)).
    pub fn for_reader<'a>(
        &'a self,
        reader: &'a UserId,
        own: OwnMessages,
    ) -> impl serde::Serialize + 'a {
        enum For<'a> {
            Memory(HistoryFor<'a, Arc<Message>>),
            Raw(HistoryFor<'a, RawMessage>),
        }
        impl serde::Serialize for For<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    For::Memory(h) => h.serialize(s),
                    For::Raw(h) => h.serialize(s),
                }
            }
        }
        match self {
            HistoryView::Memory(entries) => For::Memory(HistoryFor {
                entries,
                reader,
                own,
            }),
            HistoryView::Raw(entries) => For::Raw(HistoryFor {
                entries,
                reader,
                own,
            }),
        }
    }
}

/// What a connection leaving a session changed.
#[derive(Debug)]
pub struct Left {
    pub user: UserId,
    /// The member's last connection left: the others get `user-left`.
    pub member_gone: bool,
    /// The public keys still present, when `member_gone`.
    pub keys: Vec<PublicKeyEntry>,
    /// The session was deleted with it (explicit leave of the last member).
    pub session_deleted: bool,
}

/// A member the creator removed (`remove-member`).
#[derive(Debug)]
pub struct Removed {
    pub display_name: DisplayName,
    /// The public keys still present.
    pub keys: Vec<PublicKeyEntry>,
}

/// Counts over every session.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreStats {
    pub sessions: usize,
    /// Sessions with at least one connected member.
    pub active: usize,
    pub group: usize,
    pub private: usize,
    pub password: usize,
    pub history_bytes: usize,
}

/// Outcome of `POST /api/reserve-session`.
#[derive(Debug, PartialEq, Eq)]
pub enum ReserveError {
    Exists,
    LimitReached,
    /// The shared store (Redis) could not be reached.
    Unavailable,
}

/// A row of the admin listing (`GET /sessions`); holds no key.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session_id: SessionId,
    pub chat_mode: ChatMode,
    pub reserved: bool,
    pub members: usize,
    pub public_keys: usize,
    pub messages: usize,
    pub history_bytes: usize,
    pub idle_secs: u64,
}

/// A message as its sender's event describes it; the store adds who sent it.
#[derive(Debug)]
pub struct MessageDraft {
    pub id: Arc<str>,
    pub to: Option<Recipient>,
    pub encrypted: Opaque,
    pub attachments: crate::protocol::attachments::Attachments,
    pub kind: Arc<str>,
    pub timestamp: u64,
}

impl MessageDraft {
    pub fn into_message(self, from: &UserId, name: &DisplayName) -> Message {
        Message {
            id: self.id,
            from: from.clone(),
            to: self.to,
            encrypted: self.encrypted,
            attachments: self.attachments,
            timestamp: self.timestamp,
            kind: self.kind,
            sender_display_name: name.clone(),
        }
    }
}

/// The session store the handlers use: in memory, or in Redis when `REDIS_URL` is set.
pub enum Store {
    Memory(MemoryStore),
    /// Boxed: it holds its scripts and connection, far larger than the map handle.
    Redis(Box<RedisStore>),
}

impl Store {
    pub fn limits(&self) -> &StoreLimits {
        match self {
            Store::Memory(s) => s.limits(),
            Store::Redis(s) => s.limits(),
        }
    }

    /// Whether the store can serve (Redis answers a PING).
    pub async fn ping(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(s) => s.ping().await,
        }
    }

    /// Counts over every session (for `/health` and `/metrics`).
    pub async fn stats(&self) -> Result<StoreStats, AppError> {
        match self {
            Store::Memory(s) => Ok(s.stats()),
            Store::Redis(s) => s.stats().await,
        }
    }

    /// Creates a reserved session: known key and mode, creator not yet joined.
    pub async fn reserve(
        &self,
        id: SessionId,
        key: Secret,
        mode: ChatMode,
    ) -> Result<(), ReserveError> {
        match self {
            Store::Memory(s) => s.reserve(id, key, mode),
            Store::Redis(s) => s.reserve(&id, &key, mode).await,
        }
    }

    /// Authorises and performs a join (see docs/protocol.md, "Joining").
    pub async fn join(&self, req: JoinRequest) -> Result<Joined, AppError> {
        match self {
            Store::Memory(s) => s.join(req),
            Store::Redis(s) => s.join(req).await,
        }
    }

    /// The connection's user and display name, checking a claimed userId.
    pub async fn member(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<(UserId, DisplayName), AppError> {
        match self {
            Store::Memory(s) => s.member(id, conn, claimed),
            Store::Redis(s) => s.member(id, conn, claimed).await,
        }
    }

    /// `message-delivered`: the connection's user, and those of `ids` that name a message
    /// of `sender` this user received (addressed to it or to everyone); the others are
    /// dropped. See [`History::received`].
    pub async fn receipt(
        &self,
        id: &SessionId,
        conn: ConnId,
        sender: &UserId,
        ids: &[String],
    ) -> Result<(UserId, Vec<String>), AppError> {
        match self {
            Store::Memory(s) => s.receipt(id, conn, sender, ids),
            Store::Redis(s) => s.receipt(id, conn, sender, ids).await,
        }
    }

    /// Stores the member's public key (and name); returns the present members' keys.
    pub async fn save_public_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        key: Opaque,
        name: Option<DisplayName>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        match self {
            Store::Memory(s) => s.save_public_key(id, conn, claimed, key, name),
            Store::Redis(s) => s.save_public_key(id, conn, claimed, key, name).await,
        }
    }

    /// The other present members' public keys.
    pub async fn peer_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        match self {
            Store::Memory(s) => s.peer_keys(id, conn, claimed),
            Store::Redis(s) => s.peer_keys(id, conn, claimed).await,
        }
    }

    /// After this node missed broadcasts (Redis was out of reach): the present keys and
    /// the history the connection may read. `None` in memory, where nothing is missed.
    pub async fn resync(
        &self,
        id: &SessionId,
        conn: ConnId,
    ) -> Result<Option<(UserId, Vec<PublicKeyEntry>, HistoryView)>, AppError> {
        match self {
            Store::Memory(_) => Ok(None),
            Store::Redis(s) => {
                let (user, keys, history) = s.resync(id, conn).await?;
                Ok(Some((user, keys, HistoryView::Raw(history))))
            }
        }
    }

    /// Whether appending `draft` also relays it to the other nodes (see
    /// [`crate::bus`]): the handler then delivers it to this node's sockets only.
    pub fn publishes(&self, draft: &MessageDraft) -> bool {
        match self {
            Store::Memory(_) => false,
            Store::Redis(s) => s.publishes(draft),
        }
    }

    /// Stores a message from a member. See [`History::append`].
    pub async fn append_message(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed_from: Option<&UserId>,
        draft: MessageDraft,
    ) -> Result<Appended, AppError> {
        match self {
            Store::Memory(s) => s.append_message(id, conn, claimed_from, |from, name| {
                draft.into_message(from, name)
            }),
            Store::Redis(s) => s.append_message(id, conn, claimed_from, draft).await,
        }
    }

    /// The creator replaces the group's wrapped keys.
    pub async fn set_group_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        keys: &BTreeMap<UserId, Box<RawValue>>,
    ) -> Result<(), AppError> {
        match self {
            Store::Memory(s) => s.set_group_keys(id, conn, keys),
            Store::Redis(s) => s.set_group_keys(id, conn, keys).await,
        }
    }

    /// `leave-session`. See [`MemoryStore::leave`].
    pub async fn leave(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Left, AppError> {
        match self {
            Store::Memory(s) => s.leave(id, conn, claimed),
            Store::Redis(s) => s.leave(id, conn, claimed).await,
        }
    }

    /// After a member's last connection dropped: the present members' keys if it is
    /// still gone, `None` if it came back.
    pub async fn departed(
        &self,
        id: &SessionId,
        user: &UserId,
    ) -> Result<Option<Vec<PublicKeyEntry>>, AppError> {
        match self {
            Store::Memory(s) => Ok(s.departed(id, user)),
            Store::Redis(s) => s.departed(id, user).await,
        }
    }

    /// The connection is gone. `Ok(None)`: it was not in the session.
    pub async fn disconnect(&self, id: &SessionId, conn: ConnId) -> Result<Option<Left>, AppError> {
        match self {
            Store::Memory(s) => Ok(s.disconnect(id, conn)),
            Store::Redis(s) => s.disconnect(id, conn).await,
        }
    }

    /// `close-session`: returns the userIds that were members.
    pub async fn close(&self, id: &SessionId, conn: ConnId) -> Result<Vec<UserId>, AppError> {
        match self {
            Store::Memory(s) => s.close(id, conn),
            Store::Redis(s) => s.close(id, conn).await,
        }
    }

    /// Whether the session exists and `credential` would admit a join (`POST
    /// /api/session-status`): its mode, and whether a credential was checked.
    pub async fn status(
        &self,
        id: &SessionId,
        credential: Option<&Secret>,
    ) -> Result<(ChatMode, bool), AppError> {
        match self {
            Store::Memory(s) => s.status(id, credential),
            Store::Redis(s) => s.status(id, credential).await,
        }
    }

    /// `remove-member`: the creator takes `target` out of the session for good.
    pub async fn remove_member(
        &self,
        id: &SessionId,
        conn: ConnId,
        target: &UserId,
    ) -> Result<Removed, AppError> {
        match self {
            Store::Memory(s) => s.remove_member(id, conn, target),
            Store::Redis(s) => s.remove_member(id, conn, target).await,
        }
    }

    /// `reset-link`: the creator replaces the session's join credential.
    pub async fn reset_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        key: Secret,
    ) -> Result<(), AppError> {
        match self {
            Store::Memory(s) => s.reset_key(id, conn, key),
            Store::Redis(s) => s.reset_key(id, conn, &key).await,
        }
    }

    /// Deletes expired sessions; returns how many. (Redis expires keys itself; this
    /// only prunes its index.)
    pub async fn reap(&self) -> usize {
        match self {
            Store::Memory(s) => s.reap(),
            Store::Redis(s) => s.reap().await,
        }
    }

    pub async fn summaries(&self) -> Result<Vec<SessionSummary>, AppError> {
        match self {
            Store::Memory(s) => Ok(s.summaries()),
            Store::Redis(s) => s.summaries().await,
        }
    }
}
