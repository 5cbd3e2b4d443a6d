//! The client events we handle, declared once: each kind's wire name and payload type.
//! [`EventKind`] (the name alone: routing, budgets, metrics) and [`ClientEvent`] (the
//! decoded payload) are both generated from the one list below; any other event name is
//! ignored, as the original server does.

use serde::de::DeserializeOwned;

use super::{
    AppError, FileDownloaded, JoinSession, MessageDelivered, RemoveMember, ResetLink,
    SavePublicKey, SendMessage, SessionUser, SetSessionKey,
};

/// Where a payload is decoded from (the socket layer's event data).
pub trait PayloadSource {
    fn payload<T: DeserializeOwned>(&mut self) -> Result<T, AppError>;
}

macro_rules! client_events {
    ($($kind:ident($payload:ty) = $name:literal,)*) => {
        /// A client event's kind, from its name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum EventKind {
            $($kind,)*
        }

        impl EventKind {
            /// Every kind, in declaration order (`kind as usize` indexes it).
            pub const ALL: &'static [EventKind] = &[$(Self::$kind,)*];

            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$kind),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }
        }

        /// A decoded client event.
        pub enum ClientEvent {
            $($kind($payload),)*
        }

        impl ClientEvent {
            /// Decodes the payload of an event of `kind`.
            pub fn decode(kind: EventKind, from: &mut impl PayloadSource) -> Result<Self, AppError> {
                Ok(match kind {
                    $(EventKind::$kind => Self::$kind(from.payload()?),)*
                })
            }
        }
    };
}

client_events! {
    JoinSession(JoinSession) = "join-session",
    SavePublicKey(SavePublicKey) = "save-public-key",
    GetPublicKeys(SessionUser) = "get-public-keys",
    SendMessage(SendMessage) = "send-message",
    SetSessionKey(SetSessionKey) = "set-session-key",
    Typing(SessionUser) = "typing",
    StoppedTyping(SessionUser) = "stopped-typing",
    FileDownloaded(FileDownloaded) = "file-downloaded",
    LeaveSession(SessionUser) = "leave-session",
    CloseSession(SessionUser) = "close-session",
    RemoveMember(RemoveMember) = "remove-member",
    ResetLink(ResetLink) = "reset-link",
    MessageDelivered(MessageDelivered) = "message-delivered",
}

impl EventKind {
    /// `leave-session` and `close-session`: still handled when the transport closed
    /// right after them.
    pub fn is_goodbye(self) -> bool {
        matches!(self, Self::LeaveSession | Self::CloseSession)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_name_and_its_index() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(EventKind::ALL.len(), 13);
        assert_eq!(EventKind::from_name("connect"), None);
    }
}
