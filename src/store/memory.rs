//! The in-memory session store: every room's state, behind operations that each check
//! membership, identity and limits while holding the room's lock, so that no two events
//! can interleave inside one room.

use std::{collections::BTreeMap, time::Instant};

use dashmap::{DashMap, mapref::entry::Entry};
use serde_json::value::RawValue;

use super::{
    Appended, ConnId, JoinRequest, Joined, Left, Lifecycle, Removed, ReserveError, Session,
    SessionSummary, StoreLimits, StoreStats,
    digest::{DigestKey, Salted},
    message_cost,
};
use crate::{
    protocol::{
        AppError, ChatMode, DisplayName, ErrorCode, Message, Opaque, PublicKeyEntry, SessionId,
        UserId,
    },
    secret::Secret,
};

pub struct MemoryStore {
    pub(super) sessions: DashMap<SessionId, Session>,
    pub(super) limits: StoreLimits,
    /// Room keys and passwords are kept as keyed digests, as in Redis, so that a
    /// snapshot of this store (see `snapshot`) holds nothing a dictionary can use.
    pub(super) digests: Box<DigestKey>,
    /// Bumped by every operation that may change a session, so that a periodic
    /// snapshot of an unchanged store is skipped (see `snapshot`).
    pub(super) generation: std::sync::atomic::AtomicU64,
    /// History bytes of all sessions, kept by each [`History`](super::History) (see
    /// `budget.rs`).
    pub(super) history_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryStore {
    /// A store with a digest key of its own (nothing it holds outlives the process).
    pub fn new(limits: StoreLimits) -> Self {
        // The OS generator does not fail on the platforms we build for; if it did, an
        // empty key still keeps digests apart per session (they are salted with its id).
        let key = DigestKey::random()
            .map_or_else(|_| DigestKey::new(&Secret::from(String::new())), |(k, _)| k);
        Self::with_digest_key(limits, key)
    }

    /// A store whose digests are made under `digests` (kept across restarts).
    pub fn with_digest_key(limits: StoreLimits, digests: DigestKey) -> Self {
        MemoryStore {
            sessions: DashMap::new(),
            limits,
            digests: Box::new(digests),
            generation: Default::default(),
            history_total: Default::default(),
        }
    }

    /// The digests of session `id`'s credentials.
    fn salted<'a>(&'a self, id: &'a SessionId) -> Salted<'a> {
        Salted {
            key: &self.digests,
            session: id.as_str(),
        }
    }

    /// Counts a change (see `generation`).
    pub(super) fn changed(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        self.changed();
        let full = self.sessions.len() >= self.limits.max_sessions;
        let now = Instant::now();
        match self.sessions.entry(id) {
            Entry::Occupied(mut e) => {
                if !e.get().is_expired(now, &self.limits) {
                    return Err(ReserveError::Exists);
                }
                let key = self.digests.room_key(e.key().as_str(), &key);
                e.insert(Session::reserved(key, mode, now));
            }
            Entry::Vacant(e) => {
                if full {
                    // Expired sessions awaiting the reaper do not count: swept, then
                    // tried again (each retry follows a sweep that freed a place).
                    let id = e.into_key();
                    if self.reap() > 0 {
                        return self.reserve(id, key, mode);
                    }
                    return Err(ReserveError::LimitReached);
                }
                let key = self.digests.room_key(e.key().as_str(), &key);
                e.insert(Session::reserved(key, mode, now));
            }
        }
        Ok(())
    }

    /// Authorises and performs a join (see docs/protocol.md, "Joining").
    pub fn join(&self, req: JoinRequest) -> Result<Joined, AppError> {
        self.changed();
        let full = self.sessions.len() >= self.limits.max_sessions;
        let now = Instant::now();
        let mut created = false;
        let mut session = match self.sessions.entry(req.session.clone()) {
            Entry::Occupied(e) if e.get().is_expired(now, &self.limits) => {
                if !req.is_creator {
                    e.remove();
                    return Err(AppError::session_expired());
                }
                let mut e = e;
                e.insert(self.new_session_for_creator(&req, now)?);
                created = true;
                e.into_ref()
            }
            Entry::Occupied(e) => e.into_ref(),
            Entry::Vacant(e) => {
                if !req.is_creator {
                    return Err(AppError::session_not_found());
                }
                // A creator without a key is told so before any limit (as Redis does).
                let fresh = self.new_session_for_creator(&req, now)?;
                if full {
                    // As in `reserve`.
                    drop(e);
                    if self.reap() > 0 {
                        return self.join(req);
                    }
                    return Err(AppError::new(
                        ErrorCode::LimitReached,
                        "The server holds too many sessions",
                    ));
                }
                created = true;
                e.insert(fresh)
            }
        };
        // A creator's join of the session it just created is never refused.
        let id = req.session.clone();
        let d = self.salted(&id);
        session
            .join(d, req, &self.limits, now)
            .map(|joined| Joined { created, ..joined })
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
            self.digests.room_key(req.session.as_str(), &key),
            req.chat_mode.unwrap_or_default(),
            now,
        ))
    }

    /// Runs `op` on a session the connection has joined, as its bound user, after
    /// checking that a claimed userId (`from`, `userId`) is that user.
    fn with_member<T>(
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
        self.changed();
        op(&mut session, &user)
    }

    /// The connection's user and display name.
    pub fn member(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<(UserId, DisplayName), AppError> {
        self.with_member(id, conn, claimed, |s, user| {
            Ok((user.clone(), s.display_name_of(user)))
        })
    }

    /// A delivery receipt: the connection's user, and those of `ids` that are messages of
    /// `sender` it received (see [`History::received`]).
    pub fn receipt(
        &self,
        id: &SessionId,
        conn: ConnId,
        sender: &UserId,
        ids: &[String],
    ) -> Result<(UserId, Vec<String>), AppError> {
        self.with_member(id, conn, None, |s, user| {
            let received = ids
                .iter()
                .filter(|m| s.history.received(m, sender, user))
                .cloned()
                .collect();
            Ok((user.clone(), received))
        })
    }

    /// Stores the member's public key (and name); returns the present members' keys.
    pub fn save_public_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        key: Opaque,
        name: Option<DisplayName>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        self.with_member(id, conn, claimed, |s, user| {
            if let Some(member) = s.members.get_mut(user) {
                member.public_key = Some(key);
                if let Some(name) = name {
                    member.display_name = name;
                }
            }
            Ok(s.public_keys())
        })
    }

    /// The other present members' public keys.
    pub fn peer_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        self.with_member(id, conn, claimed, |s, user| {
            let mut keys = s.public_keys();
            keys.retain(|k| k.user_id != *user);
            Ok(keys)
        })
    }

    /// The creator replaces the group's wrapped keys.
    pub fn set_group_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        keys: &BTreeMap<UserId, Box<RawValue>>,
    ) -> Result<(), AppError> {
        self.with_member(id, conn, None, |s, user| {
            if !s.is_creator(user) {
                return Err(AppError::forbidden(
                    "Only the session's creator may set its key",
                ));
            }
            s.group_keys = keys.iter().map(|(u, k)| (u.clone(), k.clone())).collect();
            Ok(())
        })
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
            session.mark_used();
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
        self.changed();
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

    /// The present members' keys if `user` has no connection in the session (it did not
    /// come back), `None` if it is present again or the session is gone.
    pub fn departed(&self, id: &SessionId, user: &UserId) -> Option<Vec<PublicKeyEntry>> {
        let session = self.sessions.get(id)?;
        let back = session.members.get(user).is_some_and(|m| m.is_present());
        (!back).then(|| session.public_keys())
    }

    /// The connection is gone. Its member becomes absent with its last connection; an
    /// emptied session stays (for reconnects) until it expires.
    pub fn disconnect(&self, id: &SessionId, conn: ConnId) -> Option<Left> {
        self.changed();
        self.sessions
            .get_mut(id)?
            .remove_conn(conn, false, Instant::now())
    }

    /// `close-session`: the creator deletes the session. Returns the userIds that were
    /// members, so their rooms can be emptied.
    pub fn close(&self, id: &SessionId, conn: ConnId) -> Result<Vec<UserId>, AppError> {
        self.changed();
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

    /// See [`Session::status`]: the mode, and whether the credential was checked.
    pub fn status(
        &self,
        id: &SessionId,
        credential: Option<&Secret>,
    ) -> Result<(ChatMode, bool), AppError> {
        let session = self
            .sessions
            .get(id)
            .ok_or_else(AppError::session_not_found)?;
        if session.is_expired(Instant::now(), &self.limits) {
            return Err(AppError::session_expired());
        }
        let d = self.salted(id);
        Ok((session.mode, session.status(d, credential)?))
    }

    pub fn remove_member(
        &self,
        id: &SessionId,
        conn: ConnId,
        target: &UserId,
    ) -> Result<Removed, AppError> {
        self.changed();
        let mut session = self
            .sessions
            .get_mut(id)
            .ok_or_else(AppError::not_in_session)?;
        session.remove_member(conn, target, Instant::now())
    }

    pub fn reset_key(&self, id: &SessionId, conn: ConnId, key: Secret) -> Result<(), AppError> {
        self.changed();
        let mut session = self
            .sessions
            .get_mut(id)
            .ok_or_else(AppError::not_in_session)?;
        let d = self.salted(id);
        session.reset_key(d, conn, &key)
    }

    /// Deletes every session with no connected member and no activity for the TTL.
    /// Returns how many were deleted.
    pub fn reap(&self) -> usize {
        self.changed();
        let now = Instant::now();
        let before = self.sessions.len();
        self.sessions
            .retain(|_, s| !s.is_expired(now, &self.limits));
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
