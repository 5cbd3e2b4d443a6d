//! What the in-memory store's snapshot costs (docs/operations.md, "Restarts"): fills a
//! store with `--rooms` rooms of two members and `--messages` messages of `--bytes`
//! bytes of ciphertext each, writes the snapshot, reads it back into an empty store,
//! and prints the size, the times and the process's RSS at each step.
//!
//!   cargo run --release -p blindrelay-load --bin snapshot-bench -- --rooms 10000

use std::{path::PathBuf, sync::Arc, time::Instant};

use blindrelay::{
    Config,
    protocol::{ChatMode, DisplayName, Message, SessionId, UserId},
    secret::Secret,
    store::{DigestKey, JoinRequest, MemoryStore, StoreLimits, snapshot::Snapshots},
};
use clap::Parser;
use serde_json::value::RawValue;
use socketioxide::socket::Sid;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    rooms: usize,
    /// Messages of history per room.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Ciphertext bytes per message.
    #[arg(long, default_value_t = 512)]
    bytes: usize,
    /// Folder of the snapshot (default: a fresh one under the temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn rss_mib() -> f64 {
    blindrelay_load::procfs::rss_kib(std::process::id()).unwrap_or(0) as f64 / 1024.0
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let limits = StoreLimits::from(&Config::default());
    let key = DigestKey::new(&Secret::from("snapshot-bench digest key, 32 chars or more"));
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("blindrelay-snapshot-bench-{}", std::process::id()))
    });
    let snapshots = Snapshots::open(&dir).map_err(|e| e.to_string())?;
    let rss_empty = rss_mib();

    let store = MemoryStore::with_digest_key(limits.clone(), key.clone());
    let body = format!("\"{}\"", "x".repeat(args.bytes));
    let started = Instant::now();
    for r in 0..args.rooms {
        let id = SessionId::parse(&format!("room-{r}")).map_err(|e| e.to_string())?;
        let mut conn = None;
        for (user, creator) in [("alice", true), ("bob", false)] {
            let c = Sid::new();
            store
                .join(JoinRequest {
                    session: id.clone(),
                    user: UserId::parse(user).map_err(|e| e.to_string())?,
                    display_name: Some(DisplayName::new(user)),
                    public_key: Some(
                        RawValue::from_string(format!("\"pk-{user}\""))
                            .map_err(|e| e.to_string())?
                            .into(),
                    ),
                    is_creator: creator,
                    credential: Some(Secret::from(format!("key-of-room-{r}"))),
                    chat_mode: Some(ChatMode::Group),
                    resume: None,
                    acked: true,
                    conn: c,
                })
                .map_err(|e| e.to_string())?;
            conn.get_or_insert(c);
        }
        let conn = conn.ok_or("no connection")?;
        for m in 0..args.messages {
            let encrypted = RawValue::from_string(body.clone()).map_err(|e| e.to_string())?;
            store
                .append_message(&id, conn, None, |from, name| Message {
                    id: format!("m{m}").into(),
                    from: from.clone(),
                    to: None,
                    encrypted: encrypted.into(),
                    attachments: Default::default(),
                    timestamp: m as u64,
                    kind: Arc::from("text"),
                    sender_display_name: name.clone(),
                })
                .map_err(|e| e.to_string())?;
        }
    }
    let filled = started.elapsed();
    let rss_full = rss_mib();

    let written = snapshots.write(&store, None).map_err(|e| e.to_string())?;
    let rss_written = rss_mib();
    drop(store);

    let again = MemoryStore::with_digest_key(limits, key);
    let started = Instant::now();
    let restored = snapshots.restore(&again).map_err(|r| r.reason)?;
    let took = started.elapsed();
    let rss_restored = rss_mib();
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{} rooms x 2 members x {} messages of {} bytes (filled in {:.2} s)",
        args.rooms,
        args.messages,
        args.bytes,
        filled.as_secs_f64()
    );
    println!(
        "write:   {:.1} MiB in {:.0} ms ({} rooms)",
        written.bytes as f64 / 1048576.0,
        written.took.as_secs_f64() * 1000.0,
        written.sessions
    );
    println!(
        "restore: {} rooms in {:.0} ms ({} expired, {} unreadable)",
        restored.sessions,
        took.as_secs_f64() * 1000.0,
        restored.expired,
        restored.skipped
    );
    println!(
        "RSS MiB: empty {rss_empty:.1}, filled {rss_full:.1}, after the write {rss_written:.1}, after the restore (new store, old dropped) {rss_restored:.1}"
    );
    Ok(())
}
