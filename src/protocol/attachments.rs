//! Binary attachments of a message.
//!
//! socket.io sends a `Buffer`/`ArrayBuffer` inside an event as a placeholder
//! `{"_placeholder":true,"num":N}` in the JSON, with the bytes beside it. A message's
//! `encrypted` value keeps its placeholders (renumbered to the attachments it refers to,
//! so bytes of other fields, such as a binary `originalContent`, are never kept) and the
//! bytes travel beside it: relaying serialises each placeholder back as bytes, which
//! socketioxide turns into a binary packet again.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Serialize, ser::Error as _};
use serde_json::{Value, value::RawValue};

use super::Opaque;

/// The attachments a message's `encrypted` value refers to (none for most messages).
#[derive(Debug, Clone, Default)]
pub struct Attachments(Option<Arc<[Bytes]>>);

/// `{"_placeholder":true,"num":N}` → `N`.
fn placeholder(v: &Value) -> Option<usize> {
    let o = v.as_object()?;
    if o.len() != 2 || o.get("_placeholder")? != &Value::Bool(true) {
        return None;
    }
    usize::try_from(o.get("num")?.as_u64()?).ok()
}

/// Renumbers the placeholders in `v` to the attachments they refer to, collecting them.
fn renumber(v: &mut Value, bins: &[Bytes], kept: &mut Vec<Bytes>) -> Result<(), String> {
    if let Some(n) = placeholder(v) {
        let bytes = bins
            .get(n)
            .ok_or("a binary placeholder refers to no attachment")?;
        kept.push(bytes.clone());
        *v = serde_json::json!({ "_placeholder": true, "num": kept.len() - 1 });
        return Ok(());
    }
    match v {
        Value::Array(items) => items.iter_mut().try_for_each(|i| renumber(i, bins, kept)),
        Value::Object(map) => map.values_mut().try_for_each(|i| renumber(i, bins, kept)),
        _ => Ok(()),
    }
}

impl Attachments {
    /// `json` (a field of an event that came with `bins`) and the attachments it refers to.
    pub fn of(json: Opaque, bins: &[Bytes]) -> Result<(Opaque, Attachments), String> {
        if bins.is_empty() || !json.get().contains("_placeholder") {
            return Ok((json, Attachments::default()));
        }
        let mut value: Value = serde_json::from_str(json.get()).map_err(|e| e.to_string())?;
        let mut kept = Vec::new();
        renumber(&mut value, bins, &mut kept)?;
        if kept.is_empty() {
            return Ok((json, Attachments::default()));
        }
        let json = serde_json::value::to_raw_value(&value).map_err(|e| e.to_string())?;
        Ok((Opaque::from(json), Attachments(Some(kept.into()))))
    }

    pub fn from_bytes(bins: Vec<Bytes>) -> Self {
        Attachments((!bins.is_empty()).then(|| bins.into()))
    }

    pub fn as_slice(&self) -> &[Bytes] {
        self.0.as_deref().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Their size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.as_slice().iter().map(Bytes::len).sum()
    }
}

/// `json` with each placeholder serialised as the bytes of its attachment.
pub struct WithAttachments<'a> {
    pub json: &'a RawValue,
    pub attachments: &'a [Bytes],
}

impl Serialize for WithAttachments<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.attachments.is_empty() {
            return self.json.serialize(s);
        }
        struct Node<'a>(&'a Value, &'a [Bytes]);
        impl Serialize for Node<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::{SerializeMap, SerializeSeq};
                if let Some(bytes) = placeholder(self.0).and_then(|n| self.1.get(n)) {
                    return s.serialize_bytes(bytes);
                }
                match self.0 {
                    Value::Array(items) => {
                        let mut seq = s.serialize_seq(Some(items.len()))?;
                        for i in items {
                            seq.serialize_element(&Node(i, self.1))?;
                        }
                        seq.end()
                    }
                    Value::Object(fields) => {
                        let mut map = s.serialize_map(Some(fields.len()))?;
                        for (k, v) in fields {
                            map.serialize_entry(k, &Node(v, self.1))?;
                        }
                        map.end()
                    }
                    scalar => scalar.serialize(s),
                }
            }
        }
        let value: Value = serde_json::from_str(self.json.get()).map_err(S::Error::custom)?;
        Node(&value, self.attachments).serialize(s)
    }
}

/// Attachments as stored in Redis: standard Base64, one string each.
pub mod stored {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use bytes::Bytes;

    /// The key of a stored message's JSON that holds its attachments.
    pub const KEY: &str = "_attachments";

    pub fn encode(bins: &[Bytes]) -> Vec<String> {
        bins.iter().map(|b| STANDARD.encode(b)).collect()
    }

    pub fn decode(texts: &[String]) -> Option<Vec<Bytes>> {
        texts
            .iter()
            .map(|t| STANDARD.decode(t).ok().map(Bytes::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Opaque {
        Opaque::from(RawValue::from_string(s.into()).unwrap())
    }

    #[test]
    fn only_the_attachments_a_value_refers_to_are_kept_and_renumbered() {
        let bins = [
            Bytes::from_static(b"plain"),
            Bytes::from_static(b"\x00\x01"),
        ];
        let json = raw(r#"{"iv":"x","data":{"_placeholder":true,"num":1}}"#);
        let (json, att) = Attachments::of(json, &bins).unwrap();
        assert_eq!(att.as_slice(), &[Bytes::from_static(b"\x00\x01")]);
        let v: Value = serde_json::from_str(json.get()).unwrap();
        assert_eq!(
            v["data"],
            serde_json::json!({"_placeholder": true, "num": 0})
        );
        assert!(Attachments::of(raw(r#"{"_placeholder":true,"num":5}"#), &bins).is_err());
        let (_, none) = Attachments::of(raw(r#""text""#), &bins).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn stored_attachments_round_trip() {
        let bins = vec![Bytes::from_static(b"\xff\x00abc")];
        assert_eq!(stored::decode(&stored::encode(&bins)).unwrap(), bins);
    }
}
