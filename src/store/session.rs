//! One session (room) and the rules that apply inside it.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::value::RawValue;

use super::{
    ConnId, History, HistoryView, JoinRequest, Joined, Left, Removed, StoreLimits,
    digest::{RoomKey, Salted},
    record::{MemberRecord, MessageRecord, SessionRecord},
    resume,
};
use crate::{
    protocol::{
        AppError, ChatMode, DisplayName, ErrorCode, Message, Opaque, PublicKeyEntry, Recipient,
        SessionId, UserId, attachments::Attachments, now_ms,
    },
    secret::Secret,
};

/// Whether the creator has joined yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Reserved over HTTP; only the creator (holding the key) may join.
    Reserved,
    /// The creator joined; others may join with the key.
    Active { creator: UserId },
}

/// A member of the session. It is *present* while it has connections; an absent member
/// keeps its name and public key for a reconnect (old clients rejoin with
/// `publicKey: null` and expect the server to keep it).
#[derive(Debug)]
pub struct Member {
    pub display_name: DisplayName,
    pub public_key: Option<Opaque>,
    pub joined_at: u64,
    pub conns: Vec<ConnId>,
    pub left_at: u64,
    pub proof: resume::Proof,
    /// Read from a snapshot at start, and not joined since.
    pub restored: bool,
}

impl Member {
    pub fn is_present(&self) -> bool {
        !self.conns.is_empty()
    }
}

#[derive(Debug)]
pub struct Session {
    key: RoomKey,
    pub mode: ChatMode,
    pub lifecycle: Lifecycle,
    pub members: HashMap<UserId, Member>,
    /// Which user each joined connection is bound to.
    conns: HashMap<ConnId, UserId>,
    pub group_keys: HashMap<UserId, Box<RawValue>>,
    pub history: History,
    pub last_activity: Instant,
    /// Someone besides the creator joined, or a message was sent: until then an empty
    /// session expires after the shorter `unused_session_ttl`.
    used: bool,
    /// Members the creator removed: refused if they come back (at most `MAX_REMOVED`).
    removed: Vec<UserId>,
}

/// Removed userIds remembered per session; the oldest are forgotten first.
pub const MAX_REMOVED: usize = 256;

impl Session {
    pub fn reserved(key: RoomKey, mode: ChatMode, now: Instant) -> Self {
        Session {
            key,
            mode,
            lifecycle: Lifecycle::Reserved,
            members: HashMap::new(),
            conns: HashMap::new(),
            group_keys: HashMap::new(),
            history: History::default(),
            last_activity: now,
            used: false,
            removed: Vec::new(),
        }
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    pub fn has_present_members(&self) -> bool {
        !self.conns.is_empty()
    }

    pub fn present_count(&self) -> usize {
        self.members.values().filter(|m| m.is_present()).count()
    }

    /// Marks the session as used (see `used`).
    pub fn mark_used(&mut self) {
        self.used = true;
    }

    /// A session with connected members never expires.
    pub fn is_expired(&self, now: Instant, limits: &StoreLimits) -> bool {
        let ttl = if self.used {
            limits.session_ttl
        } else {
            limits.unused_session_ttl
        };
        !self.has_present_members() && now.duration_since(self.last_activity) >= ttl
    }

    pub fn is_creator(&self, user: &UserId) -> bool {
        matches!(&self.lifecycle, Lifecycle::Active { creator } if creator == user)
    }

    pub fn bound_user(&self, conn: ConnId) -> Result<&UserId, AppError> {
        self.conns.get(&conn).ok_or_else(AppError::not_in_session)
    }

    pub fn display_name_of(&self, user: &UserId) -> DisplayName {
        self.members
            .get(user)
            .map(|m| m.display_name.clone())
            .unwrap_or_default()
    }

    /// The public keys of present members.
    pub fn public_keys(&self) -> Vec<PublicKeyEntry> {
        self.members
            .iter()
            .filter(|(_, m)| m.is_present())
            .filter_map(|(user, m)| {
                Some(PublicKeyEntry {
                    user_id: user.clone(),
                    public_key: m.public_key.clone()?,
                    display_name: m.display_name.clone(),
                    joined_at: m.joined_at,
                })
            })
            .collect()
    }

    /// Checks the credential a non-creator presents.
    fn admit(&self, d: Salted, credential: Option<&Secret>) -> Result<(), AppError> {
        let given = credential.map(Secret::expose).unwrap_or_default();
        if self.mode == ChatMode::Password {
            // Joiners send "<id>:password:<digest>", compared with what follows the
            // first ':' of the stored key; a holder of the full key may join too.
            let by_password = credential
                .and_then(Secret::joiner_password)
                .is_some_and(|pw| d.password_matches(&self.key, pw));
            if by_password || (!given.is_empty() && d.key_matches(&self.key, given)) {
                return Ok(());
            }
            return Err(AppError::invalid_password());
        }
        if !given.is_empty() && d.key_matches(&self.key, given) {
            return Ok(());
        }
        Err(AppError::invalid_key())
    }

    /// Whether a join presenting `credential` would be let in (none: only that the
    /// session exists), without joining: for a link opened after its room ended.
    pub(super) fn status(&self, d: Salted, credential: Option<&Secret>) -> Result<bool, AppError> {
        let Some(credential) = credential.filter(|c| !c.is_empty()) else {
            return Ok(false);
        };
        if self.lifecycle == Lifecycle::Reserved {
            return Err(AppError::session_not_active());
        }
        self.admit(d, Some(credential)).map(|()| true)
    }

    pub(super) fn join(
        &mut self,
        d: Salted,
        req: JoinRequest,
        limits: &StoreLimits,
        now: Instant,
    ) -> Result<Joined, AppError> {
        if self.removed.contains(&req.user) {
            return Err(AppError::removed());
        }
        let credential = req.credential.as_ref();
        // A member's resume token admits it without the key: after `reset-link`, the
        // members in the room keep their place through reconnects.
        let by_token = req.resume.as_ref().is_some_and(|t| {
            self.members
                .get(&req.user)
                .and_then(|m| m.proof.token)
                .is_some_and(|d| d == resume::digest(t.expose()))
        });
        if by_token {
        } else if req.is_creator {
            // An empty credential is none, here as everywhere (and as in Redis).
            if !credential.is_some_and(|k| !k.is_empty() && d.key_matches(&self.key, k.expose())) {
                return Err(AppError::creator_key_mismatch());
            }
        } else {
            if self.lifecycle == Lifecycle::Reserved {
                return Err(AppError::session_not_active());
            }
            self.admit(d, credential)?;
        }

        if let Some(bound) = self.conns.get(&req.conn)
            && *bound != req.user
        {
            return Err(AppError::forbidden(
                "This connection already joined as another user",
            ));
        }
        let repeat = self.conns.contains_key(&req.conn);
        let admission = match repeat {
            true => None,
            false => Some(resume::admit(
                self.members
                    .get(&req.user)
                    .map(|m| m.proof.known(req.resume.as_ref(), m.is_present())),
                req.resume.is_some(),
                req.acked,
            )?),
        };
        let already_present = self.members.get(&req.user).is_some_and(Member::is_present);
        // Back within the grace: its departure was never announced, nor is its return.
        let grace_ms = limits.presence_grace.as_millis() as u64;
        let returning = self
            .members
            .get(&req.user)
            .is_some_and(|m| !m.is_present() && now_ms().saturating_sub(m.left_at) < grace_ms);
        if !already_present {
            let present = self.present_count();
            if self.mode.is_one_to_one() && present >= 2 {
                return Err(AppError::session_full());
            }
            if self.mode == ChatMode::Group && present >= limits.max_group_members {
                return Err(AppError::new(
                    ErrorCode::LimitReached,
                    format!(
                        "A group session holds at most {} members",
                        limits.max_group_members
                    ),
                ));
            }
        }

        if req.is_creator && self.lifecycle == Lifecycle::Reserved {
            self.lifecycle = Lifecycle::Active {
                creator: req.user.clone(),
            };
        }
        let ms = now_ms();
        let member = self
            .members
            .entry(req.user.clone())
            .or_insert_with(|| Member {
                display_name: DisplayName::default(),
                public_key: None,
                joined_at: ms,
                conns: Vec::new(),
                left_at: 0,
                proof: resume::Proof::default(),
                restored: false,
            });
        let resume_token = match admission {
            Some(resume::Admission::Issue) => {
                let (token, digest) = resume::issue();
                member.proof.token = Some(digest);
                Some(token)
            }
            Some(resume::Admission::Proven | resume::Admission::Unproven) | None => None,
        };
        if !member.is_present() {
            member.joined_at = ms;
        }
        let restored = std::mem::take(&mut member.restored);
        if let Some(name) = req.display_name {
            member.display_name = name;
        }
        let mut key_changed = false;
        if let Some(key) = req.public_key {
            key_changed = member
                .public_key
                .as_ref()
                .is_some_and(|old| old.get() != key.get());
            member.public_key = Some(key);
        }
        if !member.conns.contains(&req.conn) {
            member.conns.push(req.conn);
        }
        let display_name = member.display_name.clone();
        self.conns.insert(req.conn, req.user.clone());
        self.touch(now);
        if self.members.len() > 1 {
            self.mark_used();
        }

        Ok(Joined {
            mode: self.mode,
            is_creator: self.is_creator(&req.user),
            new_member: !already_present && !returning,
            created: false,
            restored,
            repeat,
            resume_token,
            key_changed,
            display_name,
            history: if repeat {
                HistoryView::empty()
            } else {
                HistoryView::Memory(self.history.visible_to(&req.user))
            },
            group_key: self.group_keys.get(&req.user).cloned(),
            keys: self.public_keys(),
        })
    }

    /// `remove-member` by the connection `conn`: the creator takes `target` out of the
    /// room for good (its connections are unbound, its key and group key dropped, and a
    /// later join by it is refused).
    pub(super) fn remove_member(
        &mut self,
        conn: ConnId,
        target: &UserId,
        now: Instant,
    ) -> Result<Removed, AppError> {
        let by = self.bound_user(conn)?;
        if !self.is_creator(by) {
            return Err(AppError::creator_only("remove a member"));
        }
        if by == target {
            return Err(AppError::cannot_remove_self());
        }
        let member = self
            .members
            .remove(target)
            .ok_or_else(AppError::no_such_member)?;
        for c in &member.conns {
            self.conns.remove(c);
        }
        self.group_keys.remove(target);
        if self.removed.len() >= MAX_REMOVED {
            self.removed.remove(0);
        }
        self.removed.push(target.clone());
        self.touch(now);
        Ok(Removed {
            display_name: member.display_name,
            keys: self.public_keys(),
        })
    }

    /// `reset-link`: the creator replaces the join credential.
    pub(super) fn reset_key(
        &mut self,
        d: Salted,
        conn: ConnId,
        key: &Secret,
    ) -> Result<(), AppError> {
        let by = self.bound_user(conn)?;
        if !self.is_creator(by) {
            return Err(AppError::creator_only("reset its link"));
        }
        if self.mode == ChatMode::Password && !key.expose().contains(':') {
            return Err(AppError::password_key_expected());
        }
        self.key = d.key.room_key(d.session, key);
        Ok(())
    }

    /// Unbinds a connection. With `forget`, a member whose last connection left is
    /// removed with its key (an explicit leave); otherwise it is kept as absent.
    pub(super) fn remove_conn(&mut self, conn: ConnId, forget: bool, now: Instant) -> Option<Left> {
        let user = self.conns.remove(&conn)?;
        self.touch(now);
        let member = self.members.get_mut(&user)?;
        member.conns.retain(|c| *c != conn);
        let member_gone = !member.is_present();
        if member_gone {
            if forget {
                self.members.remove(&user);
                self.group_keys.remove(&user);
            } else {
                member.left_at = now_ms();
                self.evict_absent_beyond(MAX_ABSENT_MEMBERS);
            }
        }
        Some(Left {
            keys: if member_gone {
                self.public_keys()
            } else {
                Vec::new()
            },
            user,
            member_gone,
            session_deleted: false,
        })
    }

    /// Bounds the memory absent members hold: the longest gone are forgotten first.
    fn evict_absent_beyond(&mut self, max: usize) {
        let absent = self.members.values().filter(|m| !m.is_present()).count();
        if absent <= max {
            return;
        }
        let mut by_age: Vec<(u64, UserId)> = self
            .members
            .iter()
            .filter(|(_, m)| !m.is_present())
            .map(|(u, m)| (m.left_at, u.clone()))
            .collect();
        by_age.sort();
        for (_, user) in by_age.into_iter().take(absent - max) {
            self.members.remove(&user);
        }
    }
}

/// How many absent members a session remembers (for their reconnect).
const MAX_ABSENT_MEMBERS: usize = 64;

/// After a restart, how long the members who were in the room when it stopped may come
/// back as from a network blip (no `user-joined`, no notice), on top of the presence
/// grace: clients back off up to several seconds between attempts while the node is down.
pub const RESTART_GRACE_MS: u64 = 60_000;

impl Session {
    /// This session as a record (see `record`), made at `now`. Members with a
    /// connection at or after `present_since` (ms) count as recently present.
    pub(super) fn to_record(
        &self,
        id: &SessionId,
        now: Instant,
        present_since: u64,
    ) -> SessionRecord {
        SessionRecord {
            id: id.as_str().to_owned(),
            mode: self.mode,
            creator: match &self.lifecycle {
                Lifecycle::Reserved => None,
                Lifecycle::Active { creator } => Some(creator.as_str().to_owned()),
            },
            key: self.key.key,
            password: self.key.password,
            members: self
                .members
                .iter()
                .map(|(user, m)| MemberRecord {
                    user: user.as_str().to_owned(),
                    display_name: m.display_name.as_str().to_owned(),
                    public_key: m.public_key.as_ref().map(|k| k.get().to_owned()),
                    joined_at: m.joined_at,
                    left_at: m.left_at,
                    recently_present: m.is_present() || m.left_at >= present_since,
                    token: m.proof.token,
                })
                .collect(),
            group_keys: self
                .group_keys
                .iter()
                .map(|(user, key)| (user.as_str().to_owned(), key.get().to_owned()))
                .collect(),
            history: self.history.messages().map(|m| message_record(m)).collect(),
            idle_ms: now.duration_since(self.last_activity).as_millis() as u64,
            used: self.used,
            removed: self.removed.iter().map(|u| u.as_str().to_owned()).collect(),
        }
    }

    /// A session from its record, made `age_ms` ago; `None` when it has expired since.
    /// Members who were in the room come back within [`RESTART_GRACE_MS`] unannounced.
    /// Every field is checked as if a client had sent it.
    pub(super) fn from_record(
        r: SessionRecord,
        age_ms: u64,
        limits: &StoreLimits,
        now: Instant,
    ) -> Result<Option<(SessionId, Session)>, String> {
        let id = SessionId::parse(&r.id)?;
        let idle = Duration::from_millis(r.idle_ms.saturating_add(age_ms));
        let ttl = if r.used {
            limits.session_ttl
        } else {
            limits.unused_session_ttl
        };
        if idle >= ttl {
            return Ok(None);
        }
        let user = |s: &str| UserId::parse(s);
        let json = |s: String| RawValue::from_string(s).map_err(|e| e.to_string());
        let back_until = now_ms() + RESTART_GRACE_MS;
        let mut members = HashMap::new();
        for m in r.members {
            let member = Member {
                display_name: DisplayName::new(&m.display_name),
                public_key: m.public_key.map(json).transpose()?.map(Opaque::from),
                joined_at: m.joined_at,
                conns: Vec::new(),
                left_at: if m.recently_present {
                    back_until
                } else {
                    m.left_at
                },
                proof: resume::Proof { token: m.token },
                restored: true,
            };
            members.insert(user(&m.user)?, member);
        }
        let mut group_keys = HashMap::new();
        for (u, key) in r.group_keys {
            group_keys.insert(user(&u)?, json(key)?);
        }
        let mut history = History::default();
        for m in r.history {
            history.append(
                message_from_record(m)?,
                limits.history_max_messages,
                limits.history_max_bytes,
            );
        }
        let session = Session {
            key: RoomKey {
                key: r.key,
                password: r.password,
            },
            mode: r.mode,
            lifecycle: match r.creator {
                None => Lifecycle::Reserved,
                Some(c) => Lifecycle::Active { creator: user(&c)? },
            },
            members,
            conns: HashMap::new(),
            group_keys,
            history,
            last_activity: now.checked_sub(idle).unwrap_or(now),
            used: r.used,
            removed: r
                .removed
                .iter()
                .map(|u| user(u))
                .collect::<Result<_, _>>()?,
        };
        Ok(Some((id, session)))
    }
}

fn message_record(m: &Message) -> MessageRecord {
    MessageRecord {
        id: m.id.to_string(),
        from: m.from.as_str().to_owned(),
        to: m.to.as_ref().map(|to| match to {
            Recipient::All => "all".to_owned(),
            Recipient::User(u) => u.as_str().to_owned(),
        }),
        encrypted: m.encrypted.get().to_owned(),
        attachments: m.attachments.as_slice().to_vec(),
        timestamp: m.timestamp,
        kind: m.kind.to_string(),
        sender_display_name: m.sender_display_name.as_str().to_owned(),
    }
}

fn message_from_record(m: MessageRecord) -> Result<Message, String> {
    Ok(Message {
        id: m.id.into(),
        from: UserId::parse(&m.from)?,
        to: match m.to.as_deref() {
            None => None,
            Some("all") => Some(Recipient::All),
            Some(u) => Some(Recipient::User(UserId::parse(u)?)),
        },
        encrypted: RawValue::from_string(m.encrypted)
            .map_err(|e| e.to_string())?
            .into(),
        attachments: Attachments::from_bytes(m.attachments),
        timestamp: m.timestamp,
        kind: m.kind.into(),
        sender_display_name: DisplayName::new(&m.sender_display_name),
    })
}
