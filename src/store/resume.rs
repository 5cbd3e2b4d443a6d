//! Who may act as an existing member: the identity rule both stores apply to a join.
//!
//! A userId is not a secret (the End2End Chat app reuses one for every room it joins),
//! so a join naming a member must be proven to come from that member's client:
//! - every join that does not present a valid resume token is issued a new one in its
//!   ack (`resumeToken`); clients that can keep it (the built-in web client) present it
//!   on every rejoin, and a member that once presented it must always do so;
//! - a client that never presents one (the End2End Chat app) may take back its userId
//!   only once that member has no live connection: its reconnects come after the old
//!   connection died, which the server sees within a heartbeat (the caller waits that
//!   long, see `socket::handlers::join`), while a stranger's takeover of a present
//!   member is refused.
//!
//! Tokens are 32 random bytes, Base64url; stores keep only their SHA-256.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    protocol::{AppError, ErrorCode},
    secret::Secret,
};

/// The SHA-256 of a token, as stored.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token and its digest.
pub fn issue() -> (String, TokenDigest) {
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on the platforms we build for; a zero token
    // would only make that member's token guessable, never another member's.
    let _ = getrandom::fill(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let d = digest(&token);
    (token, d)
}

/// What a member's record says about proving its identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proof {
    pub token: Option<TokenDigest>,
    /// It presented its token once: from then on it must.
    pub proven: bool,
}

/// The outcome of the identity rule for a join on a connection not yet bound to it.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The member proved itself: keep its token.
    Proven,
    /// A new member, or an absent one taken back without a token: issue a new token.
    Issue,
}

/// Applies the rule to a join naming `member` (`None`: a new member).
pub fn admit(
    member: Option<(Proof, bool)>,
    presented: Option<&Secret>,
) -> Result<Admission, AppError> {
    let Some((proof, present)) = member else {
        return Ok(Admission::Issue);
    };
    match presented {
        Some(token) => match proof.token {
            Some(d) if d == digest(token.expose()) => Ok(Admission::Proven),
            _ => Err(AppError::forbidden(
                "This resume token does not belong to this member",
            )),
        },
        None if proof.proven => Err(AppError::forbidden(
            "This member proves who it is with its resume token",
        )),
        None if present => Err(AppError::new(
            ErrorCode::MemberPresent,
            "This person is already in the room on another connection",
        )),
        None => Ok(Admission::Issue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_rule() {
        let (token, d) = issue();
        let held = Proof {
            token: Some(d),
            proven: false,
        };
        let proven = Proof {
            token: Some(d),
            proven: true,
        };
        let good = Secret::from(token.as_str());
        let bad = Secret::from("nope");
        assert_eq!(admit(None, None).unwrap(), Admission::Issue);
        assert_eq!(
            admit(Some((held, true)), Some(&good)).unwrap(),
            Admission::Proven
        );
        assert_eq!(admit(Some((held, false)), None).unwrap(), Admission::Issue);
        let code = |r: Result<Admission, AppError>| r.unwrap_err().error;
        assert_eq!(
            code(admit(Some((held, true)), None)),
            ErrorCode::MemberPresent
        );
        assert_eq!(
            code(admit(Some((held, true)), Some(&bad))),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(admit(Some((proven, false)), None)),
            ErrorCode::Forbidden
        );
        assert_ne!(issue().0, token, "tokens are random");
    }
}
