//! Error codes a client can receive, in acks (`{ok:false, error, message}`) and in
//! `session-error {error, message}`.

use std::borrow::Cow;

use serde::Serialize;

/// Every error code of the protocol. The first five are the original server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    SessionNotFound,
    InvalidKey,
    InvalidPassword,
    SessionNotActive,
    SessionFull,
    BadRequest,
    NotInSession,
    Forbidden,
    PayloadTooLarge,
    LimitReached,
    SessionExpired,
    RateLimited,
    /// Shared state (Redis) cannot be reached; retry later.
    Unavailable,
    /// The creator removed this member; it cannot join again.
    Removed,
    /// A join without proof names a member present on another connection. Internal: the
    /// join waits for that connection to go, then answers `FORBIDDEN` if it has not.
    MemberPresent,
    /// A join without a resume token names a member whose client was sent one: only
    /// that token admits a join as this member (see `store/resume.rs`).
    ResumeTokenRequired,
    /// A delivery receipt names no message of that sender addressed to the claimant.
    UnknownMessage,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::InvalidKey => "INVALID_KEY",
            ErrorCode::InvalidPassword => "INVALID_PASSWORD",
            ErrorCode::SessionNotActive => "SESSION_NOT_ACTIVE",
            ErrorCode::SessionFull => "SESSION_FULL",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::NotInSession => "NOT_IN_SESSION",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::LimitReached => "LIMIT_REACHED",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Removed => "REMOVED",
            ErrorCode::MemberPresent => "MEMBER_PRESENT",
            ErrorCode::ResumeTokenRequired => "RESUME_TOKEN_REQUIRED",
            ErrorCode::UnknownMessage => "UNKNOWN_MESSAGE",
        }
    }
}

/// A refused request: a code for programs and a sentence for people.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct AppError {
    pub error: ErrorCode,
    pub message: Cow<'static, str>,
    /// How long to wait before a retry can succeed, when that is known (a rate limit, a
    /// lockout), so that a client can say "try again in 4 minutes".
    #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl AppError {
    pub fn new(error: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        AppError {
            error,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The same error, saying when a retry can succeed.
    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after_ms = Some(wait.as_millis().try_into().unwrap_or(u64::MAX).max(1));
        self
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn too_large(what: &str, limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("{what} is larger than {limit} bytes"),
        )
    }

    // The refusals of `join-session`. The End2End Chat app shows `message` verbatim
    // (then leaves the room), so these keep the original server's words.

    pub fn session_not_found() -> Self {
        Self::new(
            ErrorCode::SessionNotFound,
            "Session not found. Please check the session link.",
        )
    }

    pub fn invalid_key() -> Self {
        Self::new(
            ErrorCode::InvalidKey,
            "Invalid authentication key. Please check your link and try again.",
        )
    }

    /// A creator's key differs from the one the session was reserved or created with.
    pub fn creator_key_mismatch() -> Self {
        Self::new(
            ErrorCode::InvalidKey,
            "Session key mismatch. This should not happen.",
        )
    }

    pub fn invalid_password() -> Self {
        Self::new(
            ErrorCode::InvalidPassword,
            "Incorrect password. Please check and try again.",
        )
    }

    pub fn session_not_active() -> Self {
        Self::new(
            ErrorCode::SessionNotActive,
            "Room not active yet. Please wait for the creator to join first.",
        )
    }

    pub fn session_full() -> Self {
        Self::new(
            ErrorCode::SessionFull,
            "This room is full. Only 2 members allowed.",
        )
    }

    pub fn session_expired() -> Self {
        Self::new(
            ErrorCode::SessionExpired,
            "This session has expired. Please start a new one.",
        )
    }

    /// An action only the session's creator may take, e.g. "remove a member".
    pub fn creator_only(action: &str) -> Self {
        Self::forbidden(format!("Only the session's creator may {action}"))
    }

    pub fn no_such_member() -> Self {
        Self::new(ErrorCode::NotInSession, "No such member in this session")
    }

    pub fn cannot_remove_self() -> Self {
        Self::bad_request("The creator cannot remove itself; close the session instead")
    }

    pub fn password_key_expected() -> Self {
        Self::bad_request("authKey: a password room's key is <key>:<password digest>")
    }

    pub fn removed() -> Self {
        Self::new(ErrorCode::Removed, "You were removed from this room.")
    }

    pub fn not_in_session() -> Self {
        Self::new(ErrorCode::NotInSession, "Join the session first")
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The server cannot reach its shared state; try again shortly",
        )
    }

    /// A message was stored but its relay to the other nodes failed: members on them
    /// may not have it live. Retrying with the same `clientMessageId` is safe (it is
    /// acked as a duplicate), and everyone reads it in the history.
    pub fn not_relayed() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The message was stored, but the server could not relay it to every member; \
             they see it in the history when they next join",
        )
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
}

/// The failed acknowledgement: `{ok:false, error, message}`.
#[derive(Serialize)]
pub struct ErrorAck<'a> {
    pub ok: bool,
    #[serde(flatten)]
    pub err: &'a AppError,
}
