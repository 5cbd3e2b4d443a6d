//! A reference model of the session store (`blindrelay::store::Store`, in memory or on
//! Redis), shared by the property tests (`tests/store_props.rs`, against both stores) and
//! the fuzz target (`fuzz/fuzz_targets/store_model.rs`, against the in-memory store).
//!
//! A run drives a real store and the model with the same operations, on a small fixed
//! set of session ids, users and connections (so that operations collide), and asserts
//! after every operation that both answered the same (every error code, and every field
//! of every answer but the clock's: `Joined`, `Left`, `Appended`, `Removed`, the keys,
//! names, group keys, receipts, resync views, session statuses and summaries, `close`'s
//! member list, `reap`'s count) and that the store's counts (`stats()`, and `len()` in
//! memory) equal the model's. The model also asserts the invariants it can state exactly
//! (two present members at most in private and password rooms, history bounds).
//!
//! Every operation of [`Store`] that a socket handler or an HTTP route calls is driven:
//! `reserve`, `join` (resume tokens presented, right and wrong), `member`, `receipt`,
//! `save_public_key`, `peer_keys`, `resync`, `append_message`, `set_group_keys`,
//! `leave`, `departed`, `disconnect`, `close`, `status`, `remove_member`, `reset_key`,
//! `reap`, `summaries`, `stats`, and `ping`, `publishes` and `limits` (which hold no
//! session state). Besides those, only `MemoryStore::{new, len}` are used.
//!
//! The rules are docs/protocol.md's ("Joining", "Messages", the events' table), and where
//! it is silent, the in-memory store's. Where the stores may answer differently by design
//! (not a drift: both keep the documented rule), [`run_on`] says so, marked `BY DESIGN`:
//! - which sessions a store still *holds* once they expired: memory keeps an expired
//!   session until its reaper (or a joiner, or a creation that needs its place) deletes
//!   it, Redis expires its keys itself; so `stats`, `summaries` and `departed` of an
//!   expired session read what each store holds ([`Model::holds`]);
//! - how long "just expired" lasts (`SESSION_EXPIRED` before `SESSION_NOT_FOUND`):
//!   memory, while it holds the session; Redis, while its tombstone lasts;
//! - `resync` answers `None` in memory, which never misses a broadcast;
//! - `HISTORY_TOTAL_MAX_BYTES` is held only where nothing expires, and not on a Redis
//!   Cluster (see [`limits`]).
//!
//! No drift is left: a case where one store broke the rule was fixed in that store (the
//! last, a creator's empty credential admitted in memory, in `Session::join`).
//!
//! Time: the TTL is either one hour (nothing expires during a run) or as good as zero (a
//! session with no connected member is expired by the next operation), so expiry is
//! deterministic; see [`run_on`]. The presence grace is an hour in the first case (a
//! member back after a disconnect is not new) and zero in the second.

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::Duration,
};

use blindrelay::{
    protocol::{ChatMode, DisplayName, ErrorCode, Message, Recipient, SessionId, UserId},
    secret::Secret,
    store::{
        Appended, ConnId, HistoryView, JoinRequest, Left, MemoryStore, MessageDraft, Store,
        StoreLimits, message_cost,
    },
};
use serde_json::value::RawValue;

pub const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "s3"];
pub const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
pub const CONNS: usize = 6;
/// What a joiner presents (`None` = no credential).
pub const CREDENTIALS: [Option<&str>; 9] = [
    None,
    Some("k0"),
    Some("k1"),
    Some("k0:pw"),
    Some("k1:zz"),
    Some("password:pw"),
    Some("password:zz"),
    Some(""),
    Some("pw"),
];
/// What a reservation stores.
pub const RESERVE_KEYS: [&str; 6] = ["k0", "k1", "k0:pw", "k1:zz", "pw", ""];
/// What `reset-link` sets (never empty: the handler refuses that); some have no
/// password part, which a password room refuses.
pub const RESET_KEYS: [&str; 4] = ["k1", "k0:pw", "k1:zz", "pw"];
pub const MODES: [ChatMode; 3] = [ChatMode::Group, ChatMode::Private, ChatMode::Password];
pub const NAMES: [&str; 3] = ["", "Alice", "Bob"];
/// Public keys (JSON): few, so that a rejoin may present the same key or another.
pub const PUBLIC_KEYS: [&str; 3] = ["\"pk-a\"", "\"pk-b\"", "{\"k\":\"pk-c\"}"];
pub const MESSAGE_IDS: [&str; 3] = ["m0", "m1", "m2"];
/// What a delivery receipt may name: the stored ids, and one never sent.
pub const RECEIPT_IDS: [&str; 4] = ["m0", "m1", "m2", "m9"];

pub const MAX_SESSIONS: usize = 3;
pub const MAX_GROUP_MEMBERS: usize = 3;
pub const HISTORY_MAX_MESSAGES: usize = 5;
pub const HISTORY_MAX_BYTES: usize = 700;
/// `HISTORY_TOTAL_MAX_BYTES` where nothing expires, on memory and one Redis server: under
/// two full histories, so that appends to two rooms trim the larger.
pub const HISTORY_TOTAL_MAX_BYTES: usize = 800;

/// One store operation; every index is taken modulo the size of its table, but a `conn`
/// of `CONNS` or more in an operation other than a join names a connection bound in its
/// session (see [`Model::pick`]), so that sequences reach past `NOT_IN_SESSION`.
#[derive(Debug, Clone)]
pub enum Op {
    Reserve {
        session: u8,
        key: u8,
        mode: u8,
    },
    Join {
        session: u8,
        user: u8,
        conn: u8,
        creator: bool,
        credential: u8,
        mode: Option<u8>,
        name: Option<u8>,
        /// `PUBLIC_KEYS[i]`, or no key.
        public_key: Option<u8>,
        /// The join asked for an ack: a new member made by it holds a resume token.
        acked: bool,
        /// The resume token presented: `Some(true)` the last one a join of this user in
        /// this session was issued (a made-up one if none was), `Some(false)` a wrong one.
        resume: Option<bool>,
    },
    Append {
        session: u8,
        conn: u8,
        claimed: Option<u8>,
        id: u8,
        /// `None`: no `to`; `Some(i)`: `USERS[i]`, or `all` for `i == USERS.len()`.
        to: Option<u8>,
        /// The ciphertext is `3 * size` bytes (some exceed the history byte bound).
        size: u8,
    },
    Leave {
        session: u8,
        conn: u8,
        claimed: Option<u8>,
    },
    Disconnect {
        session: u8,
        conn: u8,
    },
    Close {
        session: u8,
        conn: u8,
    },
    Reap,
    /// `typing`, `file-downloaded`: the connection's user and name.
    Member {
        session: u8,
        conn: u8,
        claimed: Option<u8>,
    },
    /// `message-delivered`: `ids` is a non-empty subset of `RECEIPT_IDS` (bit i: the
    /// i-th; zero is taken as all of them, since the handler refuses an empty list);
    /// a `sender` past `USERS` is the sender of a message in the history (see
    /// [`Model::pick_user`]).
    Receipt {
        session: u8,
        conn: u8,
        sender: u8,
        ids: u8,
    },
    SavePublicKey {
        session: u8,
        conn: u8,
        claimed: Option<u8>,
        key: u8,
        /// The handler passes none (a member keeps its name); the store takes one.
        name: Option<u8>,
    },
    /// `get-public-keys`.
    PeerKeys {
        session: u8,
        conn: u8,
        claimed: Option<u8>,
    },
    /// After this node missed broadcasts.
    Resync {
        session: u8,
        conn: u8,
    },
    /// `set-session-key`: a wrapped key for each user of the bit set `users`.
    SetGroupKeys {
        session: u8,
        conn: u8,
        users: u8,
    },
    /// After `user`'s last connection dropped and the grace passed.
    Departed {
        session: u8,
        user: u8,
    },
    /// `POST /api/session-status`.
    Status {
        session: u8,
        credential: u8,
    },
    /// A `target` past `USERS` is a member of the session (see [`Model::pick_user`]).
    RemoveMember {
        session: u8,
        conn: u8,
        target: u8,
    },
    /// `reset-link`.
    ResetKey {
        session: u8,
        conn: u8,
        key: u8,
    },
    /// `GET /sessions`.
    Summaries,
}

impl Op {
    /// The session the operation acts on, if one.
    pub fn session(&self) -> Option<usize> {
        use Op::*;
        match *self {
            Reserve { session, .. }
            | Join { session, .. }
            | Append { session, .. }
            | Leave { session, .. }
            | Disconnect { session, .. }
            | Close { session, .. }
            | Member { session, .. }
            | Receipt { session, .. }
            | SavePublicKey { session, .. }
            | PeerKeys { session, .. }
            | Resync { session, .. }
            | SetGroupKeys { session, .. }
            | Departed { session, .. }
            | Status { session, .. }
            | RemoveMember { session, .. }
            | ResetKey { session, .. } => Some(ix(session, SESSIONS.len())),
            Reap | Summaries => None,
        }
    }
}

fn ix(i: u8, n: usize) -> usize {
    i as usize % n
}

// ---- the history model ----

/// Where a modelled message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum To {
    All,
    User(usize),
}

#[derive(Debug, Clone)]
pub struct MMessage {
    pub id: usize,
    pub from: usize,
    pub to: Option<To>,
    pub cost: usize,
    pub timestamp: u64,
}

/// What the model expects of `History::append`.
#[derive(Debug, PartialEq, Eq)]
pub enum MAppended {
    Stored { first_of_id: bool },
    Duplicate { timestamp: u64 },
}

/// The bounded history, as docs/protocol.md states it: one copy per (id, sender, recipient),
/// oldest dropped first while either bound is exceeded.
#[derive(Debug, Default, Clone)]
pub struct MHistory {
    pub entries: VecDeque<MMessage>,
}

impl MHistory {
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|m| m.cost).sum()
    }

    pub fn append(&mut self, m: MMessage, max_messages: usize, max_bytes: usize) -> MAppended {
        if let Some(old) = self
            .entries
            .iter()
            .find(|e| e.id == m.id && e.from == m.from && e.to == m.to)
        {
            return MAppended::Duplicate {
                timestamp: old.timestamp,
            };
        }
        let first_of_id = !self
            .entries
            .iter()
            .any(|e| e.id == m.id && e.from == m.from);
        self.entries.push_back(m);
        while self.entries.len() > max_messages || self.bytes() > max_bytes {
            self.entries.pop_front();
        }
        MAppended::Stored { first_of_id }
    }

    /// (id, from, to) of what `user` may read, oldest first.
    pub fn visible_to(&self, user: usize) -> Vec<(usize, usize, Option<To>)> {
        self.entries
            .iter()
            .filter(|m| match m.to {
                None | Some(To::All) => true,
                Some(To::User(to)) => to == user || m.from == user,
            })
            .map(|m| (m.id, m.from, m.to))
            .collect()
    }
}

pub fn user_index(u: &UserId) -> usize {
    USERS
        .iter()
        .position(|x| *x == u.as_str())
        .expect("a user of the table")
}

pub fn id_index(id: &str) -> usize {
    MESSAGE_IDS
        .iter()
        .position(|x| *x == id)
        .expect("an id of the table")
}

pub fn to_model(r: &Option<Recipient>) -> Option<To> {
    r.as_ref().map(|r| match r {
        Recipient::All => To::All,
        Recipient::User(u) => To::User(user_index(u)),
    })
}

pub fn to_recipient(t: Option<To>) -> Option<Recipient> {
    t.map(|t| match t {
        To::All => Recipient::All,
        To::User(u) => Recipient::User(UserId::parse(USERS[u]).unwrap()),
    })
}

/// The (id, from, to) triples of real messages, in order: the in-memory store hands out
/// its messages, the Redis store their JSON as stored (with the sender and recipient it
/// filtered them by).
pub fn triples(view: &HistoryView) -> Vec<(usize, usize, Option<To>)> {
    match view {
        HistoryView::Memory(list) => list
            .iter()
            .map(|m| (id_index(&m.id), user_index(&m.from), to_model(&m.to)))
            .collect(),
        HistoryView::Raw(list) => list
            .iter()
            .map(|m| {
                let json: serde_json::Value =
                    serde_json::from_str(m.json.get()).expect("stored message JSON");
                let to = match m.to.as_str() {
                    "" => None,
                    "all" => Some(To::All),
                    u => Some(To::User(user_index(&UserId::parse(u).unwrap()))),
                };
                let from = user_index(&UserId::parse(&m.from).unwrap());
                (id_index(json["id"].as_str().expect("an id")), from, to)
            })
            .collect(),
    }
}

/// A message as the handler builds it (its timestamp is the step that sent it, so a
/// duplicate's answer names the original exactly).
pub fn message(
    id: usize,
    from: &UserId,
    name: &DisplayName,
    to: Option<To>,
    size: u8,
    timestamp: u64,
) -> Message {
    draft(id, to, size, timestamp).into_message(from, name)
}

/// The message as its sender's event describes it; the store adds who sent it.
pub fn draft(id: usize, to: Option<To>, size: u8, timestamp: u64) -> MessageDraft {
    let body = "x".repeat(3 * size as usize);
    MessageDraft {
        id: MESSAGE_IDS[id].into(),
        to: to_recipient(to),
        encrypted: serde_json::value::to_raw_value(&body).unwrap().into(),
        attachments: Default::default(),
        kind: "text".into(),
        timestamp,
    }
}

// ---- the store model ----

/// Public keys as compared: (userId, key JSON, display name) of present members, sorted.
type MKeys = Vec<(String, String, String)>;
/// History as compared: (id, sender, recipient) in order.
type MTriples = Vec<(usize, usize, Option<To>)>;

#[derive(Debug, Clone)]
struct MMember {
    name: &'static str,
    public_key: Option<&'static str>,
    conns: BTreeSet<usize>,
    /// The resume token its client was sent (the store's own, random): a join naming
    /// it from a new connection must present it.
    token: Option<String>,
}

#[derive(Debug, Clone)]
struct MSession {
    key: String,
    mode: ChatMode,
    creator: Option<usize>,
    members: BTreeMap<usize, MMember>,
    conns: BTreeMap<usize, usize>,
    history: MHistory,
    /// Wrapped group keys by user (members or not: the creator names whom it likes).
    group_keys: BTreeMap<usize, String>,
    /// Users the creator removed: refused for good.
    removed: BTreeSet<usize>,
}

impl MSession {
    fn reserved(key: &str, mode: ChatMode) -> Self {
        MSession {
            key: key.to_owned(),
            mode,
            creator: None,
            members: BTreeMap::new(),
            conns: BTreeMap::new(),
            history: MHistory::default(),
            group_keys: BTreeMap::new(),
            removed: BTreeSet::new(),
        }
    }

    fn present_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| !m.conns.is_empty())
            .count()
    }

    fn is_present(&self, user: usize) -> bool {
        self.members.get(&user).is_some_and(|m| !m.conns.is_empty())
    }

    /// (user, public key JSON, display name) of present members with a key, sorted.
    fn keys(&self) -> MKeys {
        self.members
            .iter()
            .filter(|(_, m)| !m.conns.is_empty())
            .filter_map(|(u, m)| {
                Some((
                    USERS[*u].to_owned(),
                    m.public_key?.to_owned(),
                    m.name.to_owned(),
                ))
            })
            .collect()
    }

    fn password_part(&self) -> &str {
        self.key.split_once(':').map_or(&self.key, |(_, pw)| pw)
    }

    /// Whether a non-creator's credential admits it (rule 3 of "Joining"): an empty
    /// credential is none.
    fn admit(&self, credential: Option<&str>) -> Result<(), ErrorCode> {
        let given = credential.unwrap_or("");
        let key_ok = !given.is_empty() && given == self.key;
        if self.mode == ChatMode::Password {
            let by_password = credential
                .and_then(|c| c.strip_prefix("password:"))
                .is_some_and(|pw| pw == self.password_part());
            if by_password || key_ok {
                Ok(())
            } else {
                Err(ErrorCode::InvalidPassword)
            }
        } else if key_ok {
            Ok(())
        } else {
            Err(ErrorCode::InvalidKey)
        }
    }

    /// One row of `GET /sessions`, without its clock (`idleSecs`).
    fn summary(&self, s: usize) -> MSummary {
        MSummary {
            session: SESSIONS[s].to_owned(),
            mode: self.mode.as_str().to_owned(),
            reserved: self.creator.is_none(),
            members: self.present_count(),
            public_keys: self.keys().len(),
            messages: self.history.entries.len(),
            history_bytes: self.history.bytes(),
        }
    }
}

/// What the model expects of a successful join.
#[derive(Debug, PartialEq, Eq)]
struct MJoined {
    mode: ChatMode,
    is_creator: bool,
    new_member: bool,
    /// The connection had already joined as this user: no history again.
    repeat: bool,
    /// This join created the session.
    created: bool,
    /// This join was issued a resume token (its string is the store's).
    issued: bool,
    /// It replaced the member's public key with another one.
    key_changed: bool,
    display_name: String,
    history: Vec<(usize, usize, Option<To>)>,
    group_key: Option<String>,
    keys: MKeys,
}

/// What the model expects of a leave or disconnect.
#[derive(Debug, PartialEq, Eq)]
struct MLeft {
    user: String,
    member_gone: bool,
    keys: MKeys,
    session_deleted: bool,
}

/// A row of `GET /sessions`, as compared (sorted by session id).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MSummary {
    session: String,
    mode: String,
    reserved: bool,
    members: usize,
    public_keys: usize,
    messages: usize,
    history_bytes: usize,
}

struct Model {
    expire_when_empty: bool,
    /// The presence grace is long (an hour): a member back after a disconnect is not
    /// announced as new. Otherwise zero.
    grace: bool,
    /// The store is the in-memory one, which holds an expired session until it deletes
    /// it (see [`Model::holds`]); Redis expires it itself.
    memory: bool,
    sessions: BTreeMap<usize, MSession>,
    /// `HISTORY_TOTAL_MAX_BYTES` (0: none).
    budget: usize,
    /// Sessions that expired and that the model dropped since (reaped), whose Redis
    /// tombstone may still answer `SESSION_EXPIRED`: "just expired" lasts as long as
    /// each store says (see the module's doc).
    expired_since: BTreeSet<usize>,
}

impl Model {
    fn expired(&self, s: &MSession) -> bool {
        self.expire_when_empty && s.conns.is_empty()
    }

    fn expired_at(&self, s: usize) -> bool {
        self.sessions.get(&s).is_some_and(|x| self.expired(x))
    }

    /// Sessions not expired (those the Redis store counts).
    fn live(&self) -> impl Iterator<Item = (&usize, &MSession)> {
        self.sessions.iter().filter(|(_, s)| !self.expired(s))
    }

    /// The sessions the store holds: memory, every one it has not deleted yet, expired
    /// or not; Redis, the live ones (it expires the others' keys itself).
    fn held(&self) -> Vec<(usize, &MSession)> {
        self.sessions
            .iter()
            .filter(|(_, s)| self.memory || !self.expired(s))
            .map(|(i, s)| (*i, s))
            .collect()
    }

    fn holds(&self, s: usize) -> Option<&MSession> {
        self.sessions
            .get(&s)
            .filter(|x| self.memory || !self.expired(x))
    }

    /// The answer to a join or status of a session that does not exist or expired:
    /// `SESSION_EXPIRED` while the store remembers it expired, else `SESSION_NOT_FOUND`.
    /// Memory remembers exactly the expired sessions it holds; Redis, those whose
    /// tombstone lasts (twice the TTL after their last change): `Err(None)` there, for
    /// either answer.
    fn gone(&self, s: usize) -> Result<ErrorCode, Option<ErrorCode>> {
        if self.memory {
            return Ok(match self.expired_at(s) {
                true => ErrorCode::SessionExpired,
                false => ErrorCode::SessionNotFound,
            });
        }
        match self.expired_at(s) || self.expired_since.contains(&s) {
            true => Err(None),
            false => Ok(ErrorCode::SessionNotFound),
        }
    }

    /// Drops the expired sessions (the reaper, or memory's sweep for a place).
    fn drop_expired(&mut self) -> usize {
        let expired: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| self.expired(s))
            .map(|(i, _)| *i)
            .collect();
        for s in &expired {
            self.sessions.remove(s);
            self.expired_since.insert(*s);
        }
        expired.len()
    }

    /// Puts a new session in place `s` (created, or reserved).
    fn create(&mut self, s: usize, session: MSession) {
        self.sessions.insert(s, session);
        self.expired_since.remove(&s);
    }

    /// Deletes session `s` at once (its last member left, or its creator closed it):
    /// nothing of it remains, not even "just expired".
    fn delete(&mut self, s: usize) -> Option<MSession> {
        self.expired_since.remove(&s);
        self.sessions.remove(&s)
    }

    /// No place for another session: expired ones do not count (memory sweeps them
    /// when it needs their place, Redis does not count them).
    fn full(&mut self) -> bool {
        if self.memory && self.sessions.len() >= MAX_SESSIONS {
            self.drop_expired();
        }
        self.live().count() >= MAX_SESSIONS
    }

    fn reserve(&mut self, s: usize, key: &str, mode: ChatMode) -> Result<(), &'static str> {
        match self.sessions.get(&s) {
            Some(sess) if !self.expired(sess) => return Err("Exists"),
            // Re-created: a new live session, so there must be a place for it (always
            // so in memory, which counts the expired one until it is replaced).
            Some(_) if self.live().count() >= MAX_SESSIONS => return Err("LimitReached"),
            Some(_) => {}
            None => {
                if self.full() {
                    return Err("LimitReached");
                }
            }
        }
        self.create(s, MSession::reserved(key, mode));
        Ok(())
    }

    fn new_for_creator(
        credential: Option<&str>,
        mode: Option<ChatMode>,
    ) -> Result<MSession, ErrorCode> {
        match credential {
            Some(k) if !k.is_empty() => Ok(MSession::reserved(k, mode.unwrap_or_default())),
            _ => Err(ErrorCode::BadRequest),
        }
    }

    /// A join (see docs/protocol.md, "Joining"). `Err(None)`: either "gone" answer
    /// (see [`Model::gone`]).
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        s: usize,
        user: usize,
        conn: usize,
        creator: bool,
        credential: Option<&str>,
        mode: Option<ChatMode>,
        name: Option<&'static str>,
        public_key: Option<&'static str>,
        acked: bool,
        resume: Option<&str>,
    ) -> Result<MJoined, Option<ErrorCode>> {
        let mut created = false;
        match self.sessions.get(&s) {
            Some(sess) if self.expired(sess) => {
                if !creator {
                    let answer = self.gone(s);
                    // Memory forgets it there and then; Redis's keys are gone already,
                    // its index entry (and history bytes) wait for the reaper.
                    if self.memory {
                        self.sessions.remove(&s);
                    }
                    return Err(answer.ok());
                }
                let fresh = Self::new_for_creator(credential, mode)?;
                // As in `reserve`.
                if self.live().count() >= MAX_SESSIONS {
                    return Err(Some(ErrorCode::LimitReached));
                }
                self.create(s, fresh);
                created = true;
            }
            Some(_) => {}
            None => {
                if !creator {
                    return Err(self.gone(s).ok());
                }
                let fresh = Self::new_for_creator(credential, mode)?;
                if self.full() {
                    return Err(Some(ErrorCode::LimitReached));
                }
                self.create(s, fresh);
                created = true;
            }
        }
        let grace = self.grace;
        let sess = self.sessions.get_mut(&s).unwrap();
        if sess.removed.contains(&user) {
            return Err(Some(ErrorCode::Removed));
        }
        let held = sess.members.get(&user).and_then(|m| m.token.as_deref());
        // A member's own token admits it without the key (rule 5, and rule 6).
        let by_token = resume.is_some() && held.is_some() && resume == held;
        if by_token {
        } else if creator {
            // An empty credential is none: it equals no key.
            if credential.is_none_or(str::is_empty) || credential != Some(sess.key.as_str()) {
                return Err(Some(ErrorCode::InvalidKey));
            }
        } else {
            if sess.creator.is_none() {
                return Err(Some(ErrorCode::SessionNotActive));
            }
            sess.admit(credential)?;
        }
        if sess.conns.get(&conn).is_some_and(|u| *u != user) {
            return Err(Some(ErrorCode::Forbidden));
        }
        let repeat = sess.conns.contains_key(&conn);
        let already_present = sess.is_present(user);
        // The identity rule (rule 6, store/resume.rs), for a join on a new connection.
        let mut issued = false;
        if !repeat {
            match sess.members.get(&user) {
                None => issued = acked,
                Some(m) => match (resume, m.token.as_deref()) {
                    (Some(given), Some(token)) if given == token => {}
                    (Some(_), _) => return Err(Some(ErrorCode::Forbidden)),
                    (None, Some(_)) => return Err(Some(ErrorCode::ResumeTokenRequired)),
                    (None, None) if already_present => {
                        return Err(Some(ErrorCode::MemberPresent));
                    }
                    (None, None) => {}
                },
            }
        }
        if !already_present {
            let present = sess.present_count();
            if sess.mode.is_one_to_one() && present >= 2 {
                return Err(Some(ErrorCode::SessionFull));
            }
            if sess.mode == ChatMode::Group && present >= MAX_GROUP_MEMBERS {
                return Err(Some(ErrorCode::LimitReached));
            }
        }
        if creator && sess.creator.is_none() {
            sess.creator = Some(user);
        }
        // Back within the grace (an absent member: it disconnected): not new (rule 7).
        let returning = grace && sess.members.contains_key(&user) && !already_present;
        let member = sess.members.entry(user).or_insert_with(|| MMember {
            name: "",
            public_key: None,
            conns: BTreeSet::new(),
            token: None,
        });
        if let Some(name) = name {
            member.name = name;
        }
        let mut key_changed = false;
        if let Some(key) = public_key {
            key_changed = member.public_key.is_some_and(|old| old != key);
            member.public_key = Some(key);
        }
        member.conns.insert(conn);
        let display_name = member.name.to_owned();
        sess.conns.insert(conn, user);
        // The invariant of one-to-one rooms.
        if sess.mode.is_one_to_one() {
            assert!(sess.present_count() <= 2, "a one-to-one room holds two");
        }
        if sess.mode == ChatMode::Group {
            assert!(sess.present_count() <= MAX_GROUP_MEMBERS);
        }
        Ok(MJoined {
            mode: sess.mode,
            is_creator: sess.creator == Some(user),
            new_member: !already_present && !returning,
            repeat,
            created,
            issued,
            key_changed,
            display_name,
            history: if repeat {
                Vec::new()
            } else {
                sess.history.visible_to(user)
            },
            group_key: sess.group_keys.get(&user).cloned(),
            keys: sess.keys(),
        })
    }

    /// The connection an operation names: `conn` below `CONNS` is that one; from `CONNS`
    /// on, a connection bound in session `s` (for `creator_only` events, the creator's
    /// first, if it has one), else `conn % CONNS`.
    fn pick(&self, s: usize, conn: u8, creator_only: bool) -> usize {
        let c = conn as usize;
        if c < CONNS {
            return c;
        }
        let Some(sess) = self.sessions.get(&s) else {
            return c % CONNS;
        };
        let bound: Vec<usize> = sess
            .conns
            .iter()
            .filter(|(_, u)| !creator_only || sess.creator == Some(**u))
            .map(|(c, _)| *c)
            .collect();
        match bound.is_empty() {
            true => c % CONNS,
            false => bound[(c - CONNS) % bound.len()],
        }
    }

    /// The user an operation names: `user` below `USERS.len()` is that one; from there
    /// on, one of session `s`'s members (`of_history`: one that sent a message still in
    /// its history), if it has any.
    fn pick_user(&self, s: usize, user: u8, of_history: bool) -> usize {
        let u = user as usize;
        if u < USERS.len() {
            return u;
        }
        let users: Vec<usize> = match self.sessions.get(&s) {
            None => Vec::new(),
            Some(sess) if of_history => sess.history.entries.iter().map(|m| m.from).collect(),
            Some(sess) => sess.members.keys().copied().collect(),
        };
        match users.is_empty() {
            true => u % USERS.len(),
            false => users[(u - USERS.len()) % users.len()],
        }
    }

    /// The user `conn` is bound to in `s`, after the claimed-user check: what every
    /// event but a join requires ("Membership", "Identity").
    fn bound(&self, s: usize, conn: usize, claimed: Option<usize>) -> Result<usize, ErrorCode> {
        let sess = self.sessions.get(&s).ok_or(ErrorCode::NotInSession)?;
        let user = *sess.conns.get(&conn).ok_or(ErrorCode::NotInSession)?;
        if claimed.is_some_and(|c| c != user) {
            return Err(ErrorCode::Forbidden);
        }
        Ok(user)
    }

    /// The creator's own connection, for the creator-only events (`FORBIDDEN` for
    /// another member).
    fn creator(&self, s: usize, conn: usize) -> Result<usize, ErrorCode> {
        let user = self.bound(s, conn, None)?;
        match self.sessions[&s].creator == Some(user) {
            true => Ok(user),
            false => Err(ErrorCode::Forbidden),
        }
    }

    fn remove_conn(&mut self, s: usize, conn: usize, forget: bool) -> Option<MLeft> {
        let sess = self.sessions.get_mut(&s)?;
        let user = sess.conns.remove(&conn)?;
        let member = sess.members.get_mut(&user)?;
        member.conns.remove(&conn);
        let member_gone = member.conns.is_empty();
        if member_gone && forget {
            sess.members.remove(&user);
            sess.group_keys.remove(&user);
        }
        Some(MLeft {
            user: USERS[user].to_owned(),
            member_gone,
            keys: if member_gone { sess.keys() } else { Vec::new() },
            session_deleted: false,
        })
    }

    fn leave(&mut self, s: usize, conn: usize, claimed: Option<usize>) -> Result<MLeft, ErrorCode> {
        self.bound(s, conn, claimed)?;
        let mut left = self.remove_conn(s, conn, true).unwrap();
        if self.sessions[&s].conns.is_empty() {
            self.delete(s);
            left.session_deleted = true;
        }
        Ok(left)
    }

    fn close(&mut self, s: usize, conn: usize) -> Result<Vec<String>, ErrorCode> {
        self.creator(s, conn)?;
        let sess = self.delete(s).unwrap();
        Ok(sess.members.keys().map(|u| USERS[*u].to_owned()).collect())
    }

    fn reap(&mut self) -> usize {
        self.drop_expired()
    }

    /// `member`: the connection's user and its name.
    fn member(
        &self,
        s: usize,
        conn: usize,
        claimed: Option<usize>,
    ) -> Result<(String, String), ErrorCode> {
        let user = self.bound(s, conn, claimed)?;
        let name = self.sessions[&s].members[&user].name;
        Ok((USERS[user].to_owned(), name.to_owned()))
    }

    /// `message-delivered`: the ids that name a message of `sender` this member received
    /// (addressed to it or to everyone, never its own), in the order given.
    fn receipt(
        &self,
        s: usize,
        conn: usize,
        sender: usize,
        ids: &[usize],
    ) -> Result<(String, Vec<String>), ErrorCode> {
        let user = self.bound(s, conn, None)?;
        let history = &self.sessions[&s].history;
        let received = ids
            .iter()
            .filter(|id| {
                history.entries.iter().any(|m| {
                    m.id == **id
                        && m.from == sender
                        && sender != user
                        && match m.to {
                            None | Some(To::All) => true,
                            Some(To::User(to)) => to == user,
                        }
                })
            })
            .map(|id| RECEIPT_IDS[*id].to_owned())
            .collect();
        Ok((USERS[user].to_owned(), received))
    }

    /// `save-public-key`: stores the key (and a name, if given); the present keys.
    fn save_public_key(
        &mut self,
        s: usize,
        conn: usize,
        claimed: Option<usize>,
        key: &'static str,
        name: Option<&'static str>,
    ) -> Result<MKeys, ErrorCode> {
        let user = self.bound(s, conn, claimed)?;
        let sess = self.sessions.get_mut(&s).unwrap();
        let member = sess.members.get_mut(&user).unwrap();
        member.public_key = Some(key);
        if let Some(name) = name {
            member.name = name;
        }
        Ok(sess.keys())
    }

    /// `get-public-keys`: every present member's key but the asker's own.
    fn peer_keys(&self, s: usize, conn: usize, claimed: Option<usize>) -> Result<MKeys, ErrorCode> {
        let user = self.bound(s, conn, claimed)?;
        let mut keys = self.sessions[&s].keys();
        keys.retain(|(u, _, _)| *u != USERS[user]);
        Ok(keys)
    }

    /// A resync: the user, the present keys (its own too) and the history it may read.
    fn resync(&self, s: usize, conn: usize) -> Result<(String, MKeys, MTriples), ErrorCode> {
        let user = self.bound(s, conn, None)?;
        let sess = &self.sessions[&s];
        Ok((
            USERS[user].to_owned(),
            sess.keys(),
            sess.history.visible_to(user),
        ))
    }

    /// `set-session-key`: the creator replaces the wrapped keys.
    fn set_group_keys(
        &mut self,
        s: usize,
        conn: usize,
        keys: BTreeMap<usize, String>,
    ) -> Result<(), ErrorCode> {
        self.creator(s, conn)?;
        self.sessions.get_mut(&s).unwrap().group_keys = keys;
        Ok(())
    }

    /// After `user`'s last connection dropped: the present keys if it is still gone,
    /// `None` if it came back or the session is gone (nobody to tell).
    fn departed(&self, s: usize, user: usize) -> Option<MKeys> {
        let sess = self.holds(s)?;
        (!sess.is_present(user)).then(|| sess.keys())
    }

    /// `POST /api/session-status`: what a join with `credential` would be told, short
    /// of joining: the mode, and whether a credential was checked (an empty one is none).
    fn status(
        &self,
        s: usize,
        credential: Option<&str>,
    ) -> Result<(ChatMode, bool), Option<ErrorCode>> {
        let Some(sess) = self.sessions.get(&s).filter(|x| !self.expired(x)) else {
            return Err(self.gone(s).ok());
        };
        let Some(credential) = credential.filter(|c| !c.is_empty()) else {
            return Ok((sess.mode, false));
        };
        if sess.creator.is_none() {
            return Err(Some(ErrorCode::SessionNotActive));
        }
        sess.admit(Some(credential))?;
        Ok((sess.mode, true))
    }

    /// `remove-member`: the creator takes `target` out for good.
    fn remove_member(
        &mut self,
        s: usize,
        conn: usize,
        target: usize,
    ) -> Result<(String, MKeys), ErrorCode> {
        let by = self.creator(s, conn)?;
        if by == target {
            return Err(ErrorCode::BadRequest);
        }
        let sess = self.sessions.get_mut(&s).unwrap();
        let member = sess
            .members
            .remove(&target)
            .ok_or(ErrorCode::NotInSession)?;
        sess.conns.retain(|_, u| *u != target);
        sess.group_keys.remove(&target);
        sess.removed.insert(target);
        Ok((member.name.to_owned(), sess.keys()))
    }

    /// `reset-link`: the creator replaces the join credential (a password room's must
    /// have a password part).
    fn reset_key(&mut self, s: usize, conn: usize, key: &str) -> Result<(), ErrorCode> {
        self.creator(s, conn)?;
        let sess = self.sessions.get_mut(&s).unwrap();
        if sess.mode == ChatMode::Password && !key.contains(':') {
            return Err(ErrorCode::BadRequest);
        }
        sess.key = key.to_owned();
        Ok(())
    }

    /// `HISTORY_TOTAL_MAX_BYTES` after a message is stored: while the history bytes of
    /// all sessions exceed the budget, the largest history loses its oldest messages,
    /// down to the next largest, until 90 % of the budget (docs/configuration.md). Of two
    /// equal histories, the later session id's pays first (as the in-memory store does).
    fn enforce_budget(&mut self) {
        let total = |m: &Self| {
            m.sessions
                .values()
                .map(|s| s.history.bytes())
                .sum::<usize>()
        };
        if self.budget == 0 || total(self) <= self.budget {
            return;
        }
        let target = self.budget - self.budget / 10;
        while total(self) > target {
            let mut sizes: Vec<(usize, usize)> = self
                .sessions
                .iter()
                .map(|(i, s)| (s.history.bytes(), *i))
                .filter(|(b, _)| *b > 0)
                .collect();
            sizes.sort();
            let Some((_, largest)) = sizes.pop() else {
                break;
            };
            let next = sizes.last().map_or(0, |(b, _)| *b);
            loop {
                let bytes = self.sessions[&largest].history.bytes();
                if bytes == 0 || bytes < next || total(self) <= target {
                    break;
                }
                let history = &mut self.sessions.get_mut(&largest).unwrap().history;
                history.entries.pop_front();
            }
        }
    }

    /// `GET /sessions`: a row per session held, sorted.
    fn summaries(&self) -> Vec<MSummary> {
        let mut rows: Vec<MSummary> = self.held().iter().map(|(i, s)| s.summary(*i)).collect();
        rows.sort();
        rows
    }
}

fn keys_of(list: &[blindrelay::protocol::PublicKeyEntry]) -> MKeys {
    let mut v: Vec<_> = list
        .iter()
        .map(|k| {
            (
                k.user_id.to_string(),
                k.public_key.get().to_owned(),
                k.display_name.as_str().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn code<T>(r: Result<T, blindrelay::protocol::AppError>) -> Result<T, ErrorCode> {
    r.map_err(|e| e.error)
}

/// The limits of a run: the model's bounds, and a TTL of one hour (nothing expires
/// during a run), a presence grace of an hour and `HISTORY_TOTAL_MAX_BYTES`, or a TTL of
/// `ttl_when_empty` (see [`run_on`]), no grace and no total budget.
///
/// BY DESIGN, no budget where sessions expire: an expired session's history is gone
/// from Redis at once, while memory holds (and trims) it until it deletes the session.
/// Nor on a Redis Cluster (the caller's choice): there the reaper sheds at its tick,
/// from a total that hears each session by grains (docs/scaling.md).
pub fn limits(expire_when_empty: bool, ttl_when_empty: Duration) -> StoreLimits {
    let (ttl, grace, budget) = match expire_when_empty {
        true => (ttl_when_empty, Duration::ZERO, 0),
        false => (
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            HISTORY_TOTAL_MAX_BYTES,
        ),
    };
    StoreLimits {
        session_ttl: ttl,
        unused_session_ttl: ttl,
        max_sessions: MAX_SESSIONS,
        max_group_members: MAX_GROUP_MEMBERS,
        history_max_messages: HISTORY_MAX_MESSAGES,
        history_max_bytes: HISTORY_MAX_BYTES,
        history_total_max_bytes: budget,
        presence_grace: grace,
    }
}

/// Runs `ops` against a fresh in-memory store and the model (TTL zero when
/// `expire_when_empty`); panics at the first difference.
pub fn run(ops: &[Op], expire_when_empty: bool) {
    let store = Store::Memory(MemoryStore::new(limits(expire_when_empty, Duration::ZERO)));
    ready(run_on(&store, ops, expire_when_empty));
}

/// The output of a future that never waits (every in-memory operation).
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("an in-memory store operation waited"),
    }
}

/// docs/protocol.md, "Error codes": the words of each join refusal, which the End2End
/// Chat app shows as they are (`INVALID_KEY` has two: `wrong_key` is the one that
/// applies). `None` for a refusal that table does not word.
fn join_refusal_words(code: ErrorCode, wrong_key: &'static str) -> Option<&'static str> {
    Some(match code {
        ErrorCode::SessionNotFound => "Session not found. Please check the session link.",
        ErrorCode::InvalidKey => wrong_key,
        ErrorCode::InvalidPassword => "Incorrect password. Please check and try again.",
        ErrorCode::SessionNotActive => {
            "Room not active yet. Please wait for the creator to join first."
        }
        ErrorCode::SessionFull => "This room is full. Only 2 members allowed.",
        ErrorCode::SessionExpired => "This session has expired. Please start a new one.",
        ErrorCode::Removed => "You were removed from this room.",
        _ => return None,
    })
}

const INVALID_KEY: &str = "Invalid authentication key. Please check your link and try again.";
/// A creator's key that differs from the session's.
const CREATOR_KEY_MISMATCH: &str = "Session key mismatch. This should not happen.";

/// Whether `real` is `expected`, where `Err(None)` in `expected` stands for either
/// answer of a session gone ([`Model::gone`]).
fn matches_gone<T: PartialEq>(
    real: &Result<T, ErrorCode>,
    expected: &Result<T, Option<ErrorCode>>,
) -> bool {
    match (real, expected) {
        (Err(ErrorCode::SessionExpired | ErrorCode::SessionNotFound), Err(None)) => true,
        (Err(r), Err(Some(e))) => r == e,
        (Ok(r), Ok(e)) => r == e,
        _ => false,
    }
}

/// Runs `ops` against `store`, which must be fresh (no session under its ids) and have
/// [`limits`], and the model; panics at the first difference.
///
/// With `expire_when_empty`, a session with no connected member must be expired by the
/// time the next operation runs: the in-memory store gets a TTL of zero; the Redis store,
/// whose expiry is in whole milliseconds of its own clock, a TTL of a millisecond or so,
/// and this waits it out after each operation that leaves its session empty (before it
/// reads the counts).
pub async fn run_on(store: &Store, ops: &[Op], expire_when_empty: bool) {
    let ttl = store.limits().session_ttl;
    let started = std::time::Instant::now();
    let memory = matches!(store, Store::Memory(_));
    let mut model = Model {
        expire_when_empty,
        grace: !store.limits().presence_grace.is_zero(),
        memory,
        sessions: BTreeMap::new(),
        budget: store.limits().history_total_max_bytes,
        expired_since: BTreeSet::new(),
    };
    // The last resume token a join of (session, user) was issued, as the client keeps it.
    let mut tokens: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let conns: Vec<ConnId> = (0..CONNS).map(|_| ConnId::new()).collect();
    let sid = |i: usize| SessionId::parse(SESSIONS[i]).unwrap();
    let uid = |i: usize| UserId::parse(USERS[i]).unwrap();
    let left = |l: Left| MLeft {
        user: l.user.to_string(),
        member_gone: l.member_gone,
        keys: keys_of(&l.keys),
        session_deleted: l.session_deleted,
    };
    let user_of = |i: Option<u8>| i.map(|u| ix(u, USERS.len()));
    assert!(store.ping().await, "the store answers");

    for (step, op) in ops.iter().enumerate() {
        let ctx = || format!("step {step}: {op:?}");
        match *op {
            Op::Reserve { session, key, mode } => {
                let (s, key, mode) = (
                    ix(session, SESSIONS.len()),
                    RESERVE_KEYS[ix(key, RESERVE_KEYS.len())],
                    MODES[ix(mode, MODES.len())],
                );
                let real = store
                    .reserve(sid(s), Secret::from(key), mode)
                    .await
                    .map_err(|e| match e {
                        blindrelay::store::ReserveError::Exists => "Exists",
                        blindrelay::store::ReserveError::LimitReached => "LimitReached",
                        // Only the Redis store cannot reach its state.
                        blindrelay::store::ReserveError::Unavailable => "Unavailable",
                    });
                assert_eq!(real, model.reserve(s, key, mode), "{}", ctx());
            }
            Op::Join {
                session,
                user,
                conn,
                creator,
                credential,
                mode,
                name,
                public_key,
                acked,
                resume,
            } => {
                let s = ix(session, SESSIONS.len());
                let u = ix(user, USERS.len());
                let c = ix(conn, CONNS);
                let credential = CREDENTIALS[ix(credential, CREDENTIALS.len())];
                let mode = mode.map(|m| MODES[ix(m, MODES.len())]);
                let name = name.map(|n| NAMES[ix(n, NAMES.len())]);
                let key = public_key.map(|k| PUBLIC_KEYS[ix(k, PUBLIC_KEYS.len())]);
                let resume = resume.map(|right| match right {
                    true => tokens
                        .get(&(s, u))
                        .cloned()
                        .unwrap_or_else(|| "never-issued".to_owned()),
                    false => "a-wrong-token".to_owned(),
                });
                let real = store
                    .join(JoinRequest {
                        session: sid(s),
                        user: uid(u),
                        display_name: name.map(DisplayName::new),
                        public_key: key
                            .map(|k| RawValue::from_string(k.to_owned()).unwrap().into()),
                        is_creator: creator,
                        credential: credential.map(Secret::from),
                        chat_mode: mode,
                        resume: resume.as_deref().map(Secret::from),
                        acked,
                        conn: conns[c],
                    })
                    .await;
                if let Err(e) = &real {
                    let wrong_key = match creator {
                        true => CREATOR_KEY_MISMATCH,
                        false => INVALID_KEY,
                    };
                    if let Some(words) = join_refusal_words(e.error, wrong_key) {
                        assert_eq!(e.message, words, "{}: the words of {:?}", ctx(), e.error);
                    }
                }
                let real = code(real);
                let token = real.as_ref().ok().and_then(|j| j.resume_token.clone());
                let real = real.map(|j| MJoined {
                    mode: j.mode,
                    is_creator: j.is_creator,
                    new_member: j.new_member,
                    repeat: j.repeat,
                    created: j.created,
                    issued: j.resume_token.is_some(),
                    key_changed: j.key_changed,
                    display_name: j.display_name.as_str().to_owned(),
                    history: triples(&j.history),
                    group_key: j.group_key.map(|k| k.get().to_owned()),
                    keys: keys_of(&j.keys),
                });
                let expected = model.join(
                    s,
                    u,
                    c,
                    creator,
                    credential,
                    mode,
                    name,
                    key,
                    acked,
                    resume.as_deref(),
                );
                if let Ok(j) = &real {
                    for (_, from, to) in &j.history {
                        if let Some(To::User(to)) = to {
                            assert!(
                                *to == u || *from == u,
                                "{}: another recipient's private copy",
                                ctx()
                            );
                        }
                    }
                }
                assert!(
                    matches_gone(&real, &expected),
                    "{}: {real:?} where the model expects {expected:?}",
                    ctx()
                );
                if let Some(token) = token {
                    // The store's token, which the model's member now holds.
                    let member = model.sessions.get_mut(&s).unwrap().members.get_mut(&u);
                    member.unwrap().token = Some(token.clone());
                    tokens.insert((s, u), token);
                }
            }
            Op::Append {
                session,
                conn,
                claimed,
                id,
                to,
                size,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let claimed = user_of(claimed);
                let id = ix(id, MESSAGE_IDS.len());
                let to = to.map(|t| match ix(t, USERS.len() + 1) {
                    i if i == USERS.len() => To::All,
                    i => To::User(i),
                });
                let timestamp = step as u64 + 1;
                let claimed_id = claimed.map(uid);
                let draft = draft(id, to, size, timestamp);
                assert!(!store.publishes(&draft), "{}: no bus here", ctx());
                let real = code(
                    store
                        .append_message(&sid(s), conns[c], claimed_id.as_ref(), draft)
                        .await,
                );
                let expected = match model.bound(s, c, claimed) {
                    Err(e) => Err(e),
                    Ok(user) => {
                        let sess = model.sessions.get_mut(&s).unwrap();
                        let name = DisplayName::new(sess.members[&user].name);
                        let cost = message_cost(&message(id, &uid(user), &name, to, size, 0));
                        if cost > HISTORY_MAX_BYTES {
                            Err(ErrorCode::PayloadTooLarge)
                        } else {
                            if let Ok(Appended::Stored { message, .. }) = &real {
                                let sender = (message.from.as_str(), &message.sender_display_name);
                                assert_eq!(sender, (USERS[user], &name), "{}: sender", ctx());
                            }
                            Ok(sess.history.append(
                                MMessage {
                                    id,
                                    from: user,
                                    to,
                                    cost,
                                    timestamp,
                                },
                                HISTORY_MAX_MESSAGES,
                                HISTORY_MAX_BYTES,
                            ))
                        }
                    }
                };
                let real = real.map(|a| match a {
                    Appended::Stored {
                        message,
                        first_of_id,
                    } => {
                        let got = (id_index(&message.id), to_model(&message.to));
                        assert_eq!(got, (id, to), "{}", ctx());
                        assert_eq!(message.timestamp, timestamp, "{}", ctx());
                        MAppended::Stored { first_of_id }
                    }
                    Appended::Duplicate { timestamp } => MAppended::Duplicate { timestamp },
                });
                assert_eq!(real, expected, "{}", ctx());
                if let Ok(MAppended::Stored { .. }) = expected {
                    model.enforce_budget();
                }
            }
            Op::Leave {
                session,
                conn,
                claimed,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let claimed = user_of(claimed);
                let claimed_id = claimed.map(uid);
                let real = code(store.leave(&sid(s), conns[c], claimed_id.as_ref()).await);
                assert_eq!(real.map(left), model.leave(s, c, claimed), "{}", ctx());
            }
            Op::Disconnect { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let real = code(store.disconnect(&sid(s), conns[c]).await);
                let expected = Ok(model.remove_conn(s, c, false));
                assert_eq!(real.map(|l| l.map(left)), expected, "{}", ctx());
            }
            Op::Close { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, true);
                let real = code(store.close(&sid(s), conns[c]).await).map(|mut users| {
                    users.sort();
                    users.iter().map(|u| u.to_string()).collect::<Vec<_>>()
                });
                assert_eq!(real, model.close(s, c), "{}", ctx());
            }
            Op::Reap => {
                assert_eq!(store.reap().await, model.reap(), "{}", ctx());
            }
            Op::Member {
                session,
                conn,
                claimed,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let claimed = user_of(claimed);
                let claimed_id = claimed.map(uid);
                let real = code(store.member(&sid(s), conns[c], claimed_id.as_ref()).await)
                    .map(|(u, n)| (u.to_string(), n.as_str().to_owned()));
                assert_eq!(real, model.member(s, c, claimed), "{}", ctx());
            }
            Op::Receipt {
                session,
                conn,
                sender,
                ids,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let sender = model.pick_user(s, sender, true);
                let mask = match ids as usize % (1 << RECEIPT_IDS.len()) {
                    0 => (1 << RECEIPT_IDS.len()) - 1,
                    m => m,
                };
                let ids: Vec<usize> = (0..RECEIPT_IDS.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .collect();
                let named: Vec<String> = ids.iter().map(|i| RECEIPT_IDS[*i].to_owned()).collect();
                let real = code(store.receipt(&sid(s), conns[c], &uid(sender), &named).await)
                    .map(|(u, ids)| (u.to_string(), ids));
                assert_eq!(real, model.receipt(s, c, sender, &ids), "{}", ctx());
            }
            Op::SavePublicKey {
                session,
                conn,
                claimed,
                key,
                name,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let claimed = user_of(claimed);
                let claimed_id = claimed.map(uid);
                let key = PUBLIC_KEYS[ix(key, PUBLIC_KEYS.len())];
                let name = name.map(|n| NAMES[ix(n, NAMES.len())]);
                let real = code(
                    store
                        .save_public_key(
                            &sid(s),
                            conns[c],
                            claimed_id.as_ref(),
                            RawValue::from_string(key.to_owned()).unwrap().into(),
                            name.map(DisplayName::new),
                        )
                        .await,
                )
                .map(|k| keys_of(&k));
                let expected = model.save_public_key(s, c, claimed, key, name);
                assert_eq!(real, expected, "{}", ctx());
            }
            Op::PeerKeys {
                session,
                conn,
                claimed,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let claimed = user_of(claimed);
                let claimed_id = claimed.map(uid);
                let real = code(
                    store
                        .peer_keys(&sid(s), conns[c], claimed_id.as_ref())
                        .await,
                )
                .map(|k| keys_of(&k));
                assert_eq!(real, model.peer_keys(s, c, claimed), "{}", ctx());
            }
            Op::Resync { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, false);
                let real = code(store.resync(&sid(s), conns[c]).await).map(|r| {
                    r.map(|(u, keys, history)| (u.to_string(), keys_of(&keys), triples(&history)))
                });
                // BY DESIGN: memory never misses a broadcast, so it has nothing to resend.
                let expected = match memory {
                    true => Ok(None),
                    false => model.resync(s, c).map(Some),
                };
                assert_eq!(real, expected, "{}", ctx());
            }
            Op::SetGroupKeys {
                session,
                conn,
                users,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, true);
                let keys: BTreeMap<usize, String> = (0..USERS.len())
                    .filter(|u| users & (1 << u) != 0)
                    .map(|u| (u, format!("\"gk{step}-{u}\"")))
                    .collect();
                let wrapped: BTreeMap<UserId, Box<RawValue>> = keys
                    .iter()
                    .map(|(u, k)| (uid(*u), RawValue::from_string(k.clone()).unwrap()))
                    .collect();
                let real = code(store.set_group_keys(&sid(s), conns[c], &wrapped).await);
                assert_eq!(real, model.set_group_keys(s, c, keys), "{}", ctx());
            }
            Op::Departed { session, user } => {
                let s = ix(session, SESSIONS.len());
                let u = ix(user, USERS.len());
                let real =
                    code(store.departed(&sid(s), &uid(u)).await).map(|k| k.map(|k| keys_of(&k)));
                assert_eq!(real, Ok(model.departed(s, u)), "{}", ctx());
            }
            Op::Status {
                session,
                credential,
            } => {
                let s = ix(session, SESSIONS.len());
                let credential = CREDENTIALS[ix(credential, CREDENTIALS.len())];
                let real = code(
                    store
                        .status(&sid(s), credential.map(Secret::from).as_ref())
                        .await,
                );
                let expected = model.status(s, credential);
                assert!(
                    matches_gone(&real, &expected),
                    "{}: {real:?} where the model expects {expected:?}",
                    ctx()
                );
            }
            Op::RemoveMember {
                session,
                conn,
                target,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, true);
                let target = model.pick_user(s, target, false);
                let real = code(store.remove_member(&sid(s), conns[c], &uid(target)).await)
                    .map(|r| (r.display_name.as_str().to_owned(), keys_of(&r.keys)));
                assert_eq!(real, model.remove_member(s, c, target), "{}", ctx());
            }
            Op::ResetKey { session, conn, key } => {
                let s = ix(session, SESSIONS.len());
                let c = model.pick(s, conn, true);
                let key = RESET_KEYS[ix(key, RESET_KEYS.len())];
                let real = code(store.reset_key(&sid(s), conns[c], Secret::from(key)).await);
                assert_eq!(real, model.reset_key(s, c, key), "{}", ctx());
            }
            Op::Summaries => {
                let real = code(store.summaries().await).expect("summaries");
                let elapsed = started.elapsed().as_secs();
                for row in &real {
                    assert!(
                        row.idle_secs <= elapsed,
                        "{}: idle {}",
                        ctx(),
                        row.idle_secs
                    );
                }
                let mut real: Vec<MSummary> = real
                    .into_iter()
                    .map(|r| MSummary {
                        session: r.session_id.to_string(),
                        mode: r.chat_mode.as_str().to_owned(),
                        reserved: r.reserved,
                        members: r.members,
                        public_keys: r.public_keys,
                        messages: r.messages,
                        history_bytes: r.history_bytes,
                    })
                    .collect();
                real.sort();
                assert_eq!(real, model.summaries(), "{}", ctx());
            }
        }

        // Counts over every session, once the session this acted on is expired if it has
        // no connected member (none other can have been given a new TTL).
        let acted_on = op.session().and_then(|s| model.sessions.get(&s));
        if !ttl.is_zero() && acted_on.is_some_and(|s| model.expired(s)) {
            std::thread::sleep(ttl + Duration::from_millis(1));
        }
        let stats = code(store.stats().await).expect("stats");
        let active = model
            .sessions
            .values()
            .filter(|s| !s.conns.is_empty())
            .count();
        // BY DESIGN: the sessions each store holds (see the module's doc).
        let held = model.held();
        let by_mode = |m: ChatMode| held.iter().filter(|(_, s)| s.mode == m).count();
        let bytes: usize = model.sessions.values().map(|s| s.history.bytes()).sum();
        if let Store::Memory(store) = store {
            assert_eq!(store.len(), model.sessions.len(), "{}: len", ctx());
        }
        assert_eq!(stats.sessions, held.len(), "{}: sessions", ctx());
        assert_eq!(stats.active, active, "{}: active", ctx());
        assert_eq!(stats.group, by_mode(ChatMode::Group), "{}: group", ctx());
        assert_eq!(stats.private, by_mode(ChatMode::Private), "{}", ctx());
        assert_eq!(stats.password, by_mode(ChatMode::Password), "{}", ctx());
        match store {
            // A cluster's total hears a session's size only when it moved by a grain
            // (src/store/redis/mod.rs, `account_grain`).
            Store::Redis(s) if s.is_cluster() => {
                let slack =
                    model.sessions.len() * blindrelay::store::redis::account_grain(s.limits());
                assert!(
                    stats.history_bytes.abs_diff(bytes) <= slack,
                    "{}: history bytes {} against {bytes}, beyond {slack}",
                    ctx(),
                    stats.history_bytes
                );
            }
            _ => assert_eq!(stats.history_bytes, bytes, "{}: history bytes", ctx()),
        }
        assert!(stats.sessions <= MAX_SESSIONS, "{}", ctx());
        // Of the sessions the model has, expired or not: equal to `stats.sessions` in
        // memory (asserted above).
        assert!(
            stats.history_bytes <= model.sessions.len() * HISTORY_MAX_BYTES,
            "{}: history bound",
            ctx()
        );
        for s in model.sessions.values() {
            assert!(s.history.entries.len() <= HISTORY_MAX_MESSAGES);
            if s.mode.is_one_to_one() {
                assert!(s.present_count() <= 2, "{}: one-to-one room", ctx());
            }
        }
    }
}
