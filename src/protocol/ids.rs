//! Validated identifiers. A value of these types is known to be well-formed, so the rest
//! of the server never re-checks a sessionId or userId a client sent.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Longest sessionId or userId accepted.
pub const MAX_ID_LEN: usize = 128;
/// Longest auth key or password digest accepted.
pub const MAX_CREDENTIAL_LEN: usize = 1024;

fn check_id(kind: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(format!("{kind} must be 1-{MAX_ID_LEN} characters"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(format!(
            "{kind} may only hold letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, String> {
                check_id($kind, s)?;
                Ok(Self(s.into()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

id_type!(
    /// A session (room) id: 1-128 of `[A-Za-z0-9_.-]`.
    SessionId,
    "sessionId"
);
id_type!(
    /// A member's id: 1-128 of `[A-Za-z0-9_.-]`.
    UserId,
    "userId"
);

/// The `sessionId` field of any event: `"<id>"`, `"<id>:<authKey>"` or
/// `"<id>:password:<digest>"`. Only `join-session` uses the credential.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: SessionId,
    /// Everything after the first `:`, if anything.
    pub credential: Option<Secret>,
}

impl SessionRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (id, rest) = match s.split_once(':') {
            Some((id, rest)) => (id, Some(rest)),
            None => (s, None),
        };
        let id = SessionId::parse(id)?;
        let credential = match rest {
            None | Some("") => None,
            Some(rest) if rest.len() > MAX_CREDENTIAL_LEN => {
                return Err("credentials in sessionId are too long".into());
            }
            Some(rest) => Some(Secret::from(rest)),
        };
        Ok(SessionRef { id, credential })
    }
}

impl<'de> Deserialize<'de> for SessionRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret given as a plain field (`authKey`), length-checked.
pub fn parse_credential_field(s: &str) -> Result<Secret, String> {
    if s.len() > MAX_CREDENTIAL_LEN {
        return Err(format!(
            "authKey must be at most {MAX_CREDENTIAL_LEN} bytes"
        ));
    }
    Ok(Secret::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_only() {
        assert!(SessionId::parse("abc-DEF_1.2").is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse(&"a".repeat(129)).is_err());
        assert!(SessionId::parse(&"a".repeat(128)).is_ok());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse("a#b").is_err());
        assert!(UserId::parse("é").is_err());
    }

    #[test]
    fn session_ref_splits_id_and_credentials() {
        let r = SessionRef::parse("room1:key:digest").unwrap();
        assert_eq!(r.id.as_str(), "room1");
        assert!(r.credential.unwrap().matches("key:digest"));
        let r = SessionRef::parse("room1:password:pw").unwrap();
        assert_eq!(r.credential.unwrap().joiner_password(), Some("pw"));
        assert!(SessionRef::parse("room1").unwrap().credential.is_none());
        assert!(SessionRef::parse("room1:").unwrap().credential.is_none());
        assert!(SessionRef::parse(":key").is_err());
    }
}
