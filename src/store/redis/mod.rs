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
mod value;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use redis::{Script, Value};
use serde_json::value::RawValue;

use self::value::{Reply, Row};
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

/// How long the node waits for a script before it answers UNAVAILABLE: this, plus
/// [`DEADLINE_PER_MIB`] for each MiB it sends. The script must run within
/// [`FENCE_MARGIN`] less, or it changes nothing (common.lua's fence), so that an
/// operation answered UNAVAILABLE is never applied later.
const DEADLINE: Duration = Duration::from_secs(2);
const DEADLINE_PER_MIB: Duration = Duration::from_secs(1);
const FENCE_MARGIN: Duration = Duration::from_millis(500);

/// The deadline of a script call that sends `bytes` of arguments.
fn deadline(bytes: usize) -> Duration {
    DEADLINE + DEADLINE_PER_MIB * u32::try_from(bytes >> 20).unwrap_or(u32::MAX).min(60)
}

/// How many absent members a session remembers (as in memory).
const MAX_ABSENT_MEMBERS: usize = 64;
/// On a cluster, how far a session's history size may move before its message tells the
/// global total (a round trip to the `{g}` slot): a sixteenth of its bound.
pub fn account_grain(limits: &StoreLimits) -> usize {
    (limits.history_max_bytes / 16).max(1)
}

/// Rows `GET /sessions` lists per mode.
const SUMMARY_LIMIT: usize = 1000;

/// A script: `lua/common.lua`, then the file's body as a function whose reply
/// `finish` returns with the ledger, if any (see common.lua).
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            "local function main()\n",
            include_str!(concat!("lua/", $file)),
            "\nend\nreturn finish(main())\n"
        ))
    };
}

/// The scripts, hashed once (`EVALSHA`, loaded again after a Redis restart).
struct Scripts {
    reserve: Script,
    join: Script,
    member: Script,
    receipt: Script,
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
    summary: Script,
    ledger: Script,
    shed: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            reserve: script!("reserve.lua"),
            join: script!("join.lua"),
            member: script!("member.lua"),
            receipt: script!("receipt.lua"),
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
            summary: script!("summary.lua"),
            ledger: script!("ledger.lua"),
            shed: script!("shed.lua"),
        }
    }
}

/// The slot a script runs in.
#[derive(Clone, Copy)]
enum Slot<'a> {
    /// The session's own keys (and, on one server, the global ones).
    Session(&'a str),
    /// The global keys only (`{g}`).
    Global,
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

    /// Runs `script` for session `id` with `args` after the prefix and id.
    async fn run(&self, script: &Script, id: &str, args: &[&[u8]]) -> Result<Value, AppError> {
        self.invoke(script, Slot::Session(id), args, "").await
    }

    /// Runs a script that may create a session (when `creating`): on a cluster it
    /// cannot count the sessions itself, so it is given the count read just before.
    async fn run_creating(
        &self,
        script: &Script,
        id: &str,
        args: &[&[u8]],
        creating: bool,
    ) -> Result<Value, AppError> {
        let seen = match creating && self.conn.is_cluster() {
            true => self.session_count().await?.to_string(),
            false => String::new(),
        };
        self.invoke(script, Slot::Session(id), args, &seen).await
    }

    /// Runs `script` in `slot`, then applies the ledger it returned, if any.
    async fn invoke(
        &self,
        script: &Script,
        slot: Slot<'_>,
        args: &[&[u8]],
        seen: &str,
    ) -> Result<Value, AppError> {
        if !self.bus.is_up() {
            return Err(AppError::unavailable());
        }
        let within = deadline(args.iter().map(|a| a.len()).sum());
        let fence = self.clock.fence(within - FENCE_MARGIN);
        let call = self.eval(script, slot, args, seen, &fence);
        let reply = tokio::time::timeout(within, call).await.map_err(|_| {
            tracing::warn!(within = ?within, "a Redis call took too long");
            AppError::unavailable()
        })??;
        Ok(self.apply_ledger(reply).await)
    }

    /// One script call. Global scripts and every script on one server may touch the
    /// global keys (`'1'`); session scripts on a cluster list their changes instead.
    async fn eval(
        &self,
        script: &Script,
        slot: Slot<'_>,
        args: &[&[u8]],
        seen: &str,
        fence: &str,
    ) -> Result<Value, AppError> {
        let mut call = script.prepare_invoke();
        let (key, id, globals_here) = match slot {
            Slot::Session(id) => (
                format!("{}s:{{{id}}}", self.prefix),
                id,
                !self.conn.is_cluster(),
            ),
            Slot::Global => (format!("{}idx:group", self.global), "", true),
        };
        call.key(key).arg(&*self.prefix).arg(id);
        for a in args {
            call.arg(*a);
        }
        call.arg(if globals_here { "1" } else { "0" })
            .arg(seen)
            .arg(fence);
        let started = Instant::now();
        let result = call.invoke_async(&mut self.conn.clone()).await;
        crate::telemetry::redis_round_trip(started.elapsed().as_secs_f64(), result.is_ok());
        result.map_err(|e| {
            tracing::warn!(error = %e, "Redis call failed");
            AppError::unavailable()
        })
    }

    /// A reply `{'LEDGER', entries, reply}` (a session script on a cluster): applies the
    /// entries to the global keys, then answers the reply. The session's change is made
    /// either way; if the ledger cannot be applied, the index catches up at the
    /// session's next change and the history total at the reaper's next recount.
    async fn apply_ledger(&self, reply: Value) -> Value {
        let Value::Array(mut items) = reply else {
            return reply;
        };
        let is_ledger = items.len() == 3
            && matches!(&items[0], Value::BulkString(b) if b.as_slice() == b"LEDGER");
        if !is_ledger {
            return Value::Array(items);
        }
        let reply = items.pop().unwrap_or(Value::Nil);
        let Some(Value::Array(entries)) = items.pop() else {
            return reply;
        };
        let entries: Vec<Vec<u8>> = entries
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => b,
                Value::SimpleString(s) => s.into_bytes(),
                Value::Int(n) => n.to_string().into_bytes(),
                _ => Vec::new(),
            })
            .collect();
        let args: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        if let Err(e) = self
            .eval(&self.scripts.ledger, Slot::Global, &args, "", "")
            .await
        {
            tracing::warn!(error = ?e.error, "cannot update the global index on the cluster; it catches up later");
        }
        reply
    }

    /// Sessions not yet expired, read from the global index (a cluster's scripts
    /// cannot).
    async fn session_count(&self) -> Result<usize, AppError> {
        let now = format!("({}", now_ms());
        let mut pipe = redis::pipe();
        for mode in [ChatMode::Group, ChatMode::Private, ChatMode::Password] {
            pipe.zcount(
                format!("{}idx:{}", self.global, mode.as_str()),
                &now,
                "+inf",
            );
        }
        let counts: Vec<usize> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|_| AppError::unavailable())?;
        Ok(counts.into_iter().sum())
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
        let reply = self
            .invoke(
                &self.scripts.stats,
                Slot::Global,
                &[now.as_bytes(), prune],
                "",
            )
            .await?;
        let mut r = Reply::new(reply)?;
        if r.status() != "OK" {
            return Err(refusal(r.status(), &self.limits));
        }
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
            .run_creating(&self.scripts.reserve, id.as_str(), &args, true)
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
        let conn = self.digests.conn(req.session.as_str(), req.conn);
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
        // A token only for a join that can receive it (its ack).
        let (token, new_digest) = match req.acked {
            true => {
                let (token, _) = resume::issue();
                let d = digest(&token);
                (token, d)
            }
            false => (String::new(), String::new()),
        };
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
        // On a cluster this node lists the connection before the script binds it (see
        // common.lua's node_add), and takes it back if the join is refused.
        let listed = match self.conn.is_cluster() {
            true => Some(self.list_conn(&req.session, &conn).await?),
            false => None,
        };
        // Subscribed before the script, so nothing published after its history is missed.
        let subscribed = match &self.channels {
            Some(bus) => bus
                .acquire(&req.session, req.conn)
                .await
                .map_err(|_| AppError::unavailable())?,
            None => false,
        };
        let reply = self
            .run_creating(
                &self.scripts.join,
                req.session.as_str(),
                &args,
                req.is_creator,
            )
            .await
            .and_then(Reply::new);
        let mut r = match reply.and_then(|r| match r.status() {
            "OK" => Ok(r),
            code => Err(refusal(code, &self.limits)),
        }) {
            Ok(r) => r,
            Err(e) => {
                if let Some(entry) = listed
                    && e.error != ErrorCode::Unavailable
                {
                    self.unlist_conn(entry).await;
                }
                if subscribed && let Some(bus) = &self.channels {
                    bus.release(&req.session, req.conn).await;
                }
                return Err(e);
            }
        };
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
            restored: false,
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
        let conn = self.digests.conn(id.as_str(), conn);
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

    /// See [`Store::receipt`](super::Store::receipt): `lua/receipt.lua` looks each id up
    /// in the session's dedup index.
    pub async fn receipt(
        &self,
        id: &SessionId,
        conn: ConnId,
        sender: &UserId,
        ids: &[String],
    ) -> Result<(UserId, Vec<String>), AppError> {
        let conn = self.digests.conn(id.as_str(), conn);
        let mut args: Vec<&[u8]> = vec![conn.as_bytes(), sender.as_str().as_bytes()];
        args.extend(ids.iter().map(|m| m.as_bytes()));
        let mut r = self
            .run_ok(&self.scripts.receipt, id.as_str(), &args)
            .await?;
        let user = r.user()?;
        let received = r
            .rows()?
            .map(|row| row.into_string())
            .collect::<Result<_, _>>()?;
        Ok((user, received))
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
        let conn = self.digests.conn(id.as_str(), conn);
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
        let conn = self.digests.conn(id.as_str(), conn);
        let claimed = claimed_from.map_or("", UserId::as_str);
        let (cost, max_messages, max_bytes, timestamp, now, budget) = (
            cost.to_string(),
            self.limits.history_max_messages.to_string(),
            self.limits.history_max_bytes.to_string(),
            draft.timestamp.to_string(),
            now_ms().to_string(),
            self.limits.history_total_max_bytes.to_string(),
        );
        let relay: &[u8] = if self.publishes(&draft) { b"1" } else { b"0" };
        let to_you = crate::protocol::delivery::to_you_json();
        let node = self.channels.as_ref().map_or("", |b| b.node());
        let grain = account_grain(&self.limits).to_string();
        let (park_over, park_ms) = (
            crate::bus::PARK_OVER_BYTES.to_string(),
            crate::bus::PARKED_FOR.as_millis().to_string(),
        );
        let args: [&[u8]; 17] = [
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
            relay,
            to_you.get().as_bytes(),
            node.as_bytes(),
            grain.as_bytes(),
            park_over.as_bytes(),
            park_ms.as_bytes(),
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
        let conn = self.digests.conn(id.as_str(), conn);
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
        let left = self
            .remove_conn(
                id,
                &self.digests.conn(id.as_str(), conn),
                claimed,
                true,
                &node,
            )
            .await?;
        self.unsubscribe(id, conn).await;
        Ok(left)
    }

    pub async fn disconnect(&self, id: &SessionId, conn: ConnId) -> Result<Option<Left>, AppError> {
        let node = self.node.clone();
        // The socket is gone whatever Redis answers (a failure is retried for the others).
        self.unsubscribe(id, conn).await;
        self.disconnect_on(id, &self.digests.conn(id.as_str(), conn), &node)
            .await
    }

    /// `conn` left session `id`: this node may stop reading its channel.
    async fn unsubscribe(&self, id: &SessionId, conn: ConnId) {
        if let Some(bus) = &self.channels {
            bus.release(id, conn).await;
        }
    }

    /// A connection of `node` (this one, or a dead one being swept) is gone. `conn` is
    /// its name in Redis ([`DigestKey::conn`]), as the node's list holds it.
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
        let sid = self.digests.conn(id.as_str(), conn);
        let mut r = self
            .run_ok(&self.scripts.close, id.as_str(), &[sid.as_bytes()])
            .await?;
        self.unsubscribe(id, conn).await;
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
        let (conn, now) = (self.digests.conn(id.as_str(), conn), now_ms().to_string());
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
        let (conn, now) = (self.digests.conn(id.as_str(), conn), now_ms().to_string());
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
        let Ok((stats, pruned)) = self.counts(true).await else {
            return 0;
        };
        if let Err(e) = self.shed(stats.history_bytes).await {
            tracing::warn!(error = ?e.error, "cannot shed history over HISTORY_TOTAL_MAX_BYTES");
        }
        pruned
    }

    pub async fn summaries(&self) -> Result<Vec<SessionSummary>, AppError> {
        let now = now_ms();
        let (now_s, limit) = (now.to_string(), SUMMARY_LIMIT.to_string());
        let args: [&[u8]; 2] = [now_s.as_bytes(), limit.as_bytes()];
        let mut listed = Reply::new(
            self.invoke(&self.scripts.summaries, Slot::Global, &args, "")
                .await?,
        )?;
        let mut out = Vec::new();
        while !listed.is_empty() {
            let session_id =
                SessionId::parse(&listed.string()?).map_err(|_| AppError::unavailable())?;
            let chat_mode = listed.mode()?;
            let mut r = Reply::new(
                self.run(&self.scripts.summary, session_id.as_str(), &[])
                    .await?,
            )?;
            if r.status() != "OK" {
                continue; // expired since it was listed
            }
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

    /// On a cluster: lists `conn` under this node, for the sweep if the node dies.
    async fn list_conn(&self, session: &SessionId, conn: &str) -> Result<String, AppError> {
        let entry = format!("{}|{conn}", session.as_str());
        redis::cmd("SADD")
            .arg(self.node_conns())
            .arg(&entry)
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|_| AppError::unavailable())?;
        Ok(entry)
    }

    async fn unlist_conn(&self, entry: String) {
        let removed = redis::cmd("SREM")
            .arg(self.node_conns())
            .arg(entry)
            .query_async::<()>(&mut self.conn.clone())
            .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot unlist a refused join's connection; the node's sweep ignores it");
        }
    }

    fn node_conns(&self) -> String {
        format!("{}n:{}:c", self.global, self.node)
    }

    /// On a cluster, keeps `HISTORY_TOTAL_MAX_BYTES` (the scripts cannot read the
    /// total there): while the total is over the budget, the largest history loses
    /// its oldest messages down to the next largest, until 90 % of the budget, as
    /// `lua/append.lua` does on one server. Returns the messages dropped.
    async fn shed(&self, mut total: usize) -> Result<u64, AppError> {
        let budget = self.limits.history_total_max_bytes;
        if !self.conn.is_cluster() || budget == 0 || total <= budget {
            return Ok(0);
        }
        let target = budget - budget / 10;
        let mut evicted = 0;
        // Bounded: each round empties the largest history down to the next one.
        for _ in 0..1000 {
            if total <= target {
                break;
            }
            let top: Vec<(String, usize)> = redis::cmd("ZREVRANGE")
                .arg(format!("{}hb:size", self.global))
                .arg(0)
                .arg(1)
                .arg("WITHSCORES")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|_| AppError::unavailable())?;
            let Some((sid, size)) = top.first().cloned() else {
                break;
            };
            let next = top.get(1).map_or(0, |(_, s)| *s);
            let keep = next.max(size.saturating_sub(total - target));
            let keep_s = keep.to_string();
            let mut r = self
                .run_ok(&self.scripts.shed, &sid, &[keep_s.as_bytes()])
                .await?;
            let (after, dropped) = (r.int()?, r.int()?);
            total = total.saturating_sub(size.saturating_sub(after));
            evicted += dropped as u64;
            if size == after {
                break; // nothing more to drop there
            }
        }
        if evicted > 0 {
            metrics::counter!(crate::telemetry::HISTORY_EVICTED_TOTAL).increment(evicted);
        }
        Ok(evicted)
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
