//! The in-memory session store: every room's state, behind operations that each check
//! membership, identity and limits while holding the room's lock, so that no two events
//! can interleave inside one room.
//!
//! The store knows connections only by their Socket.IO id ([`ConnId`]); it never emits.
//! Handlers turn what an operation returns into events.

mod budget;
mod history;
mod session;

use std::time::{Duration, Instant};

use dashmap::{DashMap, mapref::entry::Entry};
use socketioxide::socket::Sid;

pub use history::{Appended, History, message_cost};
pub use session::{Lifecycle, Member, Session};

use crate::{
    protocol::{
        AppError, ChatMode, DisplayName, ErrorCode, Message, Opaque, PublicKeyEntry, Recipient,
        SessionId, UserId, now_ms,
    },
    secret::Secret,
};

/// A connection, as the store knows it.
pub type ConnId = Sid;

/// The limits the store enforces.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    pub session_ttl: Duration,
    pub max_sessions: usize,
    pub max_group_members: usize,
    pub history_max_messages: usize,
    pub history_max_bytes: usize,
    /// Bytes of history over all sessions (0 = unbounded); see `budget.rs`.
    pub history_total_max_bytes: usize,
}

/// A join request, validated but not yet authorised.
#[derive(Debug)]
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
    pub conn: ConnId,
}

/// What a successful join tells the handler to send.
#[derive(Debug)]
pub struct Joined {
    pub mode: ChatMode,
    pub is_creator: bool,
    /// The userId was not present before: the others get `user-joined`.
    pub new_member: bool,
    pub display_name: DisplayName,
    pub history: Vec<std::sync::Arc<Message>>,
    pub group_key: Option<Box<serde_json::value::RawValue>>,
    pub keys: Vec<PublicKeyEntry>,
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

pub struct SessionStore {
    sessions: DashMap<SessionId, Session>,
    limits: StoreLimits,
    /// History bytes of all sessions, kept by each [`History`] (see `budget.rs`).
    history_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SessionStore {
    pub fn new(limits: StoreLimits) -> Self {
        SessionStore {
            sessions: DashMap::new(),
            limits,
            history_total: Default::default(),
        }
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Sessions held, including reserved and empty ones.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Counts over every session (for `/health` and `/metrics`).
    pub fn stats(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        for s in self.sessions.iter() {
            stats.sessions += 1;
            stats.active += usize::from(s.has_present_members());
            stats.history_bytes += s.history.bytes();
            match s.mode {
                ChatMode::Group => stats.group += 1,
                ChatMode::Private => stats.private += 1,
                ChatMode::Password => stats.password += 1,
            }
        }
        stats
    }

    /// Creates a reserved session: known key and mode, creator not yet joined.
    pub fn reserve(&self, id: SessionId, key: Secret, mode: ChatMode) -> Result<(), ReserveError> {
        let full = self.sessions.len() >= self.limits.max_sessions;
        let now = Instant::now();
        match self.sessions.entry(id) {
            Entry::Occupied(mut e) => {
                if !e.get().is_expired(now, self.limits.session_ttl) {
                    return Err(ReserveError::Exists);
                }
                e.insert(Session::reserved(key, mode, now));
            }
            Entry::Vacant(e) => {
                if full {
                    return Err(ReserveError::LimitReached);
                }
                e.insert(Session::reserved(key, mode, now));
            }
        }
        Ok(())
    }

    /// Authorises and performs a join (see the README's join rules).
    pub fn join(&self, req: JoinRequest) -> Result<Joined, AppError> {
        let full = self.sessions.len() >= self.limits.max_sessions;
        let now = Instant::now();
        let mut session = match self.sessions.entry(req.session.clone()) {
            Entry::Occupied(e) if e.get().is_expired(now, self.limits.session_ttl) => {
                if !req.is_creator {
                    e.remove();
                    return Err(AppError::new(
                        ErrorCode::SessionExpired,
                        "This session has expired",
                    ));
                }
                let mut e = e;
                e.insert(self.new_session_for_creator(&req, now)?);
                e.into_ref()
            }
            Entry::Occupied(e) => e.into_ref(),
            Entry::Vacant(e) => {
                if !req.is_creator {
                    return Err(AppError::new(
                        ErrorCode::SessionNotFound,
                        "Session not found",
                    ));
                }
                if full {
                    return Err(AppError::new(
                        ErrorCode::LimitReached,
                        "The server holds too many sessions",
                    ));
                }
                e.insert(self.new_session_for_creator(&req, now)?)
            }
        };
        session.join(req, &self.limits, now)
    }

    fn new_session_for_creator(
        &self,
        req: &JoinRequest,
        now: Instant,
    ) -> Result<Session, AppError> {
        let key = req
            .credential
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| AppError::bad_request("A creator must give an authKey"))?;
        Ok(Session::reserved(
            key,
            req.chat_mode.unwrap_or_default(),
            now,
        ))
    }

    /// Runs `op` on a session the connection has joined, as its bound user, after
    /// checking that a claimed userId (`from`, `userId`, `downloadedBy`) is that user.
    pub fn with_member<T>(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        op: impl FnOnce(&mut Session, &UserId) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut session = self
            .sessions
            .get_mut(id)
            .ok_or_else(AppError::not_in_session)?;
        let user = session.bound_user(conn)?.clone();
        if claimed.is_some_and(|c| *c != user) {
            return Err(AppError::forbidden(
                "This connection joined as another user",
            ));
        }
        session.touch(Instant::now());
        op(&mut session, &user)
    }

    /// Stores a message from a member. See [`History::append`].
    pub fn append_message(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed_from: Option<&UserId>,
        build: impl FnOnce(&UserId, &DisplayName) -> Message,
    ) -> Result<Appended, AppError> {
        let limits = &self.limits;
        let appended = self.with_member(id, conn, claimed_from, |session, user| {
            let message = build(user, &session.display_name_of(user));
            if message_cost(&message) > limits.history_max_bytes {
                return Err(AppError::too_large(
                    "This message",
                    limits.history_max_bytes,
                ));
            }
            session.history.track(&self.history_total);
            Ok(session.history.append(
                message,
                limits.history_max_messages,
                limits.history_max_bytes,
            ))
        })?;
        // After the room's lock is released: the trim takes other rooms' locks.
        self.enforce_history_budget();
        Ok(appended)
    }

    /// The connection leaves the session (`leave-session`). The member leaves with its
    /// last connection, and the session is deleted when no member is left.
    pub fn leave(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Left, AppError> {
        let Entry::Occupied(mut e) = self.sessions.entry(id.clone()) else {
            return Err(AppError::not_in_session());
        };
        let user = e.get().bound_user(conn)?.clone();
        if claimed.is_some_and(|c| *c != user) {
            return Err(AppError::forbidden(
                "This connection joined as another user",
            ));
        }
        let mut left = e
            .get_mut()
            .remove_conn(conn, true, Instant::now())
            .ok_or_else(AppError::not_in_session)?;
        if !e.get().has_present_members() {
            e.remove();
            left.session_deleted = true;
        }
        Ok(left)
    }

    /// The connection is gone. Its member becomes absent with its last connection; an
    /// emptied session stays (for reconnects) until it expires.
    pub fn disconnect(&self, id: &SessionId, conn: ConnId) -> Option<Left> {
        self.sessions
            .get_mut(id)?
            .remove_conn(conn, false, Instant::now())
    }

    /// `close-session`: the creator deletes the session. Returns the userIds that were
    /// members, so their rooms can be emptied.
    pub fn close(&self, id: &SessionId, conn: ConnId) -> Result<Vec<UserId>, AppError> {
        let Entry::Occupied(e) = self.sessions.entry(id.clone()) else {
            return Err(AppError::not_in_session());
        };
        let user = e.get().bound_user(conn)?;
        if !e.get().is_creator(user) {
            return Err(AppError::forbidden(
                "Only the session's creator may close it",
            ));
        }
        let session = e.remove();
        Ok(session.members.into_keys().collect())
    }

    /// Deletes every session with no connected member and no activity for the TTL.
    /// Returns how many were deleted.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let before = self.sessions.len();
        self.sessions
            .retain(|_, s| !s.is_expired(now, self.limits.session_ttl));
        before.saturating_sub(self.sessions.len())
    }

    pub fn summaries(&self) -> Vec<SessionSummary> {
        let now = Instant::now();
        self.sessions
            .iter()
            .map(|e| {
                let s = e.value();
                SessionSummary {
                    session_id: e.key().clone(),
                    chat_mode: s.mode,
                    reserved: matches!(s.lifecycle, Lifecycle::Reserved),
                    members: s.present_count(),
                    public_keys: s.public_keys().len(),
                    messages: s.history.len(),
                    history_bytes: s.history.bytes(),
                    idle_secs: now.duration_since(s.last_activity).as_secs(),
                }
            })
            .collect()
    }
}

/// Builds a stored message (the handler's side of [`SessionStore::append_message`]).
pub fn new_message(
    id: std::sync::Arc<str>,
    from: &UserId,
    name: &DisplayName,
    to: Option<Recipient>,
    encrypted: Opaque,
    kind: std::sync::Arc<str>,
) -> Message {
    Message {
        id,
        from: from.clone(),
        to,
        encrypted,
        timestamp: now_ms(),
        kind,
        sender_display_name: name.clone(),
    }
}
