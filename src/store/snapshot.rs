//! The in-memory store survives a restart: its sessions are written to a snapshot file
//! when the node stops (SIGTERM, Ctrl-C) and every `SNAPSHOT_INTERVAL_SECS` (so a crash
//! loses that much at most), and read back at start.
//!
//! The file holds the same as Redis would: sessions as [`SessionRecord`]s, credentials as
//! keyed digests, ciphertexts as clients sent them. The digest key lives beside it in a
//! file of its own (`digest.key`, unless `STORE_DIGEST_KEY` is set), both readable by
//! the owner only: the snapshot alone cannot be searched for passwords.
//!
//! Format (version 1): `MAGIC`, the format version (u32, little-endian), the body's
//! length (u64) and its SHA-256, then the body in MessagePack. A file that is not
//! ours, truncated, corrupt, of a newer format or written under another digest key is
//! refused with a warning and moved aside (`<name>.refused-<unix time>`), and the node
//! starts empty; it never stops the start. A write goes to a temporary file, synced,
//! then renamed over the last one, so a crash mid-write leaves the previous snapshot.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize, ser::SerializeSeq};
use sha2::{Digest as _, Sha256};

use super::{
    MemoryStore, Session,
    digest::{Digest, DigestKey},
    record::SessionRecord,
};
use crate::{
    protocol::{SessionId, now_ms},
    secret::Secret,
};

const MAGIC: &[u8; 16] = b"blindrelay-snap\n";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 16 + 4 + 8 + 32;
const FILE_NAME: &str = "sessions.snapshot";
const KEY_FILE_NAME: &str = "digest.key";

/// What the body of a snapshot holds.
#[derive(Serialize)]
struct Body<'a> {
    written_at_ms: u64,
    key_fingerprint: Digest,
    sessions: Sessions<'a>,
}

#[derive(Deserialize)]
struct ReadBody {
    written_at_ms: u64,
    key_fingerprint: Digest,
    sessions: Vec<Option<SessionRecord>>,
}

/// The store's sessions, made into records one at a time while they are written (a
/// session's lock is held only while its record is made): the snapshot never holds a
/// second copy of every history in memory. A session deleted meanwhile is `None`.
struct Sessions<'a> {
    store: &'a MemoryStore,
    ids: Vec<SessionId>,
    present_since: u64,
}

impl Serialize for Sessions<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let now = Instant::now();
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for id in &self.ids {
            let record = self
                .store
                .sessions
                .get(id)
                .map(|session| session.to_record(id, now, self.present_since));
            seq.serialize_element(&record)?;
        }
        seq.end()
    }
}

/// Where the node keeps its snapshot, and the lock that keeps two writes apart.
pub struct Snapshots {
    dir: PathBuf,
    writing: Mutex<()>,
    /// The store's generation the file on disk holds (`u64::MAX`: none yet).
    on_disk: AtomicU64,
}

/// What a write did.
#[derive(Debug)]
pub struct Written {
    pub sessions: usize,
    pub bytes: u64,
    pub took: Duration,
}

/// What a start found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub sessions: usize,
    /// Expired while the node was down.
    pub expired: usize,
    /// Records that did not read as a session (never in a file this build wrote).
    pub skipped: usize,
}

impl Snapshots {
    /// The snapshot folder `dir`, created (owner only) if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        create_private_dir(dir)?;
        Ok(Snapshots {
            dir: dir.to_owned(),
            writing: Mutex::new(()),
            on_disk: AtomicU64::new(u64::MAX),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The digest key of this folder: `configured` when set, else the one kept in
    /// `digest.key`, made (owner only) at first start.
    pub fn digest_key(&self, configured: Option<&Secret>) -> io::Result<DigestKey> {
        if let Some(key) = configured {
            return Ok(DigestKey::new(key));
        }
        let path = self.dir.join(KEY_FILE_NAME);
        match fs::read_to_string(&path) {
            Ok(text) if text.trim().len() >= 32 => return Ok(DigestKey::new(&text.trim().into())),
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} holds no key (at least 32 characters); delete it to make a new one, \
                     which ends the rooms of the snapshot",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (key, text) = DigestKey::random()?;
        let mut file = private_file(&path, true)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(key)
    }

    /// Writes every session of `store` (see the module's doc). `stopping_since`: when
    /// the node began to stop (its drain closed every connection since), if it has.
    pub fn write(&self, store: &MemoryStore, stopping_since: Option<u64>) -> io::Result<Written> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        // Read first: a change made while the file is written counts as not in it.
        let generation = store.generation.load(Ordering::Relaxed);
        let ids: Vec<SessionId> = store.sessions.iter().map(|e| e.key().clone()).collect();
        let count = ids.len();
        // Who was in a room when it was written, and may come back unannounced: those
        // connected, or gone within the presence grace (their departure not yet told).
        let grace = store.limits.presence_grace.as_millis() as u64;
        let present_since = stopping_since.unwrap_or_else(now_ms).saturating_sub(grace);
        let body = Body {
            written_at_ms: now_ms(),
            key_fingerprint: store.digests.fingerprint(),
            sessions: Sessions {
                store,
                ids,
                present_since,
            },
        };
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let mut file = private_file(&tmp, false)?;
        file.write_all(&[0; HEADER_LEN])?;
        let mut out = Hashing::new(BufWriter::new(file));
        rmp_serde::encode::write_named(&mut out, &body).map_err(io::Error::other)?;
        let (mut file, len, hash) = out.finish()?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(len, &hash))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.path())?;
        // The rename itself survives a crash once the folder is synced.
        File::open(&self.dir)?.sync_all()?;
        self.on_disk.store(generation, Ordering::Relaxed);
        Ok(Written {
            sessions: count,
            bytes: HEADER_LEN as u64 + len,
            took: started.elapsed(),
        })
    }

    /// Reads the snapshot into `store` (empty, at start). No file: nothing restored. A
    /// file that cannot be used is moved aside, with the reason as the error.
    pub fn restore(&self, store: &MemoryStore) -> Result<Restored, Refused> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::default()),
            Err(e) => return Err(self.refuse(format!("cannot be read: {e}"))),
        };
        let body = match decode(&bytes, &store.digests) {
            Ok(body) => body,
            Err(reason) => return Err(self.refuse(reason)),
        };
        let age_ms = now_ms().saturating_sub(body.written_at_ms);
        let now = Instant::now();
        let mut restored = Restored::default();
        for record in body.sessions.into_iter().flatten() {
            match Session::from_record(record, age_ms, &store.limits, now) {
                Ok(Some((id, mut session))) => {
                    session.history.track(&store.history_total);
                    store.sessions.insert(id, session);
                    restored.sessions += 1;
                }
                Ok(None) => restored.expired += 1,
                Err(_) => restored.skipped += 1,
            }
        }
        store.enforce_history_budget();
        self.on_disk
            .store(store.generation.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(restored)
    }

    /// Whether `store` changed since the file on disk was written.
    pub fn is_stale(&self, store: &MemoryStore) -> bool {
        self.on_disk.load(Ordering::Relaxed) != store.generation.load(Ordering::Relaxed)
    }

    /// Moves the snapshot aside; the refusal says why and where it went.
    fn refuse(&self, reason: String) -> Refused {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = self.dir.join(format!("{FILE_NAME}.refused-{secs}"));
        let moved = fs::rename(self.path(), &aside).map(|()| aside);
        Refused { reason, moved }
    }
}

/// A snapshot that was not used.
#[derive(Debug)]
pub struct Refused {
    pub reason: String,
    /// Where the file was moved, or why it could not be.
    pub moved: io::Result<PathBuf>,
}

fn header(len: u64, hash: &[u8; 32]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..16].copy_from_slice(MAGIC);
    h[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[20..28].copy_from_slice(&len.to_le_bytes());
    h[28..].copy_from_slice(hash);
    h
}

/// Checks the header, the checksum and the digest key, then decodes the body.
fn decode(bytes: &[u8], digests: &DigestKey) -> Result<ReadBody, String> {
    if bytes.len() < 16 || &bytes[..16] != MAGIC {
        return Err("is not a blindrelay snapshot".into());
    }
    if bytes.len() < HEADER_LEN {
        return Err("is truncated (no whole header)".into());
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
    if version != FORMAT_VERSION {
        return Err(format!(
            "has format version {version}; this build reads version {FORMAT_VERSION} \
             (written by a newer blindrelay?)"
        ));
    }
    let len = u64::from_le_bytes(bytes[20..28].try_into().unwrap_or_default());
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(format!(
            "is truncated or padded: {} bytes of body, the header says {len}",
            body.len()
        ));
    }
    if Sha256::digest(body).as_slice() != &bytes[28..HEADER_LEN] {
        return Err("is corrupt (its checksum does not match)".into());
    }
    let read: ReadBody =
        rmp_serde::from_slice(body).map_err(|e| format!("cannot be decoded: {e}"))?;
    if read.key_fingerprint != digests.fingerprint() {
        return Err("was written under another digest key (STORE_DIGEST_KEY or \
                    digest.key changed): its rooms would admit nobody"
            .into());
    }
    Ok(read)
}

/// A writer that counts and hashes what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl Hashing<BufWriter<File>> {
    fn new(inner: BufWriter<File>) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    fn finish(self) -> io::Result<(File, u64, [u8; 32])> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        Ok((file, self.len, self.hash.finalize().into()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file readable and writable by the owner only (created, or truncated).
fn private_file(path: &Path, create_new: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).read(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    // An existing file keeps its mode through `open`: set it again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The in-memory store for `config`: with `DATA_DIR`, under its digest key and with the
/// sessions of its snapshot. A folder that cannot be used leaves the node running
/// without persistence, and says so; so does a snapshot that cannot be used.
pub fn open_memory_store(config: &crate::Config) -> (MemoryStore, Option<Snapshots>) {
    let limits = super::StoreLimits::from(config);
    let Some(dir) = &config.data_dir else {
        tracing::info!("DATA_DIR=off: rooms end when this process stops");
        return (MemoryStore::new(limits), None);
    };
    let opened = Snapshots::open(dir).and_then(|s| {
        let key = s.digest_key(config.store_digest_key.as_ref())?;
        Ok((s, key))
    });
    let (snapshots, key) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot keep rooms across restarts in DATA_DIR: they end when this process stops"
            );
            return (MemoryStore::new(limits), None);
        }
    };
    let store = MemoryStore::with_digest_key(limits, key);
    let started = Instant::now();
    match snapshots.restore(&store) {
        Ok(r) if r == Restored::default() => {
            tracing::info!(path = %snapshots.path().display(), "no rooms to restore");
        }
        Ok(r) => tracing::info!(
            path = %snapshots.path().display(),
            rooms = r.sessions,
            expired = r.expired,
            unreadable = r.skipped,
            took_ms = started.elapsed().as_millis() as u64,
            "rooms restored from the snapshot"
        ),
        Err(Refused { reason, moved }) => {
            let moved = match moved {
                Ok(p) => format!("moved to {}", p.display()),
                Err(e) => format!("could not be moved aside: {e}"),
            };
            tracing::warn!(
                "the snapshot {} {reason}; starting with no rooms (the file was {moved})",
                snapshots.path().display()
            );
        }
    }
    (store, Some(snapshots))
}

/// Writes the snapshot every `interval` (never when zero), when the store changed.
pub async fn run(state: crate::AppState, snapshots: Arc<Snapshots>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let stale = match &state.store {
            super::Store::Memory(store) => snapshots.is_stale(store),
            super::Store::Redis(_) => false,
        };
        if stale {
            write_logged(state.clone(), snapshots.clone(), "periodic").await;
        }
    }
}

/// Writes the snapshot on a blocking thread, and logs what it did.
pub async fn write_logged(state: crate::AppState, snapshots: Arc<Snapshots>, why: &'static str) {
    let written = tokio::task::spawn_blocking(move || match &state.store {
        super::Store::Memory(store) => snapshots.write(store, state.drain_started_ms()).map(Some),
        super::Store::Redis(_) => Ok(None),
    })
    .await;
    match written {
        Ok(Ok(Some(w))) => {
            let (rooms, bytes, took_ms) = (w.sessions, w.bytes, w.took.as_millis() as u64);
            if why == "periodic" {
                tracing::debug!(rooms, bytes, took_ms, "snapshot written");
            } else {
                tracing::info!(rooms, bytes, took_ms, "snapshot written {why}");
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the snapshot"),
        Err(e) => tracing::warn!(error = %e, "the snapshot writer failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::value::RawValue;
    use socketioxide::socket::Sid;

    use super::*;
    use crate::{
        protocol::{ChatMode, DisplayName, Message, UserId},
        store::{JoinRequest, StoreLimits},
    };

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "blindrelay-snapshot-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn join(store: &MemoryStore, user: &str, creator: bool, key: &str) -> Result<(), String> {
        store
            .join(JoinRequest {
                session: SessionId::parse("room-1").unwrap(),
                user: UserId::parse(user).unwrap(),
                display_name: Some(DisplayName::new(user)),
                public_key: Some(
                    RawValue::from_string(format!("\"pk-{user}\""))
                        .unwrap()
                        .into(),
                ),
                is_creator: creator,
                credential: Some(Secret::from(key)),
                chat_mode: Some(ChatMode::Group),
                resume: None,
                acked: false,
                conn: Sid::new(),
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn a_room(snapshots: &Snapshots) -> MemoryStore {
        let limits = StoreLimits::from(&crate::Config::default());
        let store = MemoryStore::with_digest_key(limits, snapshots.digest_key(None).unwrap());
        join(&store, "alice", true, "the-key").unwrap();
        join(&store, "bob", false, "the-key").unwrap();
        let id = SessionId::parse("room-1").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let conn = store.sessions.get(&id).unwrap().members[&alice].conns[0];
        store
            .append_message(&id, conn, None, |from, name| Message {
                id: "m1".into(),
                from: from.clone(),
                to: None,
                encrypted: RawValue::from_string("\"ciphertext\"".into())
                    .unwrap()
                    .into(),
                attachments: Default::default(),
                timestamp: 1,
                kind: Arc::from("text"),
                sender_display_name: name.clone(),
            })
            .unwrap();
        store
    }

    #[test]
    fn a_snapshot_brings_rooms_back_with_members_keys_and_history() {
        let dir = folder("round-trip");
        let snapshots = Snapshots::open(&dir).unwrap();
        let written = snapshots.write(&a_room(&snapshots), None).unwrap();
        assert_eq!(written.sessions, 1);
        let bytes = fs::read(snapshots.path()).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"the-key"),
            "no key in clear"
        );

        let again = Snapshots::open(&dir).unwrap();
        let store = MemoryStore::with_digest_key(
            StoreLimits::from(&crate::Config::default()),
            again.digest_key(None).unwrap(),
        );
        let restored = again.restore(&store).unwrap();
        assert_eq!(
            restored,
            Restored {
                sessions: 1,
                expired: 0,
                skipped: 0
            }
        );
        let id = SessionId::parse("room-1").unwrap();
        {
            let session = store.sessions.get(&id).unwrap();
            assert_eq!(session.history.len(), 1);
            assert_eq!(session.members.len(), 2);
            assert!(session.members.values().all(|m| !m.is_present()));
        }
        // The key still admits, a wrong one does not.
        assert!(join(&store, "carol", false, "the-key").is_ok());
        assert!(join(&store, "dave", false, "not-the-key").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [FILE_NAME, KEY_FILE_NAME] {
                let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_cannot_be_used_is_moved_aside_and_nothing_is_loaded() {
        let dir = folder("refused");
        let snapshots = Snapshots::open(&dir).unwrap();
        snapshots.write(&a_room(&snapshots), None).unwrap();
        let good = fs::read(snapshots.path()).unwrap();
        let mut future = good.clone();
        future[16..20].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "foreign",
                b"{\"not\": \"ours\"}".to_vec(),
                "not a blindrelay snapshot",
            ),
            ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
            ("short header", good[..20].to_vec(), "truncated"),
            ("future", future, "format version"),
            ("corrupt", flipped, "corrupt"),
        ];
        for (what, bytes, says) in cases {
            fs::write(snapshots.path(), &bytes).unwrap();
            let store = MemoryStore::with_digest_key(
                StoreLimits::from(&crate::Config::default()),
                snapshots.digest_key(None).unwrap(),
            );
            let refused = snapshots.restore(&store).expect_err(what);
            assert!(refused.reason.contains(says), "{what}: {}", refused.reason);
            let aside = refused.moved.expect("moved aside");
            assert_eq!(fs::read(&aside).unwrap(), bytes, "{what}: kept as it was");
            assert!(!snapshots.path().exists());
            assert!(store.is_empty());
            let _ = fs::remove_file(aside);
        }
        // Another digest key: its rooms would admit nobody.
        fs::write(snapshots.path(), &good).unwrap();
        let other = MemoryStore::with_digest_key(
            StoreLimits::from(&crate::Config::default()),
            DigestKey::new(&Secret::from("x".repeat(40))),
        );
        let refused = snapshots.restore(&other).expect_err("another key");
        assert!(
            refused.reason.contains("another digest key"),
            "{}",
            refused.reason
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
