//! The Redis session store: the same operations as [`MemoryStore`](super::MemoryStore),
//! shared by every node of a deployment.
//!
//! Each operation is one Lua script (in `lua/`, each prefixed with `lua/common.lua`), so
//! a check and the change it guards run atomically across nodes: two nodes racing a
//! third person into a private room still admit one. Credentials are stored as keyed
//! digests ([`DigestKey`]), compared inside the script: Redis never holds a room's key,
//! and a copy of Redis alone cannot be searched for passwords.
//!
//! A failed round trip answers `UNAVAILABLE`; the connection manager reconnects on its
//! own, so service resumes when Redis returns.

mod clock;
mod value;

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use hmac::{Hmac, Mac};
use redis::{Script, aio::ConnectionManager};
use serde_json::value::RawValue;
use sha2::Sha256;

use self::value::{Reply, Row};
use super::{
    Appended, ConnId, HistoryView, JoinRequest, Joined, Left, MessageDraft, Removed, ReserveError,
    SessionSummary, StoreLimits, StoreStats, resume,
};
use crate::{
    protocol::{
        AppError, ChatMode, DisplayName, ErrorCode, Opaque, PublicKeyEntry, Recipient, SessionId,
        UserId, attachments, delivery::RawMessage, now_ms,
    },
    secret::Secret,
};

/// A script must run within this of being sent, or it changes nothing (common.lua's
/// fence): shorter than the 2 s after which the node stops waiting and answers
/// UNAVAILABLE, so that an operation answered UNAVAILABLE is never applied later.
const FENCE_AFTER: std::time::Duration = std::time::Duration::from_millis(1500);

/// How many absent members a session remembers (as in memory).
const MAX_ABSENT_MEMBERS: usize = 64;
/// Rows `GET /sessions` lists per mode.
const SUMMARY_LIMIT: usize = 1000;

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, hashed once (`EVALSHA`, loaded again after a Redis restart).
struct Scripts {
    reserve: Script,
    join: Script,
    member: Script,
    departed: Script,
    save_key: Script,
    append: Script,
    set_group_keys: Script,
    leave: Script,
    close: Script,
    remove: Script,
    reset: Script,
    status: Script,
    stats: Script,
    summaries: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            reserve: script!("reserve.lua"),
            join: script!("join.lua"),
            member: script!("member.lua"),
            departed: script!("departed.lua"),
            save_key: script!("save_key.lua"),
            append: script!("append.lua"),
            set_group_keys: script!("set_group_keys.lua"),
            leave: script!("leave.lua"),
            close: script!("close.lua"),
            remove: script!("remove.lua"),
            reset: script!("reset.lua"),
            status: script!("status.lua"),
            stats: script!("stats.lua"),
            summaries: script!("summaries.lua"),
        }
    }
}

pub struct RedisStore {
    conn: ConnectionManager,
    /// Whether this node's pub/sub link works: without it, a change could be stored
    /// but not broadcast, so operations wait for it.
    bus: crate::cluster::BusHealth,
    prefix: Arc<str>,
    /// This node's id: the connections it binds are listed under it, for its lease.
    node: Arc<str>,
    limits: StoreLimits,
    scripts: Scripts,
    clock: clock::RedisClock,
    digests: DigestKey,
}

/// The key (`STORE_DIGEST_KEY`, the same on every node, never in Redis) under which
/// credentials are digested: a password room's digest from a Redis dump or AOF is useless
/// to a dictionary without it.
#[derive(Clone)]
pub struct DigestKey(Hmac<Sha256>);

impl DigestKey {
    pub fn new(key: &Secret) -> Self {
        // HMAC takes a key of any length.
        DigestKey(Hmac::new_from_slice(key.expose().as_bytes()).expect("HMAC accepts any key"))
    }

    /// The hex HMAC-SHA-256 of `credential`, salted with the session id (so equal
    /// passwords of two sessions differ), as stored and compared in Redis.
    fn digest(&self, session: &str, credential: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(session.as_bytes());
        mac.update(b"\n");
        mac.update(credential.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// The recipient as the history header writes it.
fn recipient_key(to: &Option<Recipient>) -> &str {
    match to {
        None => "",
        Some(Recipient::All) => "all",
        Some(Recipient::User(u)) => u.as_str(),
    }
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
        "FORBIDDEN_PROVEN" => {
            AppError::forbidden("This member proves who it is with its resume token")
        }
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
        conn: ConnectionManager,
        bus: crate::cluster::BusHealth,
        prefix: &str,
        node: Arc<str>,
        limits: StoreLimits,
        digests: DigestKey,
    ) -> Self {
        RedisStore {
            conn,
            bus,
            prefix: prefix.into(),
            node,
            limits,
            scripts: Scripts::new(),
            clock: clock::RedisClock::default(),
            digests,
        }
    }

    pub fn limits(&self) -> &StoreLimits {
        &self.limits
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

    /// Runs `script` for session `id` with `args` after the prefix and id.
    async fn run(
        &self,
        script: &Script,
        id: &str,
        args: &[&[u8]],
    ) -> Result<redis::Value, AppError> {
        if !self.bus.is_up() {
            return Err(AppError::unavailable());
        }
        let mut call = script.prepare_invoke();
        call.arg(&*self.prefix).arg(id);
        for a in args {
            call.arg(*a);
        }
        call.arg(self.clock.fence(FENCE_AFTER));
        let started = Instant::now();
        let result = call.invoke_async(&mut self.conn.clone()).await;
        crate::telemetry::redis_round_trip(started.elapsed().as_secs_f64(), result.is_ok());
        result.map_err(|e| {
            tracing::warn!(error = %e, "Redis call failed");
            AppError::unavailable()
        })
    }

    /// Runs a script whose reply starts with `OK` or a refusal code.
    async fn run_ok(&self, script: &Script, id: &str, args: &[&[u8]]) -> Result<Reply, AppError> {
        let reply = Reply::new(self.run(script, id, args).await?)?;
        match reply.status() {
            "OK" => Ok(reply),
            code => Err(refusal(code, &self.limits)),
        }
    }

    /// Counts, and with `prune` drops expired sessions from the index.
    async fn counts(&self, prune: bool) -> Result<(StoreStats, usize), AppError> {
        let now = now_ms().to_string();
        let prune: &[u8] = if prune { b"1" } else { b"0" };
        let mut r = self
            .run_ok(&self.scripts.stats, "", &[now.as_bytes(), prune])
            .await?;
        let (group, private, password, active, pruned) =
            (r.int()?, r.int()?, r.int()?, r.int()?, r.int()?);
        let history_bytes = r.int()?;
        let stats = StoreStats {
            sessions: group + private + password,
            active,
            group,
            private,
            password,
            history_bytes,
        };
        Ok((stats, pruned))
    }

    pub async fn stats(&self) -> Result<StoreStats, AppError> {
        Ok(self.counts(false).await?.0)
    }

    pub async fn reserve(
        &self,
        id: &SessionId,
        key: &Secret,
        mode: ChatMode,
    ) -> Result<(), ReserveError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let (kh, ph) = (digest(key.expose()), digest(key.password_part()));
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max = self.limits.max_sessions.to_string();
        let unused_ttl = ms(self.limits.unused_session_ttl).to_string();
        let args: [&[u8]; 7] = [
            kh.as_bytes(),
            ph.as_bytes(),
            mode.as_str().as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max.as_bytes(),
            unused_ttl.as_bytes(),
        ];
        let reply = self
            .run(&self.scripts.reserve, id.as_str(), &args)
            .await
            .map_err(|_| ReserveError::Unavailable)?;
        match Reply::new(reply).map(|r| r.status().to_owned()).as_deref() {
            Ok("OK") => Ok(()),
            Ok("EXISTS") => Err(ReserveError::Exists),
            Ok("LIMIT_REACHED") => Err(ReserveError::LimitReached),
            _ => Err(ReserveError::Unavailable),
        }
    }

    pub async fn join(&self, req: JoinRequest) -> Result<Joined, AppError> {
        let digest = |s: &str| self.digests.digest(req.session.as_str(), s);
        let credential = req.credential.as_ref().filter(|c| !c.is_empty());
        let kh = credential.map(|c| digest(c.expose())).unwrap_or_default();
        let joiner_ph = credential
            .and_then(Secret::joiner_password)
            .map(digest)
            .unwrap_or_default();
        let created_ph = credential
            .map(|c| digest(c.password_part()))
            .unwrap_or_default();
        let conn = req.conn.to_string();
        let name = req.display_name.as_ref().map(DisplayName::as_str);
        let public_key = req.public_key.as_ref().map_or("", |k| k.get());
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max_group = self.limits.max_group_members.to_string();
        let max_sessions = self.limits.max_sessions.to_string();
        let max_absent = MAX_ABSENT_MEMBERS.to_string();
        let presented = req
            .resume
            .as_ref()
            .map(|t| digest(t.expose()))
            .unwrap_or_default();
        let (token, _) = resume::issue();
        let new_digest = digest(&token);
        let grace = ms(self.limits.presence_grace).to_string();
        let unused_ttl = ms(self.limits.unused_session_ttl).to_string();
        let args: [&[u8]; 20] = [
            req.user.as_str().as_bytes(),
            conn.as_bytes(),
            self.node.as_bytes(),
            if req.is_creator { b"1" } else { b"0" },
            kh.as_bytes(),
            joiner_ph.as_bytes(),
            created_ph.as_bytes(),
            req.chat_mode.unwrap_or_default().as_str().as_bytes(),
            if name.is_some() { b"1" } else { b"0" },
            name.unwrap_or_default().as_bytes(),
            public_key.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max_group.as_bytes(),
            max_sessions.as_bytes(),
            max_absent.as_bytes(),
            presented.as_bytes(),
            new_digest.as_bytes(),
            grace.as_bytes(),
            unused_ttl.as_bytes(),
        ];
        let mut r = self
            .run_ok(&self.scripts.join, req.session.as_str(), &args)
            .await?;
        let mode = r.mode()?;
        let is_creator = r.int()? == 1;
        let new_member = r.int()? == 1;
        let display_name = r.display_name()?;
        let has_group_key = r.int()? == 1;
        let group_key = r.string()?;
        let group_key = match has_group_key {
            true => Some(RawValue::from_string(group_key).map_err(|_| AppError::unavailable())?),
            false => None,
        };
        let history = visible_history(r.rows()?, &req.user)?;
        let keys = public_keys(r.rows()?)?;
        let repeat = r.int()? == 1;
        let issued = r.int()? == 1;
        let key_changed = r.int()? == 1;
        let created = r.int()? == 1;
        Ok(Joined {
            created,
            mode,
            is_creator,
            new_member,
            repeat,
            resume_token: issued.then_some(token),
            key_changed,
            display_name,
            history: HistoryView::Raw(history),
            group_key,
            keys,
        })
    }

    /// What a connection may read of its session: user, name, and as `view` asks, the
    /// present members' keys and the history visible to it.
    async fn view(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        view: View,
    ) -> Result<(UserId, DisplayName, Vec<PublicKeyEntry>, Vec<RawMessage>), AppError> {
        let conn = conn.to_string();
        let claimed = claimed.map_or("", UserId::as_str);
        let flag: &[u8] = match view {
            View::Member => b"0",
            View::Keys => b"1",
            View::Everything => b"2",
        };
        let args: [&[u8]; 3] = [conn.as_bytes(), claimed.as_bytes(), flag];
        let mut r = self
            .run_ok(&self.scripts.member, id.as_str(), &args)
            .await?;
        let user = r.user()?;
        let name = r.display_name()?;
        let keys = public_keys(r.rows()?)?;
        let history = visible_history(r.rows()?, &user)?;
        Ok((user, name, keys, history))
    }

    /// The present members' keys if `user` has no connection in the session (it did not
    /// come back), `None` if it is present again.
    pub async fn departed(
        &self,
        id: &SessionId,
        user: &UserId,
    ) -> Result<Option<Vec<PublicKeyEntry>>, AppError> {
        let mut r = self
            .run_ok(
                &self.scripts.departed,
                id.as_str(),
                &[user.as_str().as_bytes()],
            )
            .await?;
        let gone = r.int()? == 1;
        let keys = public_keys(r.rows()?)?;
        Ok(gone.then_some(keys))
    }

    pub async fn member(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<(UserId, DisplayName), AppError> {
        let (user, name, _, _) = self.view(id, conn, claimed, View::Member).await?;
        Ok((user, name))
    }

    pub async fn peer_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        let (user, _, mut keys, _) = self.view(id, conn, claimed, View::Keys).await?;
        keys.retain(|k| k.user_id != user);
        Ok(keys)
    }

    /// The present members' keys and the history the connection may read, to send
    /// again after this node missed broadcasts.
    pub async fn resync(
        &self,
        id: &SessionId,
        conn: ConnId,
    ) -> Result<(UserId, Vec<PublicKeyEntry>, Vec<RawMessage>), AppError> {
        let (user, _, keys, history) = self.view(id, conn, None, View::Everything).await?;
        Ok((user, keys, history))
    }

    pub async fn save_public_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
        key: Opaque,
        name: Option<DisplayName>,
    ) -> Result<Vec<PublicKeyEntry>, AppError> {
        let conn = conn.to_string();
        let claimed = claimed.map_or("", UserId::as_str);
        let now = now_ms().to_string();
        let args: [&[u8]; 6] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            key.get().as_bytes(),
            if name.is_some() { b"1" } else { b"0" },
            name.as_ref().map_or("", DisplayName::as_str).as_bytes(),
            now.as_bytes(),
        ];
        let mut r = self
            .run_ok(&self.scripts.save_key, id.as_str(), &args)
            .await?;
        public_keys(r.rows()?)
    }

    pub async fn append_message(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed_from: Option<&UserId>,
        draft: MessageDraft,
    ) -> Result<Appended, AppError> {
        // The JSON up to its last field; the script adds the sender and its name.
        let mut head = serde_json::to_string(&DraftFields(&draft))
            .map_err(|_| AppError::bad_request("message cannot be encoded"))?;
        head.pop(); // the closing brace
        // The in-memory cost, less the sender id, which only the script knows.
        let cost = draft.encrypted.get().len()
            + draft.attachments.len_bytes()
            + draft.id.len()
            + draft.kind.len()
            + super::history::MESSAGE_OVERHEAD;
        let conn = conn.to_string();
        let claimed = claimed_from.map_or("", UserId::as_str);
        let (cost, max_messages, max_bytes, timestamp, now, budget) = (
            cost.to_string(),
            self.limits.history_max_messages.to_string(),
            self.limits.history_max_bytes.to_string(),
            draft.timestamp.to_string(),
            now_ms().to_string(),
            self.limits.history_total_max_bytes.to_string(),
        );
        let args: [&[u8]; 11] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            draft.id.as_bytes(),
            recipient_key(&draft.to).as_bytes(),
            head.as_bytes(),
            cost.as_bytes(),
            max_messages.as_bytes(),
            max_bytes.as_bytes(),
            timestamp.as_bytes(),
            now.as_bytes(),
            budget.as_bytes(),
        ];
        let mut r = Reply::new(self.run(&self.scripts.append, id.as_str(), &args).await?)?;
        match r.status() {
            "OK" => {}
            "DUPLICATE" => {
                let timestamp = r.string()?.parse().unwrap_or_default();
                return Ok(Appended::Duplicate { timestamp });
            }
            code => return Err(refusal(code, &self.limits)),
        }
        let from = r.user()?;
        let name = r.display_name()?;
        let first_of_id = r.int()? == 1;
        let evicted = r.int()?;
        if evicted > 0 {
            metrics::counter!(crate::telemetry::HISTORY_EVICTED_TOTAL).increment(evicted as u64);
        }
        Ok(Appended::Stored {
            message: Arc::new(draft.into_message(&from, &name)),
            first_of_id,
        })
    }

    pub async fn set_group_keys(
        &self,
        id: &SessionId,
        conn: ConnId,
        keys: &BTreeMap<UserId, Box<RawValue>>,
    ) -> Result<(), AppError> {
        let conn = conn.to_string();
        let now = now_ms().to_string();
        let mut args: Vec<&[u8]> = vec![conn.as_bytes(), now.as_bytes()];
        for (user, key) in keys {
            args.push(user.as_str().as_bytes());
            args.push(key.get().as_bytes());
        }
        self.run_ok(&self.scripts.set_group_keys, id.as_str(), &args)
            .await?;
        Ok(())
    }

    /// Unbinds `conn` (bound through `node`): an explicit leave when `forget`.
    async fn remove_conn(
        &self,
        id: &SessionId,
        conn: &str,
        claimed: Option<&UserId>,
        forget: bool,
        node: &str,
    ) -> Result<Left, AppError> {
        let claimed = claimed.map_or("", UserId::as_str);
        let (now, ttl) = (
            now_ms().to_string(),
            ms(self.limits.session_ttl).to_string(),
        );
        let max_absent = MAX_ABSENT_MEMBERS.to_string();
        let args: [&[u8]; 7] = [
            conn.as_bytes(),
            claimed.as_bytes(),
            if forget { b"1" } else { b"0" },
            node.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
            max_absent.as_bytes(),
        ];
        let mut r = self.run_ok(&self.scripts.leave, id.as_str(), &args).await?;
        Ok(Left {
            user: r.user()?,
            member_gone: r.int()? == 1,
            session_deleted: r.int()? == 1,
            keys: public_keys(r.rows()?)?,
        })
    }

    pub async fn leave(
        &self,
        id: &SessionId,
        conn: ConnId,
        claimed: Option<&UserId>,
    ) -> Result<Left, AppError> {
        let node = self.node.clone();
        self.remove_conn(id, &conn.to_string(), claimed, true, &node)
            .await
    }

    pub async fn disconnect(&self, id: &SessionId, conn: ConnId) -> Result<Option<Left>, AppError> {
        let node = self.node.clone();
        self.disconnect_on(id, &conn.to_string(), &node).await
    }

    /// A connection of `node` (this one, or a dead one being swept) is gone.
    pub async fn disconnect_on(
        &self,
        id: &SessionId,
        conn: &str,
        node: &str,
    ) -> Result<Option<Left>, AppError> {
        match self.remove_conn(id, conn, None, false, node).await {
            Ok(left) => Ok(Some(left)),
            Err(e) if e.error == ErrorCode::NotInSession => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn close(&self, id: &SessionId, conn: ConnId) -> Result<Vec<UserId>, AppError> {
        let conn = conn.to_string();
        let mut r = self
            .run_ok(&self.scripts.close, id.as_str(), &[conn.as_bytes()])
            .await?;
        r.rows()?.map(|mut row| row.user()).collect()
    }

    pub async fn status(
        &self,
        id: &SessionId,
        credential: Option<&Secret>,
    ) -> Result<(ChatMode, bool), AppError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let credential = credential.filter(|c| !c.is_empty());
        let kh = credential.map(|c| digest(c.expose())).unwrap_or_default();
        let ph = credential
            .and_then(Secret::joiner_password)
            .map(digest)
            .unwrap_or_default();
        let args: [&[u8]; 2] = [kh.as_bytes(), ph.as_bytes()];
        let mut r = self
            .run_ok(&self.scripts.status, id.as_str(), &args)
            .await?;
        Ok((r.mode()?, r.string()? == "1"))
    }

    pub async fn remove_member(
        &self,
        id: &SessionId,
        conn: ConnId,
        target: &UserId,
    ) -> Result<Removed, AppError> {
        let (conn, now) = (conn.to_string(), now_ms().to_string());
        let max_removed = super::session::MAX_REMOVED.to_string();
        let args: [&[u8]; 4] = [
            conn.as_bytes(),
            target.as_str().as_bytes(),
            now.as_bytes(),
            max_removed.as_bytes(),
        ];
        let mut r = self
            .run_ok(&self.scripts.remove, id.as_str(), &args)
            .await?;
        Ok(Removed {
            display_name: r.display_name()?,
            keys: public_keys(r.rows()?)?,
        })
    }

    pub async fn reset_key(
        &self,
        id: &SessionId,
        conn: ConnId,
        key: &Secret,
    ) -> Result<(), AppError> {
        let digest = |s: &str| self.digests.digest(id.as_str(), s);
        let (kh, ph) = (digest(key.expose()), digest(key.password_part()));
        let has_password: &[u8] = if key.expose().contains(':') {
            b"1"
        } else {
            b"0"
        };
        let (conn, now) = (conn.to_string(), now_ms().to_string());
        let args: [&[u8]; 5] = [
            conn.as_bytes(),
            kh.as_bytes(),
            ph.as_bytes(),
            has_password,
            now.as_bytes(),
        ];
        self.run_ok(&self.scripts.reset, id.as_str(), &args).await?;
        Ok(())
    }

    /// Redis expires sessions itself; this prunes them from the index and counts them.
    pub async fn reap(&self) -> usize {
        self.counts(true).await.map_or(0, |(_, pruned)| pruned)
    }

    pub async fn summaries(&self) -> Result<Vec<SessionSummary>, AppError> {
        let now = now_ms();
        let (now_s, limit) = (now.to_string(), SUMMARY_LIMIT.to_string());
        let args: [&[u8]; 2] = [now_s.as_bytes(), limit.as_bytes()];
        let mut r = Reply::new(self.run(&self.scripts.summaries, "", &args).await?)?;
        let mut out = Vec::new();
        while !r.is_empty() {
            let session_id = SessionId::parse(&r.string()?).map_err(|_| AppError::unavailable())?;
            let chat_mode = r.mode()?;
            let reserved = r.string()? == "r";
            let (members, public_keys, messages) = (r.int()?, r.int()?, r.int()?);
            let history_bytes = r.string()?.parse().unwrap_or_default();
            let last: u64 = r.string()?.parse().unwrap_or_default();
            out.push(SessionSummary {
                session_id,
                chat_mode,
                reserved,
                members,
                public_keys,
                messages,
                history_bytes,
                idle_secs: now.saturating_sub(last) / 1000,
            });
        }
        Ok(out)
    }
}

/// What [`RedisStore::view`] reads.
enum View {
    Member,
    Keys,
    Everything,
}

/// The fields of a message its sender chose, serialised in the relay's field names.
struct DraftFields<'a>(&'a MessageDraft);

impl serde::Serialize for DraftFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &d.id)?;
        if let Some(to) = &d.to {
            map.serialize_entry("to", to)?;
        }
        map.serialize_entry("encrypted", &d.encrypted)?;
        if !d.attachments.is_empty() {
            let stored = attachments::stored::encode(d.attachments.as_slice());
            map.serialize_entry(attachments::stored::KEY, &stored)?;
        }
        map.serialize_entry("timestamp", &d.timestamp)?;
        map.serialize_entry("type", &d.kind)?;
        map.end()
    }
}

/// The history entries `user` may read: to everyone, to it, or from it.
fn visible_history(
    rows: impl Iterator<Item = Row>,
    user: &UserId,
) -> Result<Vec<RawMessage>, AppError> {
    let mut out = Vec::new();
    for row in rows {
        let entry = row.into_string()?;
        let mut parts = entry.splitn(5, '\n');
        let (_cost, _id, from, to, json) = (
            parts.next(),
            parts.next(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if to.is_empty() || to == "all" || to == user.as_str() || from == user.as_str() {
            out.push(RawMessage {
                from: from.to_owned(),
                to: to.to_owned(),
                json: RawValue::from_string(json.to_owned())
                    .map_err(|_| AppError::unavailable())?,
            });
        }
    }
    Ok(out)
}

/// Flat `userId, name, key, joinedAt` quadruples into entries.
fn public_keys(mut rows: impl Iterator<Item = Row>) -> Result<Vec<PublicKeyEntry>, AppError> {
    let mut out = Vec::new();
    while let Some(mut user) = rows.next() {
        let (Some(mut name), Some(key), Some(joined)) = (rows.next(), rows.next(), rows.next())
        else {
            return Err(AppError::unavailable());
        };
        let key = RawValue::from_string(key.into_string()?).map_err(|_| AppError::unavailable())?;
        out.push(PublicKeyEntry {
            user_id: user.user()?,
            display_name: name.display_name()?,
            public_key: Opaque::from(key),
            joined_at: joined.into_string()?.parse().unwrap_or_default(),
        });
    }
    Ok(out)
}
