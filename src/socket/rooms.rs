//! Socket.IO room names. A session's room holds every joined socket; a member's room
//! holds that member's sockets (tabs, a reconnect racing the old socket), so a message
//! to a member reaches all of them, on any node. Ids cannot contain `#`, so the two
//! kinds of name never collide.

use crate::protocol::{SessionId, UserId};

pub fn session(id: &SessionId) -> String {
    id.as_str().to_owned()
}

pub fn member(id: &SessionId, user: &UserId) -> String {
    format!("{id}#{user}")
}
