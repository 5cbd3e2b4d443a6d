//! How a stored message is shaped for the member it is delivered to.
//!
//! The server never holds plaintext, so the `originalContent` the original server
//! relayed is gone. The End2End Chat app reads that field in two places
//! (`legacy-client.md` §3), and this module fills it without holding plaintext:
//! - a message addressed to one member with no `originalContent` makes the app show
//!   "Previous messages cannot be decrypted" to that member: such copies carry
//!   [`TO_YOU`], which recipients never display (they decrypt `encrypted`);
//! - the app shows its *own* messages from `originalContent`, never decrypting them, and
//!   a history entry replaces the app's local copy. So a member coming back on a new
//!   connection without a new key (the app's reconnect, which kept its local copies) is
//!   sent none of its own messages, and one entering afresh (a reload: new key, no local
//!   copies) gets them with [`OWN_AFTER_RELOAD`] instead of an endless "Sending...".

use serde::{Serialize, ser::SerializeSeq};
use serde_json::value::RawValue;

use super::{Message, Recipient, UserId, attachments::WithAttachments};

/// `originalContent` of a copy addressed to its reader: never displayed by the app.
pub const TO_YOU: &str = "🔒";

/// `originalContent` of the reader's own earlier messages after a reload; the app shows it
/// as the text of those bubbles.
pub const OWN_AFTER_RELOAD: &str =
    "🔒 Sent earlier. This server keeps no readable copy, so the text cannot be shown again.";

/// What the reader's own messages become in the history it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMessages {
    /// Left out: the reader still holds them (a reconnect, a resync).
    Omit,
    /// Sent with [`OWN_AFTER_RELOAD`] (a fresh entry, such as a reload).
    Placeholder,
}

/// One history entry as a store holds it: the message, or its JSON (Redis).
pub trait StoredMessage {
    fn sender(&self) -> &str;
    /// The single member it is addressed to, if any.
    fn recipient(&self) -> Option<&str>;
    fn serialize_with<S: serde::Serializer>(
        &self,
        original_content: Option<&str>,
        s: S,
    ) -> Result<S::Ok, S::Error>;
}

impl StoredMessage for Message {
    fn sender(&self) -> &str {
        self.from.as_str()
    }

    fn recipient(&self) -> Option<&str> {
        match &self.to {
            Some(Recipient::User(u)) => Some(u.as_str()),
            _ => None,
        }
    }

    fn serialize_with<S: serde::Serializer>(
        &self,
        original_content: Option<&str>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WithContent<'a> {
            #[serde(flatten)]
            message: &'a Message,
            #[serde(rename = "originalContent", skip_serializing_if = "Option::is_none")]
            original_content: Option<&'a str>,
        }
        WithContent {
            message: self,
            original_content,
        }
        .serialize(s)
    }
}

impl<M: StoredMessage> StoredMessage for std::sync::Arc<M> {
    fn sender(&self) -> &str {
        (**self).sender()
    }

    fn recipient(&self) -> Option<&str> {
        (**self).recipient()
    }

    fn serialize_with<S: serde::Serializer>(
        &self,
        original_content: Option<&str>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        (**self).serialize_with(original_content, s)
    }
}

/// A message as Redis holds it: its JSON, with its sender and recipient beside it.
#[derive(Debug)]
pub struct RawMessage {
    pub from: String,
    /// `""` (none), `"all"`, or a userId.
    pub to: String,
    pub json: Box<RawValue>,
}

impl StoredMessage for RawMessage {
    fn sender(&self) -> &str {
        &self.from
    }

    fn recipient(&self) -> Option<&str> {
        Some(self.to.as_str()).filter(|t| !t.is_empty() && *t != "all")
    }

    fn serialize_with<S: serde::Serializer>(
        &self,
        original_content: Option<&str>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        use super::attachments::{WithAttachments, stored};
        use serde::ser::{Error, SerializeMap};
        // Only a stored message with attachments holds this text outside its strings.
        let binary = self.json.get().contains(&format!("\"{}\":", stored::KEY));
        if original_content.is_none() && !binary {
            return self.json.serialize(s);
        }
        // The object's fields borrowed from its text (no copy of the ciphertext).
        let mut fields =
            serde_json::from_str::<std::collections::BTreeMap<&str, &RawValue>>(self.json.get())
                .map_err(S::Error::custom)?;
        fields.remove("originalContent");
        let bins = match fields.remove(stored::KEY) {
            None => Vec::new(),
            Some(texts) => serde_json::from_str::<Vec<String>>(texts.get())
                .ok()
                .and_then(|t| stored::decode(&t))
                .ok_or_else(|| S::Error::custom("stored attachments are malformed"))?,
        };
        let mut map = s.serialize_map(Some(fields.len() + 1))?;
        for (k, v) in fields {
            if k == "encrypted" {
                let encrypted = WithAttachments {
                    json: v,
                    attachments: &bins,
                };
                map.serialize_entry(k, &encrypted)?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        if let Some(content) = original_content {
            map.serialize_entry("originalContent", content)?;
        }
        map.end()
    }
}

/// `messages-history` for one reader.
pub struct HistoryFor<'a, M> {
    pub entries: &'a [M],
    pub reader: &'a UserId,
    pub own: OwnMessages,
}

impl<M: StoredMessage> HistoryFor<'_, M> {
    /// The `originalContent` an entry is sent with; `None` inside: sent as stored.
    fn shape(&self, m: &M) -> Option<Option<&'static str>> {
        let reader = self.reader.as_str();
        if m.sender() == reader {
            return match self.own {
                OwnMessages::Omit => None,
                OwnMessages::Placeholder => Some(Some(OWN_AFTER_RELOAD)),
            };
        }
        Some((m.recipient() == Some(reader)).then_some(TO_YOU))
    }
}

impl<M: StoredMessage> Serialize for HistoryFor<'_, M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Entry<'a, M>(&'a M, Option<&'static str>);
        impl<M: StoredMessage> Serialize for Entry<'_, M> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_with(self.1, s)
            }
        }
        let mut seq = s.serialize_seq(None)?;
        for m in self.entries {
            if let Some(content) = self.shape(m) {
                seq.serialize_element(&Entry(m, content))?;
            }
        }
        seq.end()
    }
}

/// `message` (a serialised message, a JSON object) with `originalContent` added, without
/// serialising the message again: the sender's own text in its `message-sent`, or
/// [`TO_YOU`] in a copy relayed to one member.
pub fn with_original_content(message: &RawValue, original_content: &RawValue) -> Box<RawValue> {
    let object = message.get().trim_end();
    let body = object.strip_suffix('}').unwrap_or(object);
    let text = format!("{body},\"originalContent\":{}}}", original_content.get());
    RawValue::from_string(text).unwrap_or_else(|_| message.to_owned())
}

/// A message as one relay sends it, with `originalContent` when given: serialised once
/// as JSON text and reused (most messages), or from the message itself when it has
/// binary attachments (they must reach socketioxide as bytes).
pub enum Relayed<'a> {
    Text(std::borrow::Cow<'a, RawValue>),
    Binary {
        message: &'a Message,
        original_content: Option<WithAttachments<'a>>,
    },
}

impl<'a> Relayed<'a> {
    /// `wire` is the message serialised, `None` when it has attachments.
    pub fn new(
        message: &'a Message,
        wire: Option<&'a RawValue>,
        original_content: Option<WithAttachments<'a>>,
    ) -> Self {
        use std::borrow::Cow;
        match (wire, original_content) {
            (Some(wire), None) => Relayed::Text(Cow::Borrowed(wire)),
            (Some(wire), Some(c)) if c.attachments.is_empty() => {
                Relayed::Text(Cow::Owned(with_original_content(wire, c.json)))
            }
            (_, original_content) => Relayed::Binary {
                message,
                original_content,
            },
        }
    }
}

impl Serialize for Relayed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WithContent<'a> {
            #[serde(flatten)]
            message: &'a Message,
            // Not an `Option`: socketioxide's serializer hands `Some` contents to plain
            // serde_json, which would write bytes as an array of numbers.
            #[serde(rename = "originalContent", skip_serializing_if = "Content::is_none")]
            original_content: Content<'a>,
        }
        struct Content<'a>(Option<&'a WithAttachments<'a>>);
        impl Content<'_> {
            fn is_none(&self) -> bool {
                self.0.is_none()
            }
        }
        impl Serialize for Content<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    Some(content) => content.serialize(s),
                    None => s.serialize_unit(),
                }
            }
        }
        match self {
            Relayed::Text(raw) => raw.serialize(s),
            Relayed::Binary {
                message,
                original_content,
            } => WithContent {
                message,
                original_content: Content(original_content.as_ref()),
            }
            .serialize(s),
        }
    }
}

/// [`TO_YOU`] as a JSON string.
pub fn to_you_json() -> Box<RawValue> {
    serde_json::value::to_raw_value(TO_YOU).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::DisplayName;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn message(id: &str, from: &str, to: Option<Recipient>) -> Message {
        Message {
            id: id.into(),
            from: user(from),
            to,
            encrypted: Arc::from(RawValue::from_string("\"c\"".into()).unwrap()),
            attachments: Default::default(),
            timestamp: 1,
            kind: "text".into(),
            sender_display_name: DisplayName::new("n"),
        }
    }

    fn raw(m: &Message) -> RawMessage {
        RawMessage {
            from: m.from.to_string(),
            to: match &m.to {
                None => String::new(),
                Some(Recipient::All) => "all".into(),
                Some(Recipient::User(u)) => u.to_string(),
            },
            json: serde_json::value::to_raw_value(m).unwrap(),
        }
    }

    /// (id, originalContent) of each entry `reader` is sent, from both store shapes.
    fn shaped(
        entries: &[Message],
        reader: &str,
        own: OwnMessages,
    ) -> Vec<(String, Option<String>)> {
        let reader = user(reader);
        let pick = |v: serde_json::Value| -> Vec<(String, Option<String>)> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let content = m.get("originalContent").map(|c| c.as_str().unwrap().into());
                    (m["id"].as_str().unwrap().into(), content)
                })
                .collect()
        };
        let memory = serde_json::to_value(HistoryFor {
            entries,
            reader: &reader,
            own,
        })
        .unwrap();
        let raws: Vec<RawMessage> = entries.iter().map(raw).collect();
        let redis = serde_json::to_value(HistoryFor {
            entries: &raws,
            reader: &reader,
            own,
        })
        .unwrap();
        assert_eq!(memory, redis, "both stores shape history alike");
        pick(memory)
    }

    #[test]
    fn own_messages_are_left_out_or_marked_and_copies_to_the_reader_are_marked() {
        let entries = [
            message("m1", "ana", Some(Recipient::User(user("bob")))),
            message("m2", "bob", Some(Recipient::User(user("ana")))),
            message("m3", "bob", Some(Recipient::All)),
            message("m4", "cy", Some(Recipient::User(user("bob")))),
        ];
        let own = Some(OWN_AFTER_RELOAD.to_string());
        let you = Some(TO_YOU.to_string());
        assert_eq!(
            shaped(&entries, "bob", OwnMessages::Omit),
            vec![("m1".into(), you.clone()), ("m4".into(), you.clone())]
        );
        assert_eq!(
            shaped(&entries, "bob", OwnMessages::Placeholder),
            vec![
                ("m1".into(), you.clone()),
                ("m2".into(), own.clone()),
                ("m3".into(), own),
                ("m4".into(), you)
            ]
        );
        assert_eq!(
            shaped(&entries, "ana", OwnMessages::Omit),
            vec![
                ("m2".into(), Some(TO_YOU.to_string())),
                ("m3".into(), None),
                ("m4".into(), None)
            ]
        );
    }

    #[test]
    fn original_content_is_spliced_into_a_serialised_message() {
        let message = RawValue::from_string(r#"{"id":"m1","encrypted":{"a":1}}"#.into()).unwrap();
        let plain = RawValue::from_string(r#""hello""#.into()).unwrap();
        let spliced = with_original_content(&message, &plain);
        let v: serde_json::Value = serde_json::from_str(spliced.get()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "m1", "encrypted": {"a": 1}, "originalContent": "hello"})
        );
    }
}
