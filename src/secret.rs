//! Credentials that must never reach a log, a reply or a timing side channel.

use std::fmt;

use subtle::ConstantTimeEq;

/// An auth key, password digest or admin token.
///
/// It has no `Display` and no `Serialize`, its `Debug` is redacted, and equality is
/// constant-time, so the type itself keeps the zero-knowledge promise.
#[derive(Clone)]
pub struct Secret(Box<str>);

impl Secret {
    /// Constant-time comparison (the length may leak, the content does not).
    pub fn matches(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }

    /// The password part of a password room's key: what follows the first `:`
    /// (`"<authKey>:<passwordDigest>"`), or the whole key when it has none.
    pub fn password_part(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(_, pw)| pw)
    }

    /// Constant-time comparison against this key's password part.
    pub fn password_matches(&self, password: &str) -> bool {
        self.password_part()
            .as_bytes()
            .ct_eq(password.as_bytes())
            .into()
    }

    /// The password a joiner sends as `"<id>:password:<digest>"`, if this is that form.
    pub fn joiner_password(&self) -> Option<&str> {
        self.0.strip_prefix("password:")
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// For the session stores and the admin token check only; never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s.into_boxed_str())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn password_part_follows_the_first_colon() {
        let s = Secret::from("key:pw:with:colons");
        assert!(s.password_matches("pw:with:colons"));
        assert!(!s.password_matches("key"));
        assert!(Secret::from("plain").password_matches("plain"));
        assert!(s.matches("key:pw:with:colons"));
        assert!(!s.matches("key:pw"));
    }
}
