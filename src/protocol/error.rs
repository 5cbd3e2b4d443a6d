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
    /// A join without proof names a member present on another connection. Internal: the
    /// join waits for that connection to go, then answers `FORBIDDEN` if it has not.
    MemberPresent,
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
            ErrorCode::MemberPresent => "MEMBER_PRESENT",
        }
    }
}

/// A refused request: a code for programs and a sentence for people.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct AppError {
    pub error: ErrorCode,
    pub message: Cow<'static, str>,
}

impl AppError {
    pub fn new(error: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        AppError {
            error,
            message: message.into(),
        }
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

    pub fn not_in_session() -> Self {
        Self::new(ErrorCode::NotInSession, "Join the session first")
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "The server cannot reach its shared state; try again shortly",
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
