//! Connection setup, written once for every scenario: connections opened with bounded
//! concurrency, parked between phases, rooms joined (creators first; each join waits for
//! its ack, or without acks for the key list that lists the joiner), and torn down.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::Cfg;
use super::stats::{Hist, rate, round3};
use crate::R;
use crate::client::{Conn, In, NoAck, clip};

/// Opens a connection to node `node` (modulo the number of nodes), at most
/// --connect-concurrency at a time, each within --connect-timeout; the time it took goes
/// to `cfg.connect_lat`.
pub async fn connect(cfg: &Cfg, node: usize) -> R<Conn> {
    let server = &cfg.nodes[node % cfg.nodes.len()];
    let (c, took) = Conn::open_bounded(server, &cfg.connect_sem, cfg.connect_timeout).await?;
    cfg.connect_lat
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record_ns(took.as_nanos() as u64);
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// Parked connections: between phases a task keeps reading (pings, join notices) so that
// nothing piles up on the server for an unread socket.
// ---------------------------------------------------------------------------------------

/// A connection a task keeps reading until [`unpark`].
pub struct Parked {
    stop: oneshot::Sender<()>,
    pub task: JoinHandle<R<Conn>>,
}

/// Hands `c` to a task that keeps reading it (and answering pings).
pub fn park(mut c: Conn) -> Parked {
    let (stop, mut rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut rx => return Ok(c),
                f = c.recv() => if let In::Closed(e) = f { return Err(e) },
            }
        }
    });
    Parked { stop, task }
}

/// Takes the connection back from its task (an error if it closed meanwhile).
pub async fn unpark(p: Parked) -> R<Conn> {
    let _ = p.stop.send(());
    p.task.await.map_err(|e| e.to_string())?
}

/// Rooms of `members` parked, joined connections (flat: room r, member m at r*members+m).
pub struct Rooms {
    pub ids: Vec<Arc<str>>,
    pub conns: Vec<Parked>,
    pub connect_s: f64,
    /// Per-connection open time, µs.
    pub connect_lat: Hist,
    pub join_s: f64,
}

/// The open times recorded since the last take.
pub fn take_connect_lat(cfg: &Cfg) -> Hist {
    std::mem::take(&mut *cfg.connect_lat.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Rooms {
    /// The setup figures of a scenario's JSON line (`joins` joins).
    pub fn setup_json(&self, joins: usize) -> Value {
        json!({
            "connect_s": round3(self.connect_s),
            "connects_per_s": rate((self.conns.len()) as u64, self.connect_s),
            "connect_us": self.connect_lat.json(),
            "join_s": round3(self.join_s),
            "joins_per_s": rate(joins as u64, self.join_s),
        })
    }

    /// The setup line of a scenario's table.
    pub fn setup_line(&self) -> String {
        format!(
            "setup: {} connections in {:.2} s (open p50 {} µs, p99 {} µs, max {} µs), joins {:.3} s ({:.0} joins/s)",
            self.conns.len(),
            self.connect_s,
            self.connect_lat.pct(0.5).unwrap_or(0),
            self.connect_lat.pct(0.99).unwrap_or(0),
            self.connect_lat.max,
            self.join_s,
            self.conns.len() as f64 / self.join_s.max(1e-9),
        )
    }
}

/// Opens `rooms * members` parked connections (bounded concurrency), member m of room r
/// on node (r + m) mod N.
pub async fn open_rooms(cfg: &Arc<Cfg>, rooms: usize, members: usize) -> R<Vec<Parked>> {
    let tasks: Vec<_> = (0..rooms * members)
        .map(|i| {
            let cfg = cfg.clone();
            let node = i / members + i % members;
            tokio::spawn(async move { connect(&cfg, node).await.map(park) })
        })
        .collect();
    collect(tasks, "connect").await
}

/// Opens `rooms * members` connections (bounded concurrency), then joins every creator,
/// then every other member (each join done when acked, or without acks when its client
/// has the key list that lists it).
pub async fn setup(cfg: &Arc<Cfg>, tag: &str, rooms: usize, members: usize) -> R<Rooms> {
    let ids: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("{}-{tag}-{r}", cfg.prefix)))
        .collect();
    take_connect_lat(cfg);
    let t = Instant::now();
    let conns = open_rooms(cfg, rooms, members).await?;
    let connect_s = t.elapsed().as_secs_f64();
    let connect_lat = take_connect_lat(cfg);

    let t = Instant::now();
    let mut conns = conns;
    for creators in [true, false] {
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let (r, m) = (i / members, i % members);
                if (m == 0) != creators {
                    return Pending::Ready(p);
                }
                let cfg = cfg.clone();
                let room = ids[r].clone();
                Pending::Task(tokio::spawn(async move {
                    let _permit = cfg.connect_sem.acquire().await.map_err(|e| e.to_string())?;
                    let mut c = unpark(p).await?;
                    c.join(&cfg, &room, m).await?;
                    Ok(park(c))
                }))
            })
            .collect();
        conns = collect_pending(tasks, "join-session").await?;
        if members == 1 {
            break;
        }
    }
    Ok(Rooms {
        ids,
        conns,
        connect_s,
        connect_lat,
        join_s: t.elapsed().as_secs_f64(),
    })
}

/// A connection being set up by a task, or one left as it was.
enum Pending {
    Ready(Parked),
    Task(JoinHandle<R<Parked>>),
}

/// [`collect_pending`] of tasks only.
async fn collect(tasks: Vec<JoinHandle<R<Parked>>>, what: &str) -> R<Vec<Parked>> {
    collect_pending(tasks.into_iter().map(Pending::Task).collect(), what).await
}

/// Awaits every task; fails (dropping, hence closing, the others) if any failed.
async fn collect_pending(tasks: Vec<Pending>, what: &str) -> R<Vec<Parked>> {
    let total = tasks.len();
    let mut out = Vec::with_capacity(total);
    let mut failed = 0;
    let mut first = None;
    for t in tasks {
        match t {
            Pending::Ready(p) => out.push(p),
            Pending::Task(h) => match h.await.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(p) => out.push(p),
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            },
        }
    }
    match first {
        None => Ok(out),
        Some(e) => Err(format!("{what}: {failed} of {total} failed; first: {e}")),
    }
}

/// The (room, connection) list of set-up rooms.
pub fn with_rooms(ids: &[Arc<str>], members: usize, conns: Vec<Parked>) -> Vec<(Arc<str>, Parked)> {
    conns
        .into_iter()
        .enumerate()
        .map(|(i, p)| (ids[i / members].clone(), p))
        .collect()
}

/// Unparks every connection, leaves its room (without waiting), closes it.
pub async fn teardown(cfg: &Arc<Cfg>, conns: Vec<(Arc<str>, Parked)>) {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(room, p)| {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let _permit = cfg.connect_sem.acquire().await;
                if let Ok(mut c) = unpark(p).await {
                    let _ = timeout(Duration::from_secs(2), c.leave(&cfg, &room, false)).await;
                    c.close().await;
                }
            })
        })
        .collect();
    let _ = timeout(Duration::from_secs(20), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Joining and leaving rooms: the generator's protocol steps on a connection
// ---------------------------------------------------------------------------------------

impl Conn {
    /// join-session as member `m` (0 = creator) of `room`. With acks, waits for it and
    /// checks `ok`; without, waits for the key list that lists the joiner.
    pub(super) async fn join(&mut self, cfg: &Cfg, room: &str, m: usize) -> R<()> {
        self.join_with_key(cfg, room, m, 0).await
    }

    /// join-session with a publicKey `pk<u>` padded to `key_bytes` (0: unpadded).
    pub(super) async fn join_with_key(
        &mut self,
        cfg: &Cfg,
        room: &str,
        m: usize,
        key_bytes: usize,
    ) -> R<()> {
        let u = m + 1;
        let mut key = format!("pk{u}.");
        if key.len() < key_bytes {
            key.push_str(
                &cfg.filler_for_keys[..(key_bytes - key.len()).min(cfg.filler_for_keys.len())],
            );
        } else {
            key.pop();
        }
        let payload = if m == 0 {
            format!(
                r#"{{"sessionId":"{room}","userId":"u1","isCreator":true,"authKey":"k","publicKey":"{key}"}}"#
            )
        } else {
            format!(
                r#"{{"sessionId":"{room}:k","userId":"u{u}","isCreator":false,"publicKey":"{key}"}}"#
            )
        };
        if cfg.acks {
            let id = self.emit_ack("join-session", &payload).await?;
            let v = self.wait_ack(id, cfg.ack_timeout, "join-session").await?;
            if v.get("ok") != Some(&Value::Bool(true)) {
                let code = v.get("error").and_then(Value::as_str).unwrap_or("?");
                let hint = if code == "LIMIT_REACHED" && m > 0 {
                    " (blindrelay: raise MAX_GROUP_MEMBERS, default 64, or MAX_SESSIONS)"
                } else {
                    ""
                };
                return Err(format!("join-session refused: {v}{hint}"));
            }
        } else {
            self.emit("join-session", &payload).await?;
            self.wait_joined(&format!("u{u}"), cfg.ack_timeout).await?;
        }
        Ok(())
    }

    /// Without acks: reads up to the `public-keys-updated` that lists `user`. Servers of
    /// this protocol send it to the whole room, the joiner included, once the joiner is in
    /// the room and its key stored (the original server: after `user-joined`, history and
    /// metadata), so what is sent to the room after it reaches this client. A
    /// `session-error` is a refusal.
    async fn wait_joined(&mut self, user: &str, limit: Duration) -> R<()> {
        let needle = format!("\"userId\":\"{user}\"");
        let fut = async {
            loop {
                match self.recv().await {
                    In::Event(t)
                        if t.starts_with("42[\"public-keys-updated\"") && t.contains(&needle) =>
                    {
                        return Ok(());
                    }
                    In::Event(t) if t.starts_with("42[\"session-error\"") => {
                        return Err(format!("join-session refused: {}", clip(&t)));
                    }
                    In::Closed(e) => {
                        return Err(format!("closed while waiting for the join of {user}: {e}"));
                    }
                    _ => {}
                }
            }
        };
        match timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no public-keys-updated listing {user} within {:.1} s of its join-session \
                 (--acks false); for servers that ack joins pass --acks true",
                limit.as_secs_f64()
            )),
        }
    }

    /// leave-session; with `wait` and acks, waits for the ack.
    pub(super) async fn leave(&mut self, cfg: &Cfg, room: &str, wait: bool) -> R<()> {
        let payload = format!(r#"{{"sessionId":"{room}"}}"#);
        if cfg.acks && wait {
            let id = self.emit_ack("leave-session", &payload).await?;
            self.wait_ack(id, cfg.ack_timeout, "leave-session").await?;
        } else {
            self.emit("leave-session", &payload).await?;
        }
        Ok(())
    }

    /// Reads up to the ack `id` (`limit` at most) and returns its first argument.
    async fn wait_ack(&mut self, id: u32, limit: Duration, what: &str) -> R<Value> {
        match timeout(limit, self.read_ack(id)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(NoAck::Bad(e))) => Err(format!("bad ack to {what}: {e}")),
            Ok(Err(NoAck::Closed(e))) => {
                Err(format!("closed while waiting for the ack to {what}: {e}"))
            }
            Err(_) => Err(format!(
                "no ack to {what} within {:.1} s; for servers that send no acks (the original \
                 Node server) pass --acks false",
                limit.as_secs_f64()
            )),
        }
    }
}
