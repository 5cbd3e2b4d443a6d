//! Who may act as an existing member: the identity rule both stores apply to a join.
//!
//! A userId is not a secret (the End2End Chat app reuses one for every room it joins),
//! so a join naming a member must be proven to come from that member's client:
//! - a join that creates a member and asked for an ack is issued a token in that ack
//!   (`resumeToken`). From then on the member *holds* a token and every join naming it
//!   from a new connection must present it: a tokenless one is refused at once
//!   (`RESUME_TOKEN_REQUIRED`), whether the member is present, within its presence grace
//!   or long gone, so a stranger who knows the link and the userId cannot slip in while
//!   the holder's connection is dying, and the holder, coming back with its token, never
//!   finds its place taken;
//! - a join that sent no ack cannot receive a token (the End2End Chat app sends none):
//!   issuing one would protect the member against its own client. Such a member holds
//!   none, and a tokenless join may take back its userId once it has no live connection
//!   (the app's reconnect comes after its old connection died, which the server sees
//!   within a heartbeat: the caller waits that long, see `socket::handlers::join`), while
//!   a tokenless takeover of a present member is refused. Taking back such a member
//!   issues no token either: whoever first made the member decides whether it is
//!   protected, not whoever came last.
//!
//! The server cannot tell a lost ack from a stranger: a client that asked for an ack and
//! lost the connection before it arrived never has the token the member now holds, and
//! is refused as a stranger would be (a rejoin presenting its token issues no new one,
//! so only the first join's ack matters).
//!
//! Tokens are 32 random bytes, Base64url; stores keep only their digest.

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

/// What a member's record says about proving its identity: the digest of the token its
/// client was sent, if it was sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proof {
    pub token: Option<TokenDigest>,
}

/// The outcome of the identity rule for a join on a connection not yet bound to it.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The member proved itself with its token: it keeps it.
    Proven,
    /// A new member whose join asked for an ack: it is issued a token.
    Issue,
    /// A new member without an ack, or an absent member without a token taken back
    /// without one: no token.
    Unproven,
}

/// What a member's record says, for [`admit`].
#[derive(Debug, Clone, Copy)]
pub struct Known {
    pub holds_token: bool,
    /// The presented token is the one it holds.
    pub token_matches: bool,
    /// It has a live connection.
    pub present: bool,
}

/// The refusal of a tokenless join naming a member that holds a token.
pub fn token_required() -> AppError {
    AppError::new(
        ErrorCode::ResumeTokenRequired,
        "This member holds a resume token: only a join presenting it may act as this member",
    )
}

/// Applies the rule to a join naming `member` (`None`: a new member); `presented`: the
/// join carried a token; `acked`: it asked for an ack (so it can receive a token).
pub fn admit(member: Option<Known>, presented: bool, acked: bool) -> Result<Admission, AppError> {
    let Some(m) = member else {
        return Ok(match acked {
            true => Admission::Issue,
            false => Admission::Unproven,
        });
    };
    match presented {
        true if m.holds_token && m.token_matches => Ok(Admission::Proven),
        true => Err(AppError::forbidden(
            "This resume token does not belong to this member",
        )),
        false if m.holds_token => Err(token_required()),
        false if m.present => Err(AppError::new(
            ErrorCode::MemberPresent,
            "This person is already in the room on another connection",
        )),
        false => Ok(Admission::Unproven),
    }
}

impl Proof {
    /// This record as [`admit`] reads it, for a join presenting `presented`.
    pub fn known(&self, presented: Option<&Secret>, present: bool) -> Known {
        Known {
            holds_token: self.token.is_some(),
            token_matches: match (self.token, presented) {
                (Some(d), Some(t)) => d == digest(t.expose()),
                _ => false,
            },
            present,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<Admission, AppError>) -> ErrorCode {
        r.unwrap_err().error
    }

    #[test]
    fn a_new_member_gets_a_token_only_through_an_ack() {
        assert_eq!(admit(None, false, true).unwrap(), Admission::Issue);
        assert_eq!(admit(None, false, false).unwrap(), Admission::Unproven);
    }

    #[test]
    fn a_holder_is_protected_from_its_first_join() {
        let (token, d) = issue();
        let held = Proof { token: Some(d) };
        let good = Secret::from(token.as_str());
        let bad = Secret::from("nope");
        for present in [true, false] {
            for acked in [true, false] {
                assert_eq!(
                    admit(Some(held.known(Some(&good), present)), true, acked).unwrap(),
                    Admission::Proven
                );
                assert_eq!(
                    code(admit(Some(held.known(None, present)), false, acked)),
                    ErrorCode::ResumeTokenRequired
                );
                assert_eq!(
                    code(admit(Some(held.known(Some(&bad), present)), true, acked)),
                    ErrorCode::Forbidden
                );
            }
        }
        assert_ne!(issue().0, token, "tokens are random");
    }

    #[test]
    fn a_member_without_a_token_keeps_todays_rule() {
        let none = Proof::default();
        let good = Secret::from("anything");
        assert_eq!(
            code(admit(Some(none.known(None, true)), false, true)),
            ErrorCode::MemberPresent
        );
        for acked in [true, false] {
            assert_eq!(
                admit(Some(none.known(None, false)), false, acked).unwrap(),
                Admission::Unproven,
                "taken back, and still unprotected"
            );
        }
        assert_eq!(
            code(admit(Some(none.known(Some(&good), false)), true, true)),
            ErrorCode::Forbidden
        );
    }
}
