//! Micro-benchmarks of the hot paths, away from the network: decoding a `send-message`
//! payload, appending to a history at its bounds, and joining a group room in memory.
//!
//! `cargo bench --bench hot` (under a minute; not part of the test command).

use std::hint::black_box;
use std::time::{Duration, Instant};

use blindrelay::Config;
use blindrelay::protocol::{
    DisplayName, Message, ObjectOnly, Recipient, SendMessage, SessionId, UserId,
};
use blindrelay::store::{ConnId, History, JoinRequest, MemoryStore, StoreLimits};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// A base64-like ciphertext of `n` bytes.
fn ciphertext(n: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..n).map(|i| B64[(i * 7 + i / 64) % 64] as char).collect()
}

/// What the server receives: the `send-message` payload the load generator sends.
fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_send_message");
    for n in [200usize, 4096] {
        let payload = format!(
            r#"{{"sessionId":"room-1","to":"all","encrypted":"{}","type":"text","clientMessageId":"c-1"}}"#,
            ciphertext(n)
        );
        g.throughput(Throughput::Bytes(payload.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &payload, |b, p| {
            b.iter(|| {
                let m: ObjectOnly<SendMessage> = serde_json::from_str(black_box(p)).unwrap();
                black_box(m)
            })
        });
    }
    g.finish();
}

fn message(id: u64, from: &UserId, body: usize) -> Message {
    Message {
        id: format!("m-{id}").into(),
        from: from.clone(),
        to: Some(Recipient::All),
        encrypted: serde_json::value::to_raw_value(&ciphertext(body))
            .unwrap()
            .into(),
        attachments: Default::default(),
        timestamp: id,
        kind: "text".into(),
        sender_display_name: DisplayName::default(),
    }
}

/// A full history: every append evicts the oldest message (and its index entry).
fn history(c: &mut Criterion) {
    let mut g = c.benchmark_group("history_append_full");
    let from = UserId::parse("u1").unwrap();
    // (name, max messages, max bytes, ciphertext bytes): full by count at the default
    // HISTORY_MAX_MESSAGES (500), and full by bytes (64 messages of 16 KiB in 1 MiB).
    for (name, max_messages, max_bytes, body) in [
        ("by_count_500x200B", 500, 32 << 20, 200),
        ("by_bytes_1MiB_16KiB", 100_000, 1 << 20, 16 << 10),
    ] {
        // Twice as many messages as fit: the history is at its bound from then on.
        let mut h = History::default();
        let fit = max_messages.min(max_bytes / (body + 128));
        let mut next = 0u64;
        for _ in 0..2 * fit {
            h.append(message(next, &from, body), max_messages, max_bytes);
            next += 1;
        }
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let m = message(next, &from, body); // built outside the timing
                    next += 1;
                    let t = Instant::now();
                    black_box(h.append(m, max_messages, max_bytes));
                    spent += t.elapsed();
                }
                spent
            })
        });
        // The retry of a stored message: found in the index, not stored again.
        if name.starts_with("by_count") {
            let last = message(next - 1, &from, body);
            g.bench_function("duplicate", |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let m = last.clone();
                        let t = Instant::now();
                        black_box(h.append(m, max_messages, max_bytes));
                        spent += t.elapsed();
                    }
                    spent
                })
            });
        }
    }
    g.finish();
}

fn request(room: &SessionId, user: usize, conn: ConnId, key_bytes: usize) -> JoinRequest {
    JoinRequest {
        session: room.clone(),
        user: UserId::parse(&format!("u{user}")).unwrap(),
        display_name: None,
        public_key: Some(
            serde_json::value::to_raw_value(&ciphertext(key_bytes))
                .unwrap()
                .into(),
        ),
        is_creator: user == 1,
        credential: Some("k".into()),
        chat_mode: None,
        resume: None,
        acked: true,
        conn,
    }
}

/// A new member joins a group room of 1 or 63 present members (the 64th is the default
/// MAX_GROUP_MEMBERS), with 124-byte keys; the join returns the key list of the room.
/// Each iteration's member leaves again, outside the timing.
fn join(c: &mut Criterion) {
    let mut g = c.benchmark_group("memory_join_group");
    let limits = StoreLimits::from(&Config::default());
    for present in [1usize, 63] {
        let store = MemoryStore::new(limits.clone());
        let room = SessionId::parse("room-1").unwrap();
        for u in 1..=present {
            store.join(request(&room, u, ConnId::new(), 124)).unwrap();
        }
        let joiner = present + 1;
        g.bench_with_input(BenchmarkId::from_parameter(present), &present, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let conn = ConnId::new();
                    let req = request(&room, joiner, conn, 124);
                    let t = Instant::now();
                    let joined = store.join(req).unwrap();
                    spent += t.elapsed();
                    drop(black_box(joined));
                    store.leave(&room, conn, None).unwrap();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = hot;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = decode, history, join
}
criterion_main!(hot);
