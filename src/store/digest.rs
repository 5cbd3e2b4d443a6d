//! Keyed digests of credentials, as both stores keep them: a room's key and password, and
//! (in Redis) connection ids. A copy of the store, a Redis dump or a snapshot file, is
//! then useless to a dictionary without the digest key, which is never stored beside it
//! (`STORE_DIGEST_KEY`, or in memory mode a key file of its own, see `store::snapshot`).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::ConnId;
use crate::secret::Secret;

/// The key under which credentials are digested (the same on every node).
#[derive(Clone)]
pub struct DigestKey(Hmac<Sha256>);

/// One HMAC-SHA-256.
pub type Digest = [u8; 32];

impl DigestKey {
    pub fn new(key: &Secret) -> Self {
        // HMAC takes a key of any length.
        DigestKey(Hmac::new_from_slice(key.expose().as_bytes()).expect("HMAC accepts any key"))
    }

    /// A fresh random key, as hex text (what a key file holds, see `store::snapshot`).
    pub fn random() -> std::io::Result<(Self, String)> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
        let text = hex(&bytes);
        Ok((DigestKey::new(&Secret::from(text.clone())), text))
    }

    /// The HMAC of `credential`, salted with the session id (so equal passwords of two
    /// sessions differ).
    pub fn raw(&self, session: &str, credential: &str) -> Digest {
        let mut mac = self.0.clone();
        mac.update(session.as_bytes());
        mac.update(b"\n");
        mac.update(credential.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// [`raw`](Self::raw) in hex, as stored and compared in Redis.
    pub fn digest(&self, session: &str, credential: &str) -> String {
        hex(&self.raw(session, credential))
    }

    /// How a connection id (Engine.IO `sid`) is named in Redis: the sid is a transport
    /// credential (whoever knows it can post to `/socket.io/?sid=` as that connection),
    /// so Redis holds only its keyed digest, like keys and tokens. Every script that takes
    /// a connection takes this name; the node's sweep of a dead node reads it back from
    /// the node's list and passes it on as it is.
    pub fn conn(&self, session: &str, conn: ConnId) -> String {
        self.digest(session, &format!("sid\n{conn}"))
    }

    /// What a snapshot records of the key it was written under: a digest of a fixed
    /// text, so a snapshot made under another key is recognised, and the key not revealed.
    pub fn fingerprint(&self) -> Digest {
        self.raw("", "blindrelay digest key fingerprint")
    }

    /// A room key's digests, for session `session`.
    pub fn room_key(&self, session: &str, key: &Secret) -> RoomKey {
        RoomKey {
            key: self.raw(session, key.expose()),
            password: self.raw(session, key.password_part()),
        }
    }
}

/// What a session keeps of its join credential: the keyed digests of the whole key and
/// of its password part (`"<authKey>:<passwordDigest>"`; the whole key when it has none).
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey {
    pub key: Digest,
    pub password: Digest,
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomKey(<digests>)")
    }
}

/// The digests of one session: the digest key and the session id that salts them.
#[derive(Clone, Copy)]
pub struct Salted<'a> {
    pub key: &'a DigestKey,
    pub session: &'a str,
}

impl Salted<'_> {
    /// Constant-time: whether `given` is the whole key.
    pub fn key_matches(&self, room: &RoomKey, given: &str) -> bool {
        room.key.ct_eq(&self.key.raw(self.session, given)).into()
    }

    /// Constant-time: whether `password` is the key's password part.
    pub fn password_matches(&self, room: &RoomKey, password: &str) -> bool {
        room.password
            .ct_eq(&self.key.raw(self.session, password))
            .into()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_key_matches_its_key_and_password_in_its_own_session_only() {
        let dk = DigestKey::new(&Secret::from("digest key"));
        let room = dk.room_key("room-1", &Secret::from("authkey:pw-digest"));
        let here = Salted {
            key: &dk,
            session: "room-1",
        };
        assert!(here.key_matches(&room, "authkey:pw-digest"));
        assert!(here.password_matches(&room, "pw-digest"));
        assert!(!here.key_matches(&room, "authkey"));
        assert!(!here.password_matches(&room, "authkey"));
        let elsewhere = Salted {
            key: &dk,
            session: "room-2",
        };
        assert!(!elsewhere.key_matches(&room, "authkey:pw-digest"));
        let other_key = DigestKey::new(&Secret::from("another key"));
        assert_ne!(other_key.fingerprint(), dk.fingerprint());
    }
}
