//! Abusive clients: what honest clients never send (garbage frames and bytes, unknown
//! events, malformed payloads, oversized frames and messages, wrong-key joins, floods),
//! each of which must get the answer it should, or a closed connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use super::{Cfg, Rng, connect};
use crate::R;
use crate::client::{Conn, In, NoAck, parse_ack};

const ABUSES: [&str; 9] = [
    "garbage-text",
    "garbage-binary",
    "garbage-http",
    "unknown-event",
    "malformed-payload",
    "oversized-frame",
    "too-large-message",
    "wrong-key-join",
    "flood",
];

/// Events a flooding client sends without waiting.
const FLOOD: u64 = 400;

const GARBAGE: [&str; 10] = [
    "42[not json",
    "4",
    "42",
    "zzz",
    "42[\"send-message\"",
    "\u{0}\u{1}\u{2}",
    "9",
    "40/nope,",
    "43x[]",
    "42[\"join-session\",{\"sessionId\":",
];

/// Payloads every handler must refuse with BAD_REQUEST: (event, payload text).
const MALFORMED: [(&str, &str); 9] = [
    ("join-session", "\"a string\""),
    ("join-session", "[\"s1\",\"u1\"]"),
    ("join-session", "{\"sessionId\":123,\"userId\":\"u\"}"),
    (
        "join-session",
        "{\"sessionId\":\"bad id!\",\"userId\":\"u\"}",
    ),
    ("send-message", "{}"),
    (
        "set-session-key",
        "{\"sessionId\":\"x\",\"encryptedKeys\":\"nope\"}",
    ),
    ("typing", "null"),
    (
        "file-downloaded",
        "{\"sessionId\":\"x\",\"senderId\":\"a b\",\"fileName\":\"f\"}",
    ),
    ("send-message", "{\"sessionId\":\"x\",\"encrypted\":null}"),
];

/// Reads until the ack `id` (its first argument) or the end of the connection (None).
async fn ack_or_close(c: &mut Conn, id: u32) -> R<Option<Value>> {
    match timeout(Duration::from_secs(15), c.read_ack(id)).await {
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(NoAck::Closed(_))) => Ok(None),
        Ok(Err(NoAck::Bad(e))) => Err(format!("ack {id}: {e}")),
        Err(_) => Err(format!("neither ack {id} nor close within 15 s")),
    }
}

/// After garbage: the server either closed the connection or still answers an event.
async fn probe(cfg: &Cfg, c: &mut Conn, kind: &'static str) -> R<()> {
    let id = match c
        .emit_ack("get-public-keys", &json!({"sessionId": "nowhere"}))
        .await
    {
        Ok(id) => id,
        Err(_) => {
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    match ack_or_close(c, id).await? {
        None => {
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Some(v) if v["error"] == "NOT_IN_SESSION" => Ok(()),
        Some(v) => Err(format!("{kind}: probe answered {v}")),
    }
}

fn expect_code(cfg: &Cfg, v: Option<Value>, allowed: &[&str], what: &str) -> R<()> {
    let v = v.ok_or_else(|| format!("{what}: connection closed instead of an answer"))?;
    let code = v["error"].as_str().unwrap_or("");
    if v["ok"] == Value::Bool(false) && allowed.contains(&code) {
        cfg.c.code(code);
        Ok(())
    } else {
        Err(format!("{what}: expected one of {allowed:?}, got {v}"))
    }
}

async fn abuse_once(cfg: &Cfg, k: usize, i: u64, rng: &mut Rng) -> R<()> {
    let kind = ABUSES[rng.below(ABUSES.len() as u64) as usize];
    *cfg.c.abuse_kinds.lock().unwrap().entry(kind).or_default() += 1;
    cfg.c.abuse_connections.fetch_add(1, Ordering::Relaxed);
    if kind == "garbage-http" {
        let mut tcp = TcpStream::connect(&cfg.server.addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut junk: Vec<u8> = (0..64 + rng.below(512)).map(|_| rng.next() as u8).collect();
        junk.extend_from_slice(b"\r\n\r\n");
        tcp.write_all(&junk).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        // The server answers 400 and closes, or just closes: either ends the stream.
        match timeout(Duration::from_secs(15), tcp.read_to_end(&mut buf)).await {
            Ok(_) => {
                cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(_) => return Err("garbage-http: the server kept the connection 15 s".into()),
        }
    }
    let mut c = connect(cfg).await?;
    match kind {
        "garbage-text" => {
            let g = GARBAGE[rng.below(GARBAGE.len() as u64) as usize];
            c.send(g.to_owned()).await?;
            probe(cfg, &mut c, kind).await?;
        }
        "garbage-binary" => {
            let junk: Vec<u8> = (0..1 + rng.below(256)).map(|_| rng.next() as u8).collect();
            c.send_binary(junk).await?;
            probe(cfg, &mut c, kind).await?;
        }
        "unknown-event" => {
            let unknown = c
                .emit_ack("no-such-event", &json!({"sessionId": "x"}))
                .await?;
            let id = c
                .emit_ack("get-public-keys", &json!({"sessionId": "nowhere"}))
                .await?;
            // Unknown events are ignored: no ack, while the next event is answered.
            let fut = async {
                loop {
                    match c.recv().await {
                        In::Ack(t) => match parse_ack(&t) {
                            Some((got, _)) if got == unknown => {
                                return Err("unknown event acked".to_owned());
                            }
                            Some((got, v)) if got == id => return Ok(v),
                            _ => {}
                        },
                        In::Closed(e) => return Err(format!("closed after an unknown event: {e}")),
                        _ => {}
                    }
                }
            };
            let v = timeout(Duration::from_secs(15), fut)
                .await
                .map_err(|_| "unknown-event: no answer".to_owned())??;
            expect_code(cfg, Some(v), &["NOT_IN_SESSION"], kind)?;
        }
        "malformed-payload" => {
            let (event, payload) = MALFORMED[rng.below(MALFORMED.len() as u64) as usize];
            let id = c.emit_ack(event, payload).await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(cfg, v, &["BAD_REQUEST"], &format!("{event} {payload}"))?;
        }
        "oversized-frame" => {
            let big = "x".repeat(cfg.max_payload + 1024);
            let frame =
                format!("42[\"send-message\",{{\"sessionId\":\"x\",\"encrypted\":\"{big}\"}}]");
            // The server may close while the frame is still being written.
            if c.send(frame).await.is_ok() {
                let id = c
                    .emit_ack("get-public-keys", &json!({"sessionId": "x"}))
                    .await;
                if let Ok(id) = id
                    && let Some(v) = ack_or_close(&mut c, id).await?
                {
                    return Err(format!("oversized frame: connection kept, answered {v}"));
                }
            }
            cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        "too-large-message" => {
            let room = format!("{}-abuse-{k}-{i}", cfg.prefix);
            let id = c
                .emit_ack(
                    "join-session",
                    &json!({"sessionId": room, "userId": "mallory", "isCreator": true,
                        "authKey": rng.hex()}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            if v.as_ref().map(|v| v["ok"] == Value::Bool(true)) != Some(true) {
                return Err(format!("too-large-message: own join refused: {v:?}"));
            }
            let big = "y".repeat(cfg.history_max + 1);
            let id = c
                .emit_ack(
                    "send-message",
                    &json!({"sessionId": room, "encrypted": big}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(cfg, v, &["PAYLOAD_TOO_LARGE"], kind)?;
            let id = c
                .emit_ack("leave-session", &json!({"sessionId": room}))
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            if v.as_ref().map(|v| v["ok"] == Value::Bool(true)) != Some(true) {
                return Err(format!("too-large-message: leave refused: {v:?}"));
            }
        }
        "wrong-key-join" => {
            let w = rng.below(cfg.sessions as u64);
            let cycle = rng.below(3);
            let target = format!("{}-{w}-{cycle}", cfg.prefix);
            let session_id = if rng.below(2) == 0 {
                format!("{target}:{}", rng.hex())
            } else {
                format!("{target}:password:{}", rng.hex())
            };
            let id = c
                .emit_ack(
                    "join-session",
                    &json!({"sessionId": session_id, "userId": "mallory"}),
                )
                .await?;
            let v = ack_or_close(&mut c, id).await?;
            expect_code(
                cfg,
                v,
                &[
                    "INVALID_KEY",
                    "INVALID_PASSWORD",
                    "SESSION_NOT_FOUND",
                    "SESSION_EXPIRED",
                ],
                kind,
            )?;
        }
        _ => {
            // flood: 400 events without waiting. Each is handled (NOT_IN_SESSION) or
            // refused (RATE_LIMITED); replies that do not fit the socket's outgoing
            // buffer are dropped by socketioxide, so the answers are counted, not
            // required. The connection must stay usable: once the replies stop (none
            // for 3 s), an event is answered again.
            let ids: Vec<u32> = (0..FLOOD).map(|_| c.ack_id()).collect();
            let first = ids[0];
            for id in ids {
                c.feed(format!("42{id}[\"typing\",{{\"sessionId\":\"nowhere\"}}]"))
                    .await?;
            }
            c.flush().await?;
            let mut answered = 0;
            while answered < FLOOD {
                match timeout(Duration::from_secs(3), c.recv()).await {
                    Err(_) => break,
                    Ok(In::Ack(t)) => {
                        let Some((got, v)) = parse_ack(&t) else {
                            continue;
                        };
                        if got < first {
                            continue;
                        }
                        answered += 1;
                        match v["error"].as_str() {
                            Some("RATE_LIMITED") => {
                                cfg.c.rate_limited.fetch_add(1, Ordering::Relaxed);
                            }
                            Some("NOT_IN_SESSION") => {}
                            _ => return Err(format!("flood: answered {v}")),
                        }
                    }
                    // A flooder whose replies fill its outgoing buffer is cut off (a slow
                    // reader, MAX_BUFFERED_PACKETS) or closed when its heartbeat ping
                    // cannot be queued. A closed flooder is counted, not a failure.
                    Ok(In::Closed(_)) => {
                        cfg.c.flood_closed.fetch_add(1, Ordering::Relaxed);
                        cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                        cfg.c.flood_sent.fetch_add(FLOOD, Ordering::Relaxed);
                        cfg.c.flood_answered.fetch_add(answered, Ordering::Relaxed);
                        return Ok(());
                    }
                    Ok(_) => {}
                }
            }
            cfg.c.flood_sent.fetch_add(FLOOD, Ordering::Relaxed);
            cfg.c.flood_answered.fetch_add(answered, Ordering::Relaxed);
            let id = c
                .emit_ack("get-public-keys", &json!({"sessionId": "nowhere"}))
                .await?;
            let Some(v) = ack_or_close(&mut c, id).await? else {
                // Cut off just after its flood (a full outgoing buffer, or the heartbeat
                // that could not be queued): the same verdict as a close during it.
                cfg.c.flood_closed.fetch_add(1, Ordering::Relaxed);
                cfg.c.abuse_closed_by_server.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            expect_code(cfg, Some(v), &["NOT_IN_SESSION"], "after a flood")?;
        }
    }
    if rng.below(2) == 0 {
        c.close().await;
    }
    Ok(())
}

/// Abusive worker `k`: one abuse after another until the deadline.
pub async fn abuser(cfg: Arc<Cfg>, k: usize, seed: u64) {
    let mut rng = Rng::new(seed ^ 0xABCD ^ (k as u64).wrapping_mul(0x3000_0001));
    let mut i = 0;
    while Instant::now() < cfg.deadline {
        match abuse_once(&cfg, k, i, &mut rng).await {
            Ok(()) => {
                cfg.c.abuse_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => cfg.c.abuse_wrong(e),
        }
        i += 1;
        sleep(Duration::from_millis(100 + rng.below(400))).await;
    }
}
