//! Honest clients: sessions of two connections (creator and joiner) that join, exchange
//! rounds of messages (each delivered once, in time), and end one of four ways.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use super::{Cfg, Counters, Rng, connect};
use crate::R;
use crate::client::{Conn, In, parse_ack};

/// One honest connection and what it received.
struct Peer {
    conn: Conn,
    /// `new-message` deliveries per message id.
    seen: HashMap<String, u32>,
    acks: HashMap<u32, Value>,
    history: Option<Vec<String>>,
    session_closed: bool,
    closed: Option<String>,
}

impl Peer {
    fn new(conn: Conn) -> Self {
        Peer {
            conn,
            seen: HashMap::new(),
            acks: HashMap::new(),
            history: None,
            session_closed: false,
            closed: None,
        }
    }

    fn absorb(&mut self, f: In, c: &Counters) {
        match f {
            In::Event(t) => {
                let Ok(v) = serde_json::from_str::<Value>(&t[2..]) else {
                    return;
                };
                match v[0].as_str() {
                    Some("new-message") => {
                        let id = v[1]["id"].as_str().unwrap_or("").to_owned();
                        c.deliveries.fetch_add(1, Ordering::Relaxed);
                        let count = self.seen.entry(id).or_default();
                        *count += 1;
                        if *count > 1 {
                            c.duplicated.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some("messages-history") => {
                        let ids = v[1].as_array().map(|a| {
                            a.iter()
                                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                                .collect()
                        });
                        self.history = ids;
                    }
                    Some("session-closed") => self.session_closed = true,
                    _ => {}
                }
            }
            In::Ack(t) => {
                if let Some((id, v)) = parse_ack(&t) {
                    self.acks.insert(id, v);
                }
            }
            In::Other(_) => {}
            In::Closed(e) => self.closed = Some(e),
        }
    }

    /// The ack `id`, which must be `ok: true`.
    fn ok(&self, id: u32, what: &str) -> R<()> {
        match self.acks.get(&id) {
            Some(v) if v["ok"] == Value::Bool(true) => Ok(()),
            Some(v) => Err(format!("{what} refused: {v}")),
            None => Err(format!("no ack to {what}")),
        }
    }
}

/// Reads both connections until `done` holds, a connection closes or the time is up.
async fn pump(
    cfg: &Cfg,
    a: &mut Peer,
    b: &mut Peer,
    limit: Duration,
    done: impl Fn(&Peer, &Peer) -> bool,
) -> R<()> {
    let until = Instant::now() + limit;
    loop {
        if done(a, b) {
            return Ok(());
        }
        if let Some(e) = a.closed.as_ref().or(b.closed.as_ref()) {
            cfg.c.honest_disconnects.fetch_add(1, Ordering::Relaxed);
            return Err(format!("honest connection closed: {e}"));
        }
        let (which, f) = tokio::select! {
            f = a.conn.recv() => (0, f),
            f = b.conn.recv() => (1, f),
            () = tokio::time::sleep_until(until) => return Err("timed out".into()),
        };
        if which == 0 {
            a.absorb(f, &cfg.c);
        } else {
            b.absorb(f, &cfg.c);
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Group,
    Private,
    Password,
}

struct Room {
    id: String,
    mode: Mode,
    auth_key: String,
    /// What the joiner puts in sessionId.
    link: String,
}

impl Room {
    fn new(cfg: &Cfg, w: usize, cycle: u64, rng: &mut Rng) -> Room {
        let id = format!("{}-{w}-{cycle}", cfg.prefix);
        let mode = [Mode::Group, Mode::Private, Mode::Password][rng.below(3) as usize];
        let key = rng.hex();
        let (auth_key, link) = match mode {
            Mode::Password => {
                let pw = rng.hex();
                (format!("{key}:{pw}"), format!("{id}:password:{pw}"))
            }
            _ => (key.clone(), format!("{id}:{key}")),
        };
        Room {
            id,
            mode,
            auth_key,
            link,
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Group => "group",
            Mode::Private => "private",
            Mode::Password => "password",
        }
    }
}

/// Joins `b` (the joiner) and waits for its ack (reading `a` meanwhile).
async fn join_joiner(cfg: &Cfg, room: &Room, a: &mut Peer, b: &mut Peer) -> R<()> {
    let id = b
        .conn
        .emit_ack(
            "join-session",
            &json!({"sessionId": room.link, "userId": "u2", "displayName": "Bob", "publicKey": "pk-u2"}),
        )
        .await?;
    pump(cfg, a, b, cfg.deliver_timeout, |_, b| {
        b.acks.contains_key(&id)
    })
    .await?;
    b.ok(id, "join-session (joiner)")
}

/// One round: each side sends one message (to all, or to the other on odd rounds); both
/// must be acked and delivered once.
#[allow(clippy::too_many_arguments)]
async fn round(
    cfg: &Cfg,
    room: &Room,
    tag: &str,
    r: u32,
    rng: &mut Rng,
    a: &mut Peer,
    b: &mut Peer,
    sent: &mut Vec<String>,
) -> R<()> {
    let (ida, idb) = (format!("{tag}.{r}.a"), format!("{tag}.{r}.b"));
    let (to_a, to_b) = if r.is_multiple_of(2) {
        ("all", "all")
    } else {
        ("u2", "u1")
    };
    let body_a = "a".repeat(64 + rng.below(2000) as usize);
    let body_b = "b".repeat(64 + rng.below(2000) as usize);
    let message = |to: &str, body: String, id: &str| json!({"sessionId": room.id, "to": to, "encrypted": body, "clientMessageId": id});
    let acka = a
        .conn
        .emit_ack("send-message", message(to_a, body_a, &ida))
        .await?;
    let ackb = b
        .conn
        .emit_ack("send-message", message(to_b, body_b, &idb))
        .await?;
    cfg.c.messages_sent.fetch_add(2, Ordering::Relaxed);
    cfg.c.deliveries_expected.fetch_add(2, Ordering::Relaxed);
    let result = pump(cfg, a, b, cfg.deliver_timeout, |a, b| {
        a.acks.contains_key(&acka)
            && b.acks.contains_key(&ackb)
            && b.seen.contains_key(&ida)
            && a.seen.contains_key(&idb)
    })
    .await;
    let lost = u64::from(!b.seen.contains_key(&ida)) + u64::from(!a.seen.contains_key(&idb));
    cfg.c.lost.fetch_add(lost, Ordering::Relaxed);
    result.map_err(|e| format!("round {r}: {e} ({lost} lost)"))?;
    a.ok(acka, "send-message")?;
    b.ok(ackb, "send-message")?;
    sent.push(ida);
    sent.push(idb);
    Ok(())
}

async fn leave_both(cfg: &Cfg, room: &Room, mut a: Peer, mut b: Peer) -> R<()> {
    let payload = json!({"sessionId": room.id});
    let la = a.conn.emit_ack("leave-session", &payload).await?;
    let lb = b.conn.emit_ack("leave-session", &payload).await?;
    pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, b| {
        a.acks.contains_key(&la) && b.acks.contains_key(&lb)
    })
    .await?;
    a.ok(la, "leave-session")?;
    b.ok(lb, "leave-session")?;
    a.conn.close().await;
    b.conn.close().await;
    Ok(())
}

async fn honest_cycle(cfg: &Cfg, w: usize, cycle: u64, rng: &mut Rng) -> R<()> {
    let room = Room::new(cfg, w, cycle, rng);
    cfg.c.sessions_started.fetch_add(1, Ordering::Relaxed);
    let (ca, cb) = tokio::join!(connect(cfg), connect(cfg));
    let (mut a, mut b) = (Peer::new(ca?), Peer::new(cb?));
    let id = a
        .conn
        .emit_ack(
            "join-session",
            &json!({"sessionId": room.id, "userId": "u1", "displayName": "Alice",
                "publicKey": "pk-u1", "isCreator": true, "authKey": room.auth_key,
                "chatMode": room.mode_name()}),
        )
        .await?;
    pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, _| {
        a.acks.contains_key(&id)
    })
    .await?;
    a.ok(id, "join-session (creator)")?;
    join_joiner(cfg, &room, &mut a, &mut b).await?;

    let tag = format!("{}.{w}.{cycle}", cfg.prefix);
    let rounds = 3 + rng.below(6) as u32;
    let mut sent = Vec::new();
    for r in 0..rounds {
        round(cfg, &room, &tag, r, rng, &mut a, &mut b, &mut sent).await?;
        // Pacing (load shape), not synchronisation: every wait above is on frames.
        let pause = cfg.round_pause.as_millis() as u64;
        sleep(Duration::from_millis(pause / 2 + rng.below(pause.max(1)))).await;
    }

    let end = rng.below(4) as usize;
    cfg.c.ends[end].fetch_add(1, Ordering::Relaxed);
    match end {
        0 => leave_both(cfg, &room, a, b).await?,
        1 => {
            // The joiner's transport drops; it reconnects and rejoins.
            drop(b);
            let mut b2 = Peer::new(connect(cfg).await?);
            join_joiner(cfg, &room, &mut a, &mut b2).await?;
            let history = b2
                .history
                .clone()
                .ok_or("no messages-history before the join ack")?;
            for id in &sent {
                cfg.c.history_checked.fetch_add(1, Ordering::Relaxed);
                if !history.contains(id) {
                    cfg.c.history_missing.fetch_add(1, Ordering::Relaxed);
                }
            }
            round(cfg, &room, &tag, rounds, rng, &mut a, &mut b2, &mut sent).await?;
            leave_both(cfg, &room, a, b2).await?;
        }
        // Both transports drop: the emptied session is left to the reaper.
        2 => drop((a, b)),
        _ => {
            let id = a
                .conn
                .emit_ack("close-session", &json!({"sessionId": room.id}))
                .await?;
            pump(cfg, &mut a, &mut b, cfg.deliver_timeout, |a, b| {
                a.acks.contains_key(&id) && b.session_closed
            })
            .await?;
            a.ok(id, "close-session")?;
            a.conn.close().await;
            b.conn.close().await;
        }
    }
    cfg.c.sessions_completed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Honest worker `w`: sessions one after the other until the deadline.
pub async fn honest(cfg: Arc<Cfg>, w: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ (w as u64).wrapping_mul(0x1000_0001));
    let mut cycle = 0;
    while Instant::now() < cfg.deadline {
        if let Err(e) = honest_cycle(&cfg, w, cycle, &mut rng).await {
            cfg.c.honest_error(format!("session {w}.{cycle}: {e}"));
            // Not to spin when the server is gone: the failure is counted already.
            sleep(Duration::from_millis(500)).await;
        }
        cycle += 1;
    }
}
