//! A reference model of the session store (`blindrelay::store::Store`, in memory or on
//! Redis), shared by the property tests (`tests/store_props.rs`, against both stores) and
//! the fuzz target (`fuzz/fuzz_targets/store_model.rs`, against the in-memory store).
//!
//! A run drives a real store and the model with the same operations, on a small fixed
//! set of session ids, users and connections (so that operations collide), and asserts
//! after every operation that both answered the same (every error code, every field of
//! `Joined`, `Left`, `Appended`, `close`'s member list, `reap`'s count) and that the
//! store's counts (`stats()`, and `len()` in memory) equal the model's. The model also
//! asserts the invariants it can state exactly (two present members at most in private
//! and password rooms, history bounds).
//!
//! Time: the TTL is either one hour (nothing expires during a run) or as good as zero (a
//! session with no connected member is expired by the next operation), so expiry is
//! deterministic; see [`run_on`].
//!
//! Where the Redis store answers otherwise than the model (and the in-memory store), the
//! run excludes that exact case and says why, marked `DRIFT(n)` in [`run_on`].
//!
//! Only `reserve`, `join`, `append_message`, `leave`, `disconnect`, `close`, `reap` and
//! `stats` of [`Store`] are used, and `MemoryStore::{new, len}` (the signatures the store
//! keeps stable).

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
pub const MODES: [ChatMode; 3] = [ChatMode::Group, ChatMode::Private, ChatMode::Password];
pub const NAMES: [&str; 3] = ["", "Alice", "Bob"];
pub const MESSAGE_IDS: [&str; 3] = ["m0", "m1", "m2"];

pub const MAX_SESSIONS: usize = 3;
pub const MAX_GROUP_MEMBERS: usize = 3;
pub const HISTORY_MAX_MESSAGES: usize = 5;
pub const HISTORY_MAX_BYTES: usize = 700;

/// One store operation; every index is taken modulo the size of its table.
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
        public_key: bool,
        /// The join asked for an ack: a new member made by it holds a resume token
        /// (the model's clients never present one).
        acked: bool,
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

#[derive(Debug, Clone)]
struct MMember {
    name: &'static str,
    public_key: Option<String>,
    conns: BTreeSet<usize>,
    /// It was sent a resume token: a join naming it must present it.
    holds: bool,
}

#[derive(Debug, Clone)]
struct MSession {
    key: String,
    mode: ChatMode,
    creator: Option<usize>,
    members: BTreeMap<usize, MMember>,
    conns: BTreeMap<usize, usize>,
    history: MHistory,
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
        }
    }

    fn present_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| !m.conns.is_empty())
            .count()
    }

    /// (user, public key JSON, display name) of present members with a key, sorted.
    fn keys(&self) -> Vec<(String, String, String)> {
        self.members
            .iter()
            .filter(|(_, m)| !m.conns.is_empty())
            .filter_map(|(u, m)| {
                Some((
                    USERS[*u].to_owned(),
                    m.public_key.clone()?,
                    m.name.to_owned(),
                ))
            })
            .collect()
    }

    fn password_part(&self) -> &str {
        self.key.split_once(':').map_or(&self.key, |(_, pw)| pw)
    }

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
}

/// What the model expects of a successful join.
#[derive(Debug, PartialEq, Eq)]
struct MJoined {
    mode: ChatMode,
    is_creator: bool,
    new_member: bool,
    /// The connection had already joined as this user: no history again.
    repeat: bool,
    display_name: String,
    history: Vec<(usize, usize, Option<To>)>,
    keys: Vec<(String, String, String)>,
}

/// What the model expects of a leave or disconnect.
#[derive(Debug, PartialEq, Eq)]
struct MLeft {
    user: String,
    member_gone: bool,
    keys: Vec<(String, String, String)>,
    session_deleted: bool,
}

struct Model {
    expire_when_empty: bool,
    /// The memory store deletes expired sessions when it needs their place; Redis
    /// never counts them, and keeps their data (and history bytes) until the reaper.
    sweeps_when_full: bool,
    sessions: BTreeMap<usize, MSession>,
}

impl Model {
    fn expired(&self, s: &MSession) -> bool {
        self.expire_when_empty && s.conns.is_empty()
    }

    /// Sessions not expired (those the Redis store counts, see DRIFT(2)).
    fn live(&self) -> impl Iterator<Item = &MSession> {
        self.sessions.values().filter(|s| !self.expired(s))
    }

    /// No place for another session: expired ones awaiting the reaper do not count.
    fn full(&mut self) -> bool {
        if !self.sweeps_when_full {
            return self.live().count() >= MAX_SESSIONS;
        }
        if self.sessions.len() >= MAX_SESSIONS {
            let expire = self.expire_when_empty;
            self.sessions.retain(|_, s| !(expire && s.conns.is_empty()));
        }
        self.sessions.len() >= MAX_SESSIONS
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
        self.sessions.insert(s, MSession::reserved(key, mode));
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
        public_key: Option<String>,
        acked: bool,
    ) -> Result<MJoined, ErrorCode> {
        match self.sessions.get(&s) {
            Some(sess) if self.expired(sess) => {
                if !creator {
                    self.sessions.remove(&s);
                    return Err(ErrorCode::SessionExpired);
                }
                let fresh = Self::new_for_creator(credential, mode)?;
                // As in `reserve`.
                if self.live().count() >= MAX_SESSIONS {
                    return Err(ErrorCode::LimitReached);
                }
                self.sessions.insert(s, fresh);
            }
            Some(_) => {}
            None => {
                if !creator {
                    return Err(ErrorCode::SessionNotFound);
                }
                let fresh = Self::new_for_creator(credential, mode)?;
                if self.full() {
                    return Err(ErrorCode::LimitReached);
                }
                self.sessions.insert(s, fresh);
            }
        }
        let sess = self.sessions.get_mut(&s).unwrap();
        if creator {
            if credential != Some(sess.key.as_str()) {
                return Err(ErrorCode::InvalidKey);
            }
        } else {
            if sess.creator.is_none() {
                return Err(ErrorCode::SessionNotActive);
            }
            sess.admit(credential)?;
        }
        if sess.conns.get(&conn).is_some_and(|u| *u != user) {
            return Err(ErrorCode::Forbidden);
        }
        let repeat = sess.conns.contains_key(&conn);
        let already_present = sess.members.get(&user).is_some_and(|m| !m.conns.is_empty());
        // The identity rule (store/resume.rs); the model's clients present no token.
        if !repeat && sess.members.get(&user).is_some_and(|m| m.holds) {
            return Err(ErrorCode::ResumeTokenRequired);
        }
        if !repeat && already_present {
            return Err(ErrorCode::MemberPresent);
        }
        if !already_present {
            let present = sess.present_count();
            if sess.mode.is_one_to_one() && present >= 2 {
                return Err(ErrorCode::SessionFull);
            }
            if sess.mode == ChatMode::Group && present >= MAX_GROUP_MEMBERS {
                return Err(ErrorCode::LimitReached);
            }
        }
        if creator && sess.creator.is_none() {
            sess.creator = Some(user);
        }
        let member = sess.members.entry(user).or_insert_with(|| MMember {
            name: "",
            public_key: None,
            conns: BTreeSet::new(),
            holds: acked,
        });
        if let Some(name) = name {
            member.name = name;
        }
        if let Some(key) = public_key {
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
            new_member: !already_present,
            repeat,
            display_name,
            history: if repeat {
                Vec::new()
            } else {
                sess.history.visible_to(user)
            },
            keys: sess.keys(),
        })
    }

    /// The user `conn` is bound to in `s`, after the claimed-user check.
    fn bound(&self, s: usize, conn: usize, claimed: Option<usize>) -> Result<usize, ErrorCode> {
        let sess = self.sessions.get(&s).ok_or(ErrorCode::NotInSession)?;
        let user = *sess.conns.get(&conn).ok_or(ErrorCode::NotInSession)?;
        if claimed.is_some_and(|c| c != user) {
            return Err(ErrorCode::Forbidden);
        }
        Ok(user)
    }

    fn remove_conn(&mut self, s: usize, conn: usize, forget: bool) -> Option<MLeft> {
        let sess = self.sessions.get_mut(&s)?;
        let user = sess.conns.remove(&conn)?;
        let member = sess.members.get_mut(&user)?;
        member.conns.remove(&conn);
        let member_gone = member.conns.is_empty();
        if member_gone && forget {
            sess.members.remove(&user);
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
            self.sessions.remove(&s);
            left.session_deleted = true;
        }
        Ok(left)
    }

    fn close(&mut self, s: usize, conn: usize) -> Result<Vec<String>, ErrorCode> {
        let user = self.bound(s, conn, None)?;
        if self.sessions[&s].creator != Some(user) {
            return Err(ErrorCode::Forbidden);
        }
        let sess = self.sessions.remove(&s).unwrap();
        Ok(sess.members.keys().map(|u| USERS[*u].to_owned()).collect())
    }

    fn reap(&mut self) -> usize {
        let before = self.sessions.len();
        if self.expire_when_empty {
            self.sessions.retain(|_, s| !s.conns.is_empty());
        }
        before - self.sessions.len()
    }
}

fn keys_of(list: &[blindrelay::protocol::PublicKeyEntry]) -> Vec<(String, String, String)> {
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
/// during a run) or `ttl_when_empty` (see [`run_on`]).
pub fn limits(expire_when_empty: bool, ttl_when_empty: Duration) -> StoreLimits {
    let ttl = if expire_when_empty {
        ttl_when_empty
    } else {
        Duration::from_secs(3600)
    };
    StoreLimits {
        session_ttl: ttl,
        unused_session_ttl: ttl,
        max_sessions: MAX_SESSIONS,
        max_group_members: MAX_GROUP_MEMBERS,
        history_max_messages: HISTORY_MAX_MESSAGES,
        history_max_bytes: HISTORY_MAX_BYTES,
        history_total_max_bytes: 0,
        presence_grace: Duration::ZERO,
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
    // Where the Redis store differs from the model (and the in-memory store), each case
    // below is marked DRIFT(n) and excluded as narrowly as it can be.
    let redis = matches!(store, Store::Redis(_));
    let mut model = Model {
        expire_when_empty,
        sweeps_when_full: !redis,
        sessions: BTreeMap::new(),
    };
    let conns: Vec<ConnId> = (0..CONNS).map(|_| ConnId::new()).collect();
    let sid = |i: usize| SessionId::parse(SESSIONS[i]).unwrap();
    let uid = |i: usize| UserId::parse(USERS[i]).unwrap();
    let left = |l: Left| MLeft {
        user: l.user.to_string(),
        member_gone: l.member_gone,
        keys: keys_of(&l.keys),
        session_deleted: l.session_deleted,
    };

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
            } => {
                let s = ix(session, SESSIONS.len());
                let u = ix(user, USERS.len());
                let c = ix(conn, CONNS);
                let credential = CREDENTIALS[ix(credential, CREDENTIALS.len())];
                let mode = mode.map(|m| MODES[ix(m, MODES.len())]);
                let name = name.map(|n| NAMES[ix(n, NAMES.len())]);
                let key = public_key.then(|| format!("\"pk{step}\""));
                // DRIFT(5): a creator's empty credential, when the session was reserved
                // with an empty key (which the HTTP API refuses): memory admits it (equal
                // keys), Redis refuses it (INVALID_KEY: an empty credential is none).
                if redis
                    && creator
                    && credential == Some("")
                    && model
                        .sessions
                        .get(&s)
                        .is_some_and(|x| !model.expired(x) && x.key.is_empty())
                {
                    continue;
                }
                let real = code(
                    store
                        .join(JoinRequest {
                            session: sid(s),
                            user: uid(u),
                            display_name: name.map(DisplayName::new),
                            public_key: key
                                .as_ref()
                                .map(|k| RawValue::from_string(k.clone()).unwrap().into()),
                            is_creator: creator,
                            credential: credential.map(Secret::from),
                            chat_mode: mode,
                            resume: None,
                            acked,
                            conn: conns[c],
                        })
                        .await,
                )
                .map(|j| MJoined {
                    mode: j.mode,
                    is_creator: j.is_creator,
                    new_member: j.new_member,
                    repeat: j.repeat,
                    display_name: j.display_name.as_str().to_owned(),
                    history: triples(&j.history),
                    keys: keys_of(&j.keys),
                });
                let expired = model.sessions.get(&s).is_some_and(|x| model.expired(x));
                let expected = if redis && !creator && expired {
                    // DRIFT(4): memory forgets an expired session at once when a joiner
                    // meets it; Redis leaves it in its index (and its history in the
                    // total) for the reaper, which counts it: so does the model here.
                    // Redis answers SESSION_EXPIRED while its tombstone lasts (2 x TTL
                    // since the session's last change), then SESSION_NOT_FOUND; memory
                    // until the reaper: how long "just expired" lasts is outside the
                    // model.
                    if real == Err(ErrorCode::SessionNotFound) {
                        Err(ErrorCode::SessionNotFound)
                    } else {
                        Err(ErrorCode::SessionExpired)
                    }
                } else {
                    model.join(s, u, c, creator, credential, mode, name, key, acked)
                };
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
                assert_eq!(real, expected, "{}", ctx());
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
                let c = ix(conn, CONNS);
                let claimed = claimed.map(|u| ix(u, USERS.len()));
                let id = ix(id, MESSAGE_IDS.len());
                let to = to.map(|t| match ix(t, USERS.len() + 1) {
                    i if i == USERS.len() => To::All,
                    i => To::User(i),
                });
                let timestamp = step as u64 + 1;
                let claimed_id = claimed.map(uid);
                let real = code(
                    store
                        .append_message(
                            &sid(s),
                            conns[c],
                            claimed_id.as_ref(),
                            draft(id, to, size, timestamp),
                        )
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
            }
            Op::Leave {
                session,
                conn,
                claimed,
            } => {
                let s = ix(session, SESSIONS.len());
                let c = ix(conn, CONNS);
                let claimed = claimed.map(|u| ix(u, USERS.len()));
                let claimed_id = claimed.map(uid);
                let real = code(store.leave(&sid(s), conns[c], claimed_id.as_ref()).await);
                assert_eq!(real.map(left), model.leave(s, c, claimed), "{}", ctx());
            }
            Op::Disconnect { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = ix(conn, CONNS);
                let real = code(store.disconnect(&sid(s), conns[c]).await);
                let expected = Ok(model.remove_conn(s, c, false));
                assert_eq!(real.map(|l| l.map(left)), expected, "{}", ctx());
            }
            Op::Close { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = ix(conn, CONNS);
                let real = code(store.close(&sid(s), conns[c]).await).map(|mut users| {
                    users.sort();
                    users.iter().map(|u| u.to_string()).collect::<Vec<_>>()
                });
                assert_eq!(real, model.close(s, c), "{}", ctx());
            }
            Op::Reap => {
                assert_eq!(store.reap().await, model.reap(), "{}", ctx());
            }
        }

        // Counts over every session, once the session this acted on is expired if it has
        // no connected member (none other can have been given a new TTL).
        let acted_on = match *op {
            Op::Reserve { session, .. }
            | Op::Join { session, .. }
            | Op::Append { session, .. }
            | Op::Leave { session, .. }
            | Op::Disconnect { session, .. }
            | Op::Close { session, .. } => model.sessions.get(&ix(session, SESSIONS.len())),
            Op::Reap => None,
        };
        if !ttl.is_zero() && acted_on.is_some_and(|s| model.expired(s)) {
            std::thread::sleep(ttl + Duration::from_millis(1));
        }
        let stats = code(store.stats().await).expect("stats");
        let active = model
            .sessions
            .values()
            .filter(|s| !s.conns.is_empty())
            .count();
        // DRIFT(2): memory counts expired sessions until the reaper deletes them, Redis
        // only live ones (it has expired the others itself).
        let held: Vec<&MSession> = match redis {
            true => model.live().collect(),
            false => model.sessions.values().collect(),
        };
        let by_mode = |m: ChatMode| held.iter().filter(|s| s.mode == m).count();
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
        // Of the sessions held, expired or not (DRIFT(2)): equal to `stats.sessions` in
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
