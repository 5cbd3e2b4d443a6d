//! A session as a plain record: what the in-memory store writes to its snapshot and
//! reads back after a restart (see `snapshot`). It holds what the Redis store holds of a
//! session, in the same form: credentials as keyed digests, ciphertexts as the clients
//! sent them, no connection (after a restart nobody is connected).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use crate::protocol::ChatMode;

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub mode: ChatMode,
    /// The creator, once it has joined; `None` while reserved.
    pub creator: Option<String>,
    pub key: Digest,
    pub password: Digest,
    pub members: Vec<MemberRecord>,
    /// Each member's wrapped group key.
    pub group_keys: Vec<(String, String)>,
    /// Oldest first.
    pub history: Vec<MessageRecord>,
    /// Milliseconds since the last activity, when the record was made.
    pub idle_ms: u64,
    pub used: bool,
    pub removed: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MemberRecord {
    pub user: String,
    pub display_name: String,
    /// The public key's JSON text.
    pub public_key: Option<String>,
    pub joined_at: u64,
    pub left_at: u64,
    /// It had a connection when the record was made, or had lost it within the
    /// presence grace (its departure not yet announced).
    pub recently_present: bool,
    /// The digest of its resume token.
    pub token: Option<Digest>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    pub from: String,
    /// `None`, `"all"` or a userId.
    pub to: Option<String>,
    /// The ciphertext's JSON text.
    pub encrypted: String,
    pub attachments: Vec<Bytes>,
    pub timestamp: u64,
    pub kind: String,
    pub sender_display_name: String,
}
