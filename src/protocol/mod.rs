//! The wire protocol: identifiers, payloads both ways, error codes and size limits.

pub mod attachments;
mod client_events;
pub mod delivery;
mod error;
mod events;
mod ids;
mod name;

use serde::{Deserialize, Serialize};

pub use client_events::{ClientEvent, EventKind, PayloadSource};
pub use error::{AppError, ErrorAck, ErrorCode};
pub use events::*;
pub use ids::{SessionId, SessionRef, UserId, parse_credential_field};
pub use name::{DisplayName, NEUTRAL_NAME, clean_display_name, clean_file_name};

/// A session's mode, fixed when it is reserved or created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChatMode {
    #[default]
    Group,
    Private,
    Password,
}

impl ChatMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatMode::Group => "group",
            ChatMode::Private => "private",
            ChatMode::Password => "password",
        }
    }

    /// The mode named by [`ChatMode::as_str`]'s text.
    pub fn from_name(name: &str) -> Option<Self> {
        [ChatMode::Group, ChatMode::Private, ChatMode::Password]
            .into_iter()
            .find(|m| m.as_str() == name)
    }

    /// Private and password rooms hold two people.
    pub fn is_one_to_one(self) -> bool {
        matches!(self, ChatMode::Private | ChatMode::Password)
    }
}

/// Size limits on fields whose excess answers `PAYLOAD_TOO_LARGE`.
pub mod limits {
    /// A member's public key, as JSON text.
    pub const PUBLIC_KEY_BYTES: usize = 16 * 1024;
    /// One member's wrapped group key in `set-session-key`.
    pub const GROUP_KEY_BYTES: usize = 16 * 1024;
    /// Entries in one `set-session-key`.
    pub const GROUP_KEYS: usize = 1024;
    /// `fileName` in `file-downloaded`.
    pub const FILE_NAME_BYTES: usize = 1024;
    /// A message's `type`.
    pub const MESSAGE_TYPE_BYTES: usize = 32;
    /// A `clientMessageId`.
    pub const CLIENT_MESSAGE_ID_BYTES: usize = 128;
}

/// Milliseconds since the Unix epoch, as JavaScript's `Date.now()`.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
