//! The messages the generator sends and reads back, and the clock they carry.

use std::fmt::Write as _;
use std::sync::OnceLock;

use super::Cfg;

static START: OnceLock<std::time::Instant> = OnceLock::new();

/// Starts the clock of [`now_ns`] (at the start of the process).
pub fn start_clock() {
    START.get_or_init(std::time::Instant::now);
}

/// Nanoseconds since the generator started (one monotonic clock for senders and receivers).
pub fn now_ns() -> u64 {
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// `n` base64 characters, to pad payloads and keys.
pub fn filler(n: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..n).map(|i| B64[(i * 7 + i / 64) % 64] as char).collect()
}

/// `42["send-message",{"sessionId":..,"to":"all","encrypted":"m<phase>.<sender>.<seq>.<ns>.<filler>"}]`
pub fn message_frame(cfg: &Cfg, room: &str, phase: u32, sender: u32, seq: u64) -> String {
    let mut s = String::with_capacity(cfg.payload_bytes + room.len() + 80);
    s.push_str("42[\"send-message\",{\"sessionId\":\"");
    s.push_str(room);
    s.push_str("\",\"to\":\"all\",\"encrypted\":\"");
    let start = s.len();
    let _ = write!(s, "m{phase}.{sender}.{seq}.{}.", now_ns());
    let used = s.len() - start;
    if used < cfg.payload_bytes {
        s.push_str(&cfg.filler[..cfg.payload_bytes - used]);
    }
    s.push_str("\"}]");
    s
}

pub struct Parsed {
    pub phase: u32,
    pub sender: u32,
    pub seq: u64,
    pub ns: u64,
}

/// Reads phase, sender, seq and send time out of a `42["new-message",{..."encrypted":"m..."}]`.
pub fn parse_new_message(t: &str) -> Option<Parsed> {
    const KEY: &str = "\"encrypted\":\"m";
    let rest = t.strip_prefix("42[\"new-message\",")?;
    let at = rest.find(KEY)? + KEY.len();
    let mut it = rest[at..].splitn(5, '.');
    let phase = it.next()?.parse().ok()?;
    let sender = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some(Parsed {
        phase,
        sender,
        seq,
        ns,
    })
}

/// Whether a frame is a `new-message` event.
pub fn is_new_message(t: &str) -> bool {
    t.starts_with("42[\"new-message\",")
}
