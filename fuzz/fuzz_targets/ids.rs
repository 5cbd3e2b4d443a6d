//! The id, name and credential parsers, on arbitrary strings, against the rules of docs/protocol.md
//! written out independently: sessionId and userId are 1-128 of `[A-Za-z0-9_.-]`;
//! `sessionId` in events is `<id>` or `<id>:<credential>` (credential at most 1024 bytes,
//! an empty one counts as none); displayName: text only (no control, bidi or stray
//! zero-width character, single inner spaces, trimmed), at most 256 bytes, stable under
//! the rule, empty only when given empty; authKey at most 1024 bytes. A parsed value re-validates and keeps the text; the JSON path (serde) accepts
//! exactly what `parse` accepts.

#![no_main]

use blindrelay::protocol::{DisplayName, SessionId, SessionRef, UserId, parse_credential_field};
use libfuzzer_sys::fuzz_target;

fn id_rule(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let json = serde_json::to_string(s).unwrap();

    match SessionId::parse(s) {
        Ok(id) => {
            assert!(id_rule(s), "SessionId accepted {s:?}");
            assert_eq!(id.as_str(), s);
            assert_eq!(SessionId::parse(id.as_str()).unwrap(), id);
            assert_eq!(serde_json::to_string(&id).unwrap(), json);
        }
        Err(_) => assert!(!id_rule(s), "SessionId refused {s:?}"),
    }
    assert_eq!(
        serde_json::from_str::<SessionId>(&json).ok(),
        SessionId::parse(s).ok()
    );

    match UserId::parse(s) {
        Ok(id) => {
            assert!(id_rule(s), "UserId accepted {s:?}");
            assert_eq!(id.as_str(), s);
            assert_eq!(UserId::parse(id.as_str()).unwrap(), id);
        }
        Err(_) => assert!(!id_rule(s), "UserId refused {s:?}"),
    }
    assert_eq!(
        serde_json::from_str::<UserId>(&json).ok(),
        UserId::parse(s).ok()
    );

    let (id_part, rest) = match s.split_once(':') {
        Some((i, r)) => (i, Some(r)),
        None => (s, None),
    };
    let ref_rule = id_rule(id_part) && rest.is_none_or(|r| r.len() <= 1024);
    match SessionRef::parse(s) {
        Ok(r) => {
            assert!(ref_rule, "SessionRef accepted {s:?}");
            assert_eq!(r.id.as_str(), id_part);
            let want = rest.filter(|r| !r.is_empty());
            assert_eq!(r.credential.as_ref().map(|c| c.expose()), want);
            if let Some(c) = &r.credential {
                // The password form's digest is what follows "password:".
                assert_eq!(c.joiner_password(), c.expose().strip_prefix("password:"));
            }
        }
        Err(_) => assert!(!ref_rule, "SessionRef refused {s:?}"),
    }
    let via_json = serde_json::from_str::<SessionRef>(&json);
    assert_eq!(via_json.is_ok(), SessionRef::parse(s).is_ok());

    let name = DisplayName::new(s);
    let n = name.as_str();
    assert!(n.len() <= 256, "DisplayName kept {s:?}");
    assert_eq!(n.is_empty(), s.is_empty());
    assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "));
    assert!(
        !n.chars().any(|c| c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c, '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')),
        "DisplayName kept a control character of {s:?}: {n:?}"
    );
    assert_eq!(DisplayName::new(n).as_str(), n, "not stable: {s:?}");
    assert_eq!(serde_json::from_str::<DisplayName>(&json).ok(), Some(name));

    match parse_credential_field(s) {
        Ok(c) => {
            assert!(s.len() <= 1024);
            assert_eq!(c.expose(), s);
            assert_eq!(c.len(), s.len());
            assert!(c.matches(s));
        }
        Err(_) => assert!(s.len() > 1024),
    }
});
