//! The message bus between nodes: each session's messages travel on a channel of their
//! own, published by the script that stores them.
//!
//! socketioxide-redis sends every broadcast through one channel that every node reads
//! and decodes (MessagePack), and it publishes in a second round trip after the store's
//! script. For `new-message`, the hot path, `lua/append.lua` publishes instead, in the
//! same script that stores the message: one round trip, and "stored" implies
//! "published" (an ack never claims a relay that did not happen). The channel is
//! in the session's own slot, so on a Redis Cluster the script may `SPUBLISH` it and only
//! the shard that holds the session carries it.
//!
//! Each node has a channel per session, `<prefix>b:{<id>}:<node>`, and the script
//! publishes to the other nodes with a connection bound in the session (the session's
//! `:o` hash), never back to the sender's node: a room whose members all sit on one node
//! costs Redis no publish at all. A node subscribes to its channel of a session while it
//! has a connection bound there, from just before the join's script runs (so nothing
//! published after the join's history is missed) until the connection leaves. Messages
//! with binary attachments still go through the adapter.
//!
//! A frame is `<origin node>\n<kind>\n<member>\n<new-message JSON>`: kind `s` goes to
//! the session's room, `m` to one member's room. The origin node delivers to its own
//! sockets directly; a frame of its own (none is sent to it) would be skipped.
//!
//! A message larger than [`PARK_OVER_BYTES`] is not published as it is: Redis holds
//! what a subscriber has not read yet in that subscriber's output buffer, and cuts the
//! subscriber off beyond `client-output-buffer-limit pubsub` (32 MiB by default). Two
//! photos of the End2End Chat app (~19 MB each) to a node that reads a little slowly
//! were enough: the node lost its link, and what its clients sent meanwhile was refused.
//! So the script parks such a body in a key of the session's slot for [`PARKED_FOR`],
//! and publishes a frame of kind `S` or `M` whose last part names that key; each node
//! fetches it with a plain GET, in order with the other frames.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde_json::value::RawValue;
use socketioxide::{SocketIo, adapter::Adapter};
use tokio::sync::{Mutex, mpsc};

use crate::{
    cluster::PubSub,
    protocol::{SessionId, UserId},
    redis_link::Link,
    socket::rooms,
    store::ConnId,
};

/// A frame as the pub/sub connection hands it over: channel and payload.
pub type Frame = (String, Vec<u8>);

/// Frames received and not yet delivered to local sockets; a full queue pauses the node
/// like the adapter's (see `cluster::route`).
const BACKLOG: usize = 16 * 1024;

/// The largest message body published as it is; a larger one is parked (see above).
/// Messages of text are far smaller; 500 frames of this size fill the default hard limit.
pub const PARK_OVER_BYTES: usize = 64 * 1024;

/// How long a parked body waits for the nodes to fetch it: they do at once, unless this
/// node's delivery is that far behind (then it is missed live; the history has it).
pub const PARKED_FOR: Duration = Duration::from_secs(60);

/// Node `node`'s channel of session `id` (`lua/append.lua` builds the same name).
pub fn channel(prefix: &str, id: &SessionId, node: &str) -> String {
    format!("{prefix}b:{{{}}}:{node}", id.as_str())
}

/// This node's subscriptions to session channels.
pub struct SessionBus {
    pubsub: PubSub,
    prefix: Arc<str>,
    node: Arc<str>,
    tx: mpsc::Sender<Frame>,
    /// The connections of this node bound (or joining) in each subscribed session.
    bound: Mutex<HashMap<SessionId, HashSet<ConnId>>>,
}

impl SessionBus {
    /// The bus, and the receiver [`deliver`] reads.
    pub fn new(pubsub: PubSub, prefix: &str, node: Arc<str>) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let bus = SessionBus {
            pubsub,
            prefix: prefix.into(),
            node,
            tx,
            bound: Mutex::default(),
        };
        (bus, rx)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Before `conn` joins session `id`: subscribes to its channel if no connection of
    /// this node is in it yet. True when `conn` was not listed before (a failed join
    /// then calls [`release`](Self::release)).
    pub async fn acquire(&self, id: &SessionId, conn: ConnId) -> Result<bool, redis::RedisError> {
        let mut bound = self.bound.lock().await;
        let conns = bound.entry(id.clone()).or_default();
        if conns.contains(&conn) {
            return Ok(false);
        }
        if conns.is_empty() {
            let subscribed = self
                .pubsub
                .subscribe_with(channel(&self.prefix, id, &self.node), self.tx.clone())
                .await;
            if let Err(e) = subscribed {
                bound.remove(id);
                return Err(e);
            }
        }
        conns.insert(conn);
        Ok(true)
    }

    /// `conn` is no longer in session `id`: unsubscribes when it was this node's last.
    /// Under the lock, so that an unsubscribe never overtakes a later subscribe.
    pub async fn release(&self, id: &SessionId, conn: ConnId) {
        let mut bound = self.bound.lock().await;
        let Some(conns) = bound.get_mut(id) else {
            return;
        };
        conns.remove(&conn);
        if conns.is_empty() {
            bound.remove(id);
            if let Err(e) = self
                .pubsub
                .unsubscribe_from(channel(&self.prefix, id, &self.node))
                .await
            {
                // The subscription stays; its frames reach an empty room.
                tracing::debug!(error = %e, "cannot unsubscribe from a session's channel");
            }
        }
    }
}

/// Delivers the frames of other nodes to this node's sockets, in the order received.
/// `store` fetches parked bodies.
pub async fn deliver<A: Adapter>(
    io: SocketIo<A>,
    node: Arc<str>,
    prefix: Arc<str>,
    store: Link,
    mut rx: mpsc::Receiver<Frame>,
) {
    while let Some((chan, payload)) = rx.recv().await {
        let Some(frame) = Parsed::new(&chan, &payload) else {
            tracing::warn!("an unreadable frame on a session channel");
            continue;
        };
        if frame.origin == &*node {
            continue;
        }
        let room = match &frame.member {
            Some(member) => rooms::member(&frame.session, member),
            None => rooms::session(&frame.session),
        };
        let fetched;
        let message: &RawValue = match frame.body {
            Body::Inline(message) => message,
            Body::Parked(key) => {
                fetched = match fetch_parked(&store, &prefix, &frame.session, key).await {
                    Some(body) => body,
                    None => continue,
                };
                &fetched
            }
        };
        let _ = io.local().to(room).emit("new-message", message).await;
    }
}

/// The body parked in `key`, when `key` is a parked body of session `id` and still there.
async fn fetch_parked(
    store: &Link,
    prefix: &str,
    id: &SessionId,
    key: &str,
) -> Option<Box<RawValue>> {
    // Frames come from our own scripts; still, only a parked key of this session is read.
    let expected = format!("{prefix}s:{{{}}}:p:", id.as_str());
    if !key.starts_with(&expected) {
        tracing::warn!("a frame names a key that is not a parked body");
        return None;
    }
    let body: Option<String> = match redis::cmd("GET")
        .arg(key)
        .query_async(&mut store.clone())
        .await
    {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "cannot fetch a parked message from Redis");
            return None;
        }
    };
    let Some(body) = body else {
        tracing::warn!(
            after = ?PARKED_FOR,
            "a parked message is gone before this node fetched it (expired, or lost in a \
             failover); its history keeps it unless the failover lost that too"
        );
        return None;
    };
    match RawValue::from_string(body) {
        Ok(body) => Some(body),
        Err(_) => {
            tracing::warn!("an unreadable parked message");
            None
        }
    }
}

struct Parsed<'a> {
    session: SessionId,
    origin: &'a str,
    /// The member addressed (kinds `m`, `M`), or the whole session (`s`, `S`).
    member: Option<UserId>,
    body: Body<'a>,
}

/// A frame's message: in the frame (`s`, `m`), or parked in a key it names (`S`, `M`).
enum Body<'a> {
    Inline(&'a RawValue),
    Parked(&'a str),
}

impl<'a> Parsed<'a> {
    fn new(chan: &str, payload: &'a [u8]) -> Option<Self> {
        let id = chan.rsplit_once("b:{")?.1.split_once("}:")?.0;
        let session = SessionId::parse(id).ok()?;
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.splitn(4, '\n');
        let (origin, kind, member, last) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let member = match kind {
            "s" | "S" => None,
            "m" | "M" => Some(UserId::parse(member).ok()?),
            _ => return None,
        };
        let body = match kind {
            "S" | "M" => Body::Parked(last),
            _ => Body::Inline(serde_json::from_str(last).ok()?),
        };
        Some(Parsed {
            session,
            origin,
            member,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_frame_as_append_lua_writes_it() {
        let chan = "blindrelay:b:{room-1}:n2";
        let frame = Parsed::new(chan, b"n1\nm\nbob\n{\"id\":\"x\"}").expect("a frame");
        assert_eq!(frame.session.as_str(), "room-1");
        assert_eq!(frame.origin, "n1");
        assert_eq!(frame.member.as_ref().map(UserId::as_str), Some("bob"));
        assert!(matches!(frame.body, Body::Inline(m) if m.get() == "{\"id\":\"x\"}"));
        let to_all = Parsed::new(chan, b"n1\ns\n\n{}").expect("a frame");
        assert!(to_all.member.is_none());
        let parked = Parsed::new(chan, b"n1\nM\nbob\nblindrelay:s:{room-1}:p:ab").expect("a frame");
        assert_eq!(parked.member.as_ref().map(UserId::as_str), Some("bob"));
        assert!(matches!(
            parked.body,
            Body::Parked("blindrelay:s:{room-1}:p:ab")
        ));
        assert!(Parsed::new(chan, b"n1\nq\n\n{}").is_none());
        assert!(Parsed::new("other", b"n1\ns\n\n{}").is_none());
    }
}
