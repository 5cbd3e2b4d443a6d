//! Every client event's payload type, decoded from arbitrary bytes as the handlers do
//! (`ObjectOnly<T>` over serde_json). Beyond "no panic": a payload decodes only from a
//! JSON object; every id in it re-validates and equals the field's JSON string; display
//! names are the field cleaned by the name rule; credentials at most 1024 bytes and never empty;
//! opaque values are valid JSON and never `null` where required.

#![no_main]

use blindrelay::protocol::{
    DisplayName, FileDownloaded, JoinSession, ObjectOnly, Recipient, SavePublicKey, SendMessage,
    SessionId, SessionRef, SessionUser, SetSessionKey, UserId, clean_display_name,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::{Value, value::RawValue};

fn id_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_session_ref(r: &SessionRef, field: Option<&Value>) {
    let id = r.id.as_str();
    assert!(id_chars_ok(id), "sessionId {id:?}");
    assert_eq!(SessionId::parse(id).unwrap(), r.id);
    let mut text = id.to_owned();
    if let Some(c) = &r.credential {
        assert!(!c.is_empty() && c.len() <= 1024);
        text.push(':');
        text.push_str(c.expose());
    }
    // The field may also be `"<id>:"` (an empty credential counts as none).
    if let Some(field) = field {
        let field = field.as_str().expect("sessionId is a string");
        assert!(field == text || (r.credential.is_none() && field == format!("{id}:")));
    }
}

fn check_user(u: &UserId, field: Option<&Value>) {
    assert!(id_chars_ok(u.as_str()), "userId {u:?}");
    assert_eq!(UserId::parse(u.as_str()).unwrap(), *u);
    if let Some(field) = field {
        assert_eq!(field.as_str(), Some(u.as_str()));
    }
}

fn check_name(n: &DisplayName, field: Option<&Value>) {
    assert!(n.as_str().len() <= 256);
    if let Some(field) = field {
        let raw = field.as_str().expect("a name is a string");
        assert_eq!(n.as_str(), clean_display_name(raw));
    }
}

/// Opaque values are relayed as their exact text: it must be one JSON value that reads
/// back to itself. (Not necessarily a `Value`: a lone surrogate escape such as
/// `"\ude00"` is valid JSON grammar, kept verbatim, but has no Rust `String`; found by
/// this target, pinned in tests/regressions.rs.)
fn check_opaque(raw: &RawValue) {
    assert_ne!(raw.get(), "null");
    let again: Box<RawValue> = serde_json::from_str(raw.get()).expect("opaque values are JSON");
    assert_eq!(again.get(), raw.get());
}

/// Decodes `T` as a handler does; a success implies a JSON object.
fn decode<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    let decoded = serde_json::from_slice::<ObjectOnly<T>>(data).ok()?;
    let first = data
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    assert_eq!(
        first,
        Some(&b'{'),
        "decoded from something that is not a JSON object"
    );
    Some(decoded.0)
}

fuzz_target!(|data: &[u8]| {
    // The same bytes as a `Value`, to compare fields with. It may fail where a payload
    // decodes (serde ignores unknown fields without range-checking their numbers, a
    // `Value` refuses 1e400): the field checks then only check the payload itself.
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let object = value.as_ref().and_then(Value::as_object);
    let field = |name: &str| object.map(|o| o.get(name).unwrap_or(&Value::Null));

    if let Some(p) = decode::<JoinSession>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        check_user(&p.user_id, field("userId"));
        if let Some(n) = &p.display_name {
            check_name(n, field("displayName"));
        }
        if let Some(k) = &p.public_key {
            check_opaque(k);
        }
        if let Some(k) = &p.auth_key {
            if let Some(f) = field("authKey") {
                assert_eq!(f.as_str(), Some(k.as_str()));
            }
        }
    }
    if let Some(p) = decode::<SavePublicKey>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        if let Some(u) = &p.user_id {
            check_user(u, field("userId"));
        }
        check_opaque(&p.public_key);
        if let Some(n) = &p.display_name {
            check_name(n, field("displayName"));
        }
    }
    if let Some(p) = decode::<SessionUser>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        if let Some(u) = &p.user_id {
            check_user(u, field("userId"));
        }
    }
    if let Some(p) = decode::<SendMessage>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        if let Some(u) = &p.from {
            check_user(u, field("from"));
        }
        match &p.to {
            None => {}
            Some(Recipient::All) => {
                if let Some(f) = field("to") {
                    assert_eq!(f.as_str(), Some("all"));
                }
            }
            Some(Recipient::User(u)) => {
                assert_ne!(u.as_str(), "all");
                check_user(u, field("to"));
            }
        }
        check_opaque(&p.encrypted);
        if let Some(c) = &p.original_content {
            check_opaque(c);
        }
    }
    if let Some(p) = decode::<SetSessionKey>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        let keys = field("encryptedKeys").map(|f| f.as_object().expect("an object"));
        if let Some(keys) = keys {
            assert_eq!(keys.len(), p.encrypted_keys.len());
        }
        for (u, k) in &p.encrypted_keys {
            check_user(u, None);
            assert!(keys.is_none_or(|keys| keys.contains_key(u.as_str())));
            check_opaque(k);
        }
    }
    if let Some(p) = decode::<FileDownloaded>(data) {
        check_session_ref(&p.session_id, field("sessionId"));
        check_user(&p.sender_id, field("senderId"));
        // `downloadedBy` is not read: the notice names the downloader by its stored name.
        if let Some(f) = field("fileName") {
            assert_eq!(f.as_str(), Some(p.file_name.as_str()));
        }
    }
});
