//! Where a handler's notices go: one session's rooms, seen from the socket that sent the
//! event. On every node (the adapter carries a broadcast to the others).
//!
//! A notice that a socket cannot take (its outgoing buffer is full) is that socket's own
//! problem: its budget cuts it off, and it reads the room's state again when it joins.
//! So a failed notice never fails the event that caused it, and is not reported here.

use serde::Serialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::rooms;
use crate::{
    logging::{ConnTag, SessionTag},
    protocol::{SessionId, UserId},
};

/// Session `id`'s rooms, as seen from `socket`.
pub struct Tell<'a, A: Adapter> {
    socket: &'a SocketRef<A>,
    id: &'a SessionId,
}

impl<'a, A: Adapter> Tell<'a, A> {
    pub fn new(socket: &'a SocketRef<A>, id: &'a SessionId) -> Self {
        Tell { socket, id }
    }

    /// Every member's sockets, this one included.
    pub async fn everyone<T: ?Sized + Serialize>(&self, event: &str, data: &T) {
        let room = rooms::session(self.id);
        let _ = self.socket.within(room).emit(event, data).await;
    }

    /// Every member's sockets but this one.
    pub async fn others<T: ?Sized + Serialize>(&self, event: &str, data: &T) {
        let room = rooms::session(self.id);
        let _ = self.socket.to(room).emit(event, data).await;
    }

    /// The sockets of member `user` (this one too, if it is one of them).
    pub async fn member<T: ?Sized + Serialize>(&self, user: &UserId, event: &str, data: &T) {
        let room = rooms::member(self.id, user);
        let _ = self.socket.within(room).emit(event, data).await;
    }

    /// This socket alone.
    pub fn me<T: ?Sized + Serialize>(&self, event: &str, data: &T) {
        let _ = self.socket.emit(event, data);
    }

    /// Member `user`'s sockets, on every node, leave the session's rooms.
    pub async fn unbind_member(&self, user: &UserId) {
        let member = rooms::member(self.id, user);
        let all = vec![rooms::session(self.id), member.clone()];
        let _ = self.socket.within(member).leave(all).await;
    }

    /// Every socket in the session, on every node, leaves its rooms (`members`: who
    /// was in it).
    pub async fn unbind_everyone(&self, members: &[UserId]) {
        let room = rooms::session(self.id);
        let mut all: Vec<String> = members.iter().map(|u| rooms::member(self.id, u)).collect();
        all.push(room.clone());
        let _ = self.socket.within(room).leave(all).await;
    }

    /// Logs that `what` happened to the session through this socket: tags, never ids.
    pub fn log(&self, what: &str) {
        tracing::info!(socket = %ConnTag::of(self.socket.id), session = %SessionTag::of(self.id), "{what}");
    }
}
