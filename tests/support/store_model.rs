//! A reference model of `blindrelay::store::MemoryStore`, shared by the property tests
//! (`tests/store_props.rs`) and the fuzz target (`fuzz/fuzz_targets/store_model.rs`).
//!
//! A run drives a real store and the model with the same operations, on a small fixed
//! set of session ids, users and connections (so that operations collide), and asserts
//! after every operation that both answered the same (every error code, every field of
//! `Joined`, `Left`, `Appended`, `close`'s member list, `reap`'s count) and that the
//! store's counts (`stats()`, `len()`) equal the model's. The model also asserts the
//! invariants it can state exactly (two present members at most in private and
//! password rooms, history bounds).
//!
//! Time: the TTL is either one hour (nothing expires during a run) or zero (a session
//! with no connected member is expired at once), so expiry is deterministic.
//!
//! Only `new`, `reserve`, `join`, `append_message`, `leave`, `disconnect`, `close`,
//! `reap`, `stats` and `len` are used (the signatures the store keeps stable).

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::Duration,
};

use blindrelay::{
    protocol::{ChatMode, DisplayName, ErrorCode, Message, Recipient, SessionId, UserId},
    secret::Secret,
    store::{Appended, ConnId, HistoryView, JoinRequest, MemoryStore, StoreLimits, message_cost},
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

/// The bounded history, as the README states it: one copy per (id, sender, recipient),
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

/// The (id, from, to) triples of real messages, in order.
pub fn triples(view: &HistoryView) -> Vec<(usize, usize, Option<To>)> {
    let HistoryView::Memory(list) = view else {
        panic!("the in-memory store hands out its messages, not raw JSON");
    };
    list.iter()
        .map(|m| (id_index(&m.id), user_index(&m.from), to_model(&m.to)))
        .collect()
}

/// A message as the handler builds it.
pub fn message(id: usize, from: &UserId, name: &DisplayName, to: Option<To>, size: u8) -> Message {
    let body = "x".repeat(3 * size as usize);
    Message {
        id: MESSAGE_IDS[id].into(),
        from: from.clone(),
        to: to_recipient(to),
        encrypted: serde_json::value::to_raw_value(&body).unwrap().into(),
        attachments: Default::default(),
        timestamp: blindrelay::protocol::now_ms(),
        kind: "text".into(),
        sender_display_name: name.clone(),
    }
}

// ---- the store model ----

#[derive(Debug, Clone)]
struct MMember {
    name: &'static str,
    public_key: Option<String>,
    conns: BTreeSet<usize>,
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
    sessions: BTreeMap<usize, MSession>,
}

impl Model {
    fn expired(&self, s: &MSession) -> bool {
        self.expire_when_empty && s.conns.is_empty()
    }

    fn reserve(&mut self, s: usize, key: &str, mode: ChatMode) -> Result<(), &'static str> {
        let full = self.sessions.len() >= MAX_SESSIONS;
        match self.sessions.get(&s) {
            Some(sess) if !self.expired(sess) => return Err("Exists"),
            Some(_) => {}
            None if full => return Err("LimitReached"),
            None => {}
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
    ) -> Result<MJoined, ErrorCode> {
        let full = self.sessions.len() >= MAX_SESSIONS;
        match self.sessions.get(&s) {
            Some(sess) if self.expired(sess) => {
                if !creator {
                    self.sessions.remove(&s);
                    return Err(ErrorCode::SessionExpired);
                }
                let fresh = Self::new_for_creator(credential, mode)?;
                self.sessions.insert(s, fresh);
            }
            Some(_) => {}
            None => {
                if !creator {
                    return Err(ErrorCode::SessionNotFound);
                }
                if full {
                    return Err(ErrorCode::LimitReached);
                }
                let fresh = Self::new_for_creator(credential, mode)?;
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

/// Runs `ops` against a fresh store and the model; panics at the first difference.
pub fn run(ops: &[Op], expire_when_empty: bool) {
    let ttl = if expire_when_empty {
        Duration::ZERO
    } else {
        Duration::from_secs(3600)
    };
    let store = MemoryStore::new(StoreLimits {
        session_ttl: ttl,
        unused_session_ttl: ttl,
        max_sessions: MAX_SESSIONS,
        max_group_members: MAX_GROUP_MEMBERS,
        history_max_messages: HISTORY_MAX_MESSAGES,
        history_max_bytes: HISTORY_MAX_BYTES,
        history_total_max_bytes: 0,
        presence_grace: std::time::Duration::ZERO,
    });
    let mut model = Model {
        expire_when_empty,
        sessions: BTreeMap::new(),
    };
    let conns: Vec<ConnId> = (0..CONNS).map(|_| ConnId::new()).collect();
    let sid = |i: usize| SessionId::parse(SESSIONS[i]).unwrap();
    let uid = |i: usize| UserId::parse(USERS[i]).unwrap();

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
            } => {
                let s = ix(session, SESSIONS.len());
                let u = ix(user, USERS.len());
                let c = ix(conn, CONNS);
                let credential = CREDENTIALS[ix(credential, CREDENTIALS.len())];
                let mode = mode.map(|m| MODES[ix(m, MODES.len())]);
                let name = name.map(|n| NAMES[ix(n, NAMES.len())]);
                let key = public_key.then(|| format!("\"pk{step}\""));
                let real = code(
                    store.join(JoinRequest {
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
                        conn: conns[c],
                    }),
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
                let expected = model.join(s, u, c, creator, credential, mode, name, key);
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
                let claimed_id = claimed.map(uid);
                let expected_user = model.bound(s, c, claimed);
                let mut built = None;
                let real = code(store.append_message(
                    &sid(s),
                    conns[c],
                    claimed_id.as_ref(),
                    |from, name| {
                        let m = message(id, from, name, to, size);
                        built = Some((user_index(from), name.as_str().to_owned(), m.clone()));
                        m
                    },
                ));
                let expected = match expected_user {
                    Err(e) => Err(e),
                    Ok(user) => {
                        let sess = model.sessions.get_mut(&s).unwrap();
                        let (from, name, m) = built.clone().expect("built for a member");
                        assert_eq!(from, user, "{}: built as the bound user", ctx());
                        assert_eq!(name, sess.members[&user].name, "{}: sender name", ctx());
                        let cost = message_cost(&m);
                        if cost > HISTORY_MAX_BYTES {
                            Err(ErrorCode::PayloadTooLarge)
                        } else {
                            let timestamp = match &real {
                                Ok(Appended::Stored { message, .. }) => message.timestamp,
                                _ => 0,
                            };
                            Ok(sess.history.append(
                                MMessage {
                                    id,
                                    from,
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
                        assert_eq!(
                            (id_index(&message.id), to_model(&message.to)),
                            (id, to),
                            "{}",
                            ctx()
                        );
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
                let real =
                    code(store.leave(&sid(s), conns[c], claimed_id.as_ref())).map(|l| MLeft {
                        user: l.user.to_string(),
                        member_gone: l.member_gone,
                        keys: keys_of(&l.keys),
                        session_deleted: l.session_deleted,
                    });
                assert_eq!(real, model.leave(s, c, claimed), "{}", ctx());
            }
            Op::Disconnect { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = ix(conn, CONNS);
                let real = store.disconnect(&sid(s), conns[c]).map(|l| MLeft {
                    user: l.user.to_string(),
                    member_gone: l.member_gone,
                    keys: keys_of(&l.keys),
                    session_deleted: l.session_deleted,
                });
                assert_eq!(real, model.remove_conn(s, c, false), "{}", ctx());
            }
            Op::Close { session, conn } => {
                let s = ix(session, SESSIONS.len());
                let c = ix(conn, CONNS);
                let real = code(store.close(&sid(s), conns[c])).map(|mut users| {
                    users.sort();
                    users.iter().map(|u| u.to_string()).collect::<Vec<_>>()
                });
                assert_eq!(real, model.close(s, c), "{}", ctx());
            }
            Op::Reap => {
                assert_eq!(store.reap(), model.reap(), "{}", ctx());
            }
        }

        // Counts over every session.
        let stats = store.stats();
        let active = model
            .sessions
            .values()
            .filter(|s| !s.conns.is_empty())
            .count();
        let by_mode = |m: ChatMode| model.sessions.values().filter(|s| s.mode == m).count();
        let bytes: usize = model.sessions.values().map(|s| s.history.bytes()).sum();
        assert_eq!(store.len(), model.sessions.len(), "{}: len", ctx());
        assert_eq!(stats.sessions, model.sessions.len(), "{}: sessions", ctx());
        assert_eq!(stats.active, active, "{}: active", ctx());
        assert_eq!(stats.group, by_mode(ChatMode::Group), "{}: group", ctx());
        assert_eq!(stats.private, by_mode(ChatMode::Private), "{}", ctx());
        assert_eq!(stats.password, by_mode(ChatMode::Password), "{}", ctx());
        assert_eq!(stats.history_bytes, bytes, "{}: history bytes", ctx());
        assert!(stats.sessions <= MAX_SESSIONS, "{}", ctx());
        assert!(
            stats.history_bytes <= stats.sessions * HISTORY_MAX_BYTES,
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
