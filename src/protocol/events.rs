//! Event payloads, both ways. Incoming payloads deserialize into types that are valid
//! by construction (ids, names); sizes that have their own error code are checked by
//! [`Limits`](crate::protocol::Limits) in the handlers.

use std::{collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::ids::{SessionRef, UserId};
use super::name::DisplayName;

/// A client-provided JSON value the server relays without reading: ciphertexts, public
/// keys, wrapped group keys. Kept as its raw text so relaying it is a copy.
pub type Opaque = Arc<RawValue>;

/// Deserializes an optional opaque value; JSON `null` counts as absent.
fn opaque_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Opaque>, D::Error> {
    let raw = Option::<Box<RawValue>>::deserialize(d)?;
    Ok(raw.filter(|r| r.get() != "null").map(Opaque::from))
}

fn opaque<'de, D: Deserializer<'de>>(d: D) -> Result<Opaque, D::Error> {
    opaque_opt(d)?.ok_or_else(|| serde::de::Error::custom("must not be null"))
}

/// Where a message goes: everyone, or one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    All,
    User(UserId),
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s == "all" {
            return Ok(Recipient::All);
        }
        UserId::parse(&s)
            .map(Recipient::User)
            .map_err(|e| serde::de::Error::custom(format!("to: {e}")))
    }
}

impl Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Recipient::All => s.serialize_str("all"),
            Recipient::User(u) => u.serialize(s),
        }
    }
}

// ---- client -> server ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSession {
    pub session_id: SessionRef,
    pub user_id: UserId,
    pub display_name: Option<DisplayName>,
    #[serde(default, deserialize_with = "opaque_opt")]
    pub public_key: Option<Opaque>,
    pub is_creator: Option<bool>,
    pub auth_key: Option<String>,
    /// Mode of a session this (creator's) join creates; reserved sessions keep theirs.
    pub chat_mode: Option<super::ChatMode>,
    /// The `resumeToken` of this member's earlier join ack, which proves it is the same
    /// client (see `store/resume.rs`).
    pub resume_token: Option<String>,
    /// Whether the join asked for an ack (only then can it receive a resume token); not
    /// a field of the payload, set from the packet.
    #[serde(skip)]
    pub acked: bool,
}

/// `save-public-key`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavePublicKey {
    pub session_id: SessionRef,
    pub user_id: Option<UserId>,
    #[serde(deserialize_with = "opaque")]
    pub public_key: Opaque,
    /// Must be a string if present (else `BAD_REQUEST`, as before), but is not used: a
    /// member's name is the one it joined with, so a key update cannot rename it behind
    /// the others' backs. Neither the End2End Chat app nor the built-in client sends it.
    pub display_name: Option<DisplayName>,
}

/// `get-public-keys`, `typing`, `stopped-typing`, `leave-session`, `close-session`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionUser {
    pub session_id: SessionRef,
    pub user_id: Option<UserId>,
}

/// `remove-member` (creator only).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveMember {
    pub session_id: SessionRef,
    pub user_id: UserId,
}

/// `reset-link` (creator only): `authKey` is the new join credential.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetLink {
    pub session_id: SessionRef,
    pub auth_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    pub session_id: SessionRef,
    pub from: Option<UserId>,
    pub to: Option<Recipient>,
    #[serde(deserialize_with = "opaque")]
    pub encrypted: Opaque,
    /// The sender's plaintext, sent by old clients. Echoed in the sender's own
    /// `message-sent` only; never stored, relayed or logged.
    #[serde(default, deserialize_with = "opaque_opt")]
    pub original_content: Option<Opaque>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub client_message_id: Option<String>,
    /// Binary attachments `encrypted` refers to (filled by the decoder, not from JSON).
    #[serde(skip)]
    pub attachments: super::attachments::Attachments,
    /// Those `originalContent` refers to (echoed to the sender only, never kept).
    #[serde(skip)]
    pub original_attachments: super::attachments::Attachments,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSessionKey {
    pub session_id: SessionRef,
    pub encrypted_keys: BTreeMap<UserId, Box<RawValue>>,
}

/// `file-downloaded`. Its `downloadedBy` is not read: the End2End Chat app puts the
/// downloader's display name there (free text); the notice names the member the
/// connection joined as instead.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDownloaded {
    pub session_id: SessionRef,
    pub sender_id: UserId,
    pub file_name: String,
    pub timestamp: Option<f64>,
}

/// `message-delivered` (built-in client): the messages `ids` of member `senderId`
/// reached this member's page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageDelivered {
    pub session_id: SessionRef,
    pub sender_id: UserId,
    pub ids: Vec<String>,
}

// ---- server -> client ----

/// A relayed message as members see it (`new-message`, `messages-history`).
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Arc<str>,
    pub from: UserId,
    pub to: Option<Recipient>,
    pub encrypted: Opaque,
    /// Binary attachments `encrypted` refers to; serialised as bytes in its place.
    pub attachments: super::attachments::Attachments,
    pub timestamp: u64,
    pub kind: Arc<str>,
    pub sender_display_name: DisplayName,
}

impl Serialize for Message {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Message", 7)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("from", &self.from)?;
        if let Some(to) = &self.to {
            m.serialize_field("to", to)?;
        } else {
            m.skip_field("to")?;
        }
        let encrypted = super::attachments::WithAttachments {
            json: &self.encrypted,
            attachments: self.attachments.as_slice(),
        };
        m.serialize_field("encrypted", &encrypted)?;
        m.serialize_field("timestamp", &self.timestamp)?;
        m.serialize_field("type", &self.kind)?;
        m.serialize_field("senderDisplayName", &self.sender_display_name)?;
        m.end()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyEntry {
    pub user_id: UserId,
    pub public_key: Opaque,
    pub display_name: DisplayName,
    pub joined_at: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetadata<'a> {
    pub chat_mode: super::ChatMode,
    pub encrypted_session_key: Option<&'a RawValue>,
    /// Same value as `encryptedSessionKey`: the original web client reads this name.
    pub session_key: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJoined<'a> {
    pub user_id: &'a UserId,
    pub display_name: &'a DisplayName,
    pub timestamp: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLeft<'a> {
    pub user_id: &'a UserId,
    pub timestamp: u64,
}

/// A member and its name: `user-typing`, `user-stopped-typing`, and
/// `public-key-changed` (a member now has another public key than before: a reload, a
/// new device, or someone else; clients can warn next to its safety number).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberNamed<'a> {
    pub user_id: &'a UserId,
    pub display_name: &'a DisplayName,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionKeyAvailable<'a> {
    pub encrypted_keys: &'a BTreeMap<UserId, Box<RawValue>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadNotification<'a> {
    /// The downloader's display name (its userId when it has none).
    pub downloaded_by: &'a str,
    /// The downloader's userId.
    pub user_id: &'a UserId,
    pub file_name: &'a str,
    pub timestamp: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionClosed<'a> {
    pub session_id: &'a str,
    pub timestamp: u64,
}

/// `message-delivered`, relayed to the sender: these messages reached `userId`'s page.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredNotice<'a> {
    pub ids: &'a [String],
    pub user_id: &'a UserId,
    pub timestamp: u64,
}

/// `member-removed`: the creator took a member out of the room.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRemoved<'a> {
    pub user_id: &'a UserId,
    pub display_name: &'a DisplayName,
    pub timestamp: u64,
}

/// `link-reset`: the creator replaced the room's link; the old one no longer admits.
#[derive(Serialize)]
pub struct LinkReset {
    pub timestamp: u64,
}

/// A successful acknowledgement: `{ok:true, ...body}`.
#[derive(Serialize)]
pub struct OkAck<T: Serialize> {
    pub ok: bool,
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> OkAck<T> {
    pub fn new(body: T) -> Self {
        OkAck { ok: true, body }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinAck {
    pub session_id: String,
    pub user_id: UserId,
    pub chat_mode: super::ChatMode,
    pub is_creator: bool,
    /// Present this on every later join as this member (see `store/resume.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    /// This (creator's) join created the session. Sent only when true: a page that had
    /// joined before learns that the server no longer had its room.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub created: bool,
    /// The server restarted and kept the room (its snapshot): sent only when true, on
    /// the member's first join since.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendAck {
    pub id: Arc<str>,
    pub timestamp: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

#[derive(Serialize)]
pub struct KeysAck<'a> {
    pub keys: &'a [PublicKeyEntry],
}

/// An ack with nothing but `ok: true`.
#[derive(Serialize)]
pub struct Empty {}

/// The body of a successful ack (after `ok: true`).
#[derive(Serialize)]
#[serde(untagged)]
pub enum AckBody {
    Empty(Empty),
    Joined(JoinAck),
    Sent(SendAck),
    Keys {
        keys: Vec<PublicKeyEntry>,
    },
    /// The receipt's ids that were relayed (the others were dropped).
    Delivered {
        relayed: Vec<String>,
    },
}

/// Deserializes `T` from a JSON object only. serde's derived structs also accept an
/// array of their fields in order; a payload must be an object (else `BAD_REQUEST`).
pub struct ObjectOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(ObjectOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_must_be_objects() {
        let arr: Result<ObjectOnly<SessionUser>, _> = serde_json::from_str(r#"["s1", "u1"]"#);
        assert!(arr.is_err());
        let obj: ObjectOnly<SessionUser> = serde_json::from_str(r#"{"sessionId": "s1"}"#).unwrap();
        assert_eq!(obj.0.session_id.id.as_str(), "s1");
    }
}
