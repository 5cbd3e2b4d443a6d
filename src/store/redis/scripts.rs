//! How a store operation runs: one Lua script per operation (`lua/`, each prefixed with
//! `lua/common.lua`), in the slot it names, within a deadline it can be fenced by, and
//! the global ledger a session script returns applied next (see the parent's doc).

use super::*;

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
pub(super) struct Scripts {
    pub(super) reserve: Script,
    pub(super) join: Script,
    pub(super) member: Script,
    pub(super) receipt: Script,
    pub(super) departed: Script,
    pub(super) save_key: Script,
    pub(super) append: Script,
    pub(super) set_group_keys: Script,
    pub(super) leave: Script,
    pub(super) close: Script,
    pub(super) remove: Script,
    pub(super) reset: Script,
    pub(super) status: Script,
    pub(super) stats: Script,
    pub(super) summaries: Script,
    pub(super) summary: Script,
    pub(super) ledger: Script,
    pub(super) shed: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
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
pub(super) enum Slot<'a> {
    /// The session's own keys (and, on one server, the global ones).
    Session(&'a str),
    /// The global keys only (`{g}`).
    Global,
}

impl RedisStore {
    /// Runs `script` for session `id` with `args` after the prefix and id.
    pub(super) async fn run(
        &self,
        script: &Script,
        id: &str,
        args: &[&[u8]],
    ) -> Result<Value, AppError> {
        self.invoke(script, Slot::Session(id), args, "").await
    }

    /// Runs a script that may create a session (when `creating`): on a cluster it
    /// cannot count the sessions itself, so it is given the count read just before.
    pub(super) async fn run_creating(
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
    pub(super) async fn invoke(
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

    /// Runs a script whose reply starts with `OK` or a refusal code.
    pub(super) async fn run_ok(
        &self,
        script: &Script,
        id: &str,
        args: &[&[u8]],
    ) -> Result<Reply, AppError> {
        let reply = Reply::new(self.run(script, id, args).await?)?;
        match reply.status() {
            "OK" => Ok(reply),
            code => Err(refusal(code, &self.limits)),
        }
    }
}
