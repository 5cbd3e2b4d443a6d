//! Several nodes on one Redis or one Redis Cluster (`REDIS_URL`; see
//! [`redis_link`](crate::redis_link)).
//!
//! - Broadcasts go through socketioxide-redis, over [`PubSub`]: a pub/sub driver on a
//!   [`Link`] that reconnects and resubscribes after Redis restarts or fails over
//!   (the adapter's own driver keeps one connection that never comes back). On a
//!   cluster it uses sharded pub/sub.
//! - Session state lives in the [`RedisStore`](crate::store::RedisStore).
//! - Each node holds a lease (`<prefix>{g}node:<id>`, renewed every third of
//!   `NODE_LEASE_SECS`) and lists the connections it bound (`<prefix>{g}n:<id>:c`);
//!   the registry's keys share the `{g}` slot, so its pipelines stay on one shard. When
//!   a lease lapses (the node was killed), the first node to notice claims the dead
//!   node and unbinds its connections, so the others hear `user-left`. A node that
//!   finds its own lease claimed (it was cut off from Redis too long) closes its
//!   sockets: their clients reconnect and join again.
//! - While this node's pub/sub link is down, store operations answer `UNAVAILABLE`
//!   (a change stored but not broadcast would reach nobody). When the link returns,
//!   every local socket is sent its sessions' keys and history again, since
//!   broadcasts published meanwhile never arrived.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use redis::{AsyncCommands, PushInfo, PushKind, Value};
use socketioxide::{SocketIo, adapter::Adapter};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::{
    config::Config,
    protocol::SessionId,
    redis_link::{Link, Topology},
    state::AppState,
    store::Store,
};

/// socketioxide-redis' adapter over [`PubSub`].
pub type ClusterAdapter =
    socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, PubSub>;

/// How long a start waits for Redis before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections a node needs, made at start (a failure stops the start).
pub struct Cluster {
    pub commands: Link,
    pub pubsub: PubSub,
    pub node: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis at REDIS_URL: {0}")]
pub struct ConnectError(String);

impl Cluster {
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        // The error text may quote the URL, which may hold a password: only its kind.
        let connect = async {
            let topology = Topology::detect(url).await?;
            let commands = topology.commands().await?;
            let pubsub = PubSub::new(&topology).await?;
            Ok::<_, redis::RedisError>((commands, pubsub))
        };
        let (mut commands, pubsub) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ConnectError(format!("no answer within {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| match e.kind() {
                // Its detail may quote the URL.
                redis::ErrorKind::InvalidClientConfig => {
                    ConnectError(format!("invalid URL ({:?})", e.kind()))
                }
                _ => ConnectError(e.to_string()),
            })?;
        let _: String = redis::cmd("PING")
            .query_async(&mut commands)
            .await
            .map_err(|e| ConnectError(format!("PING failed: {:?}", e.kind())))?;
        let node = format!("{:016x}", crate::logging::random_u64()).into();
        Ok(Cluster {
            commands,
            pubsub,
            node,
        })
    }
}

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// Whether the pub/sub link is up. It goes down when the connection drops or a
/// command on it fails, and up again when a PING answers (after resubscribing).
#[derive(Clone, Default)]
pub struct BusHealth(Arc<AtomicBool>);

impl BusHealth {
    pub fn is_up(&self) -> bool {
        !self.0.load(Ordering::Relaxed)
    }

    fn set_down(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Marks it up; true when it was down (broadcasts may have been missed).
    fn set_up(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// A socketioxide-redis [`Driver`] on a reconnecting, resubscribing connection. On a
/// cluster it uses sharded pub/sub: each channel lives on the shard of its slot.
#[derive(Clone)]
pub struct PubSub {
    conn: Link,
    handlers: Handlers,
    pub health: BusHealth,
    /// On a cluster: a fingerprint of which node serves which slots, as last seen.
    slots_seen: Arc<std::sync::atomic::AtomicU64>,
}

impl PubSub {
    async fn new(topology: &Topology) -> Result<Self, redis::RedisError> {
        let handlers: Handlers = Arc::default();
        let health = BusHealth::default();
        let (routes, down) = (handlers.clone(), health.clone());
        let conn = topology
            .pubsub(Box::new(move |push: PushInfo| {
                if push.kind == PushKind::Disconnection {
                    down.set_down();
                }
                route(push, &routes, &down);
            }))
            .await?;
        Ok(PubSub {
            conn,
            handlers,
            health,
            slots_seen: Arc::default(),
        })
    }
}

impl PubSub {
    /// A PING on the subscribed connection: after Redis comes back, the connection
    /// manager reconnects (and resubscribes) on the next command, and a node that only
    /// receives broadcasts might otherwise send none for a long time.
    /// True when the link just came back: this node may have missed broadcasts.
    ///
    /// On a cluster a failover moves slots to another node, and the cluster client may
    /// come back from it without its sharded subscriptions (seen here: all of them gone,
    /// on the shards that did not fail too), which a node that only listens cannot
    /// notice. So when the slot map changed or the link was down, this node subscribes
    /// again to every channel it reads before it calls the link up.
    async fn keepalive(&self) -> bool {
        let cmd = redis::cmd("PING");
        if cmd
            .query_async::<Value>(&mut self.conn.clone())
            .await
            .is_err()
        {
            self.health.set_down();
            return false;
        }
        if self.conn.is_cluster() {
            match self.slot_map().await {
                Some(seen) => {
                    let before = self.slots_seen.swap(seen, Ordering::Relaxed);
                    if before != 0 && before != seen {
                        self.health.set_down();
                    }
                }
                None => {
                    self.health.set_down();
                    return false;
                }
            }
            if !self.health.is_up() && !self.resubscribe_all().await {
                return false;
            }
        }
        self.health.set_up()
    }

    /// A fingerprint of `CLUSTER SLOTS`: the slot ranges and the node serving each.
    async fn slot_map(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let slots: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut self.conn.clone())
            .await
            .ok()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for range in slots {
            let Value::Array(items) = range else { continue };
            // start, end, then the primary's [host, port, id, ...].
            for item in items.into_iter().take(3) {
                format!("{item:?}").hash(&mut hasher);
            }
        }
        Some(hasher.finish())
    }

    /// Subscribes again to every channel in `handlers` (a no-op for one still held).
    async fn resubscribe_all(&self) -> bool {
        let Link::Cluster(conn) = &self.conn else {
            return true;
        };
        let channels: Vec<String> = match self.handlers.read() {
            Ok(h) => h.keys().cloned().collect(),
            Err(_) => return false,
        };
        for chan in channels {
            if let Err(e) = conn.clone().ssubscribe(&chan).await {
                tracing::warn!(error = %e, "cannot subscribe again after a failover; retrying at the next keepalive");
                return false;
            }
        }
        true
    }
}

/// Hands a pushed pub/sub message to the stream subscribed to its channel.
///
/// A full stream cannot slow Redis down (it would cut a subscriber that reads too
/// slowly), so the broadcast is not delivered live. It is not lost: the link is marked
/// down, so this node refuses new operations with the retryable `UNAVAILABLE` (the
/// backpressure) until its next keepalive, which then sends every local client its
/// sessions' keys and history again, where the message is.
fn route(push: PushInfo, handlers: &Handlers, health: &BusHealth) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(Value::BulkString(chan)), Some(Value::BulkString(message))) =
        (data.next(), data.next())
    else {
        return;
    };
    let Ok(chan) = String::from_utf8(chan) else {
        return;
    };
    let Ok(handlers) = handlers.read() else {
        return;
    };
    if let Some(tx) = handlers.get(&chan)
        && tx.try_send((chan, message)).is_err()
        && health.is_up()
    {
        health.set_down();
        metrics::counter!(crate::telemetry::BUS_OVERFLOWS_TOTAL).increment(1);
        tracing::warn!(
            "Redis pub/sub backlog full: refusing new operations until it drains, then resending history to local clients"
        );
    }
}

impl PubSub {
    /// Subscribes to `chan` (sharded on a cluster); its messages go to `tx`.
    pub async fn subscribe_with(
        &self,
        chan: String,
        tx: mpsc::Sender<ChanItem>,
    ) -> Result<(), redis::RedisError> {
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.insert(chan.clone(), tx);
        }
        let subscribed = match self.conn.clone() {
            Link::One(mut c) => c.subscribe(&chan).await,
            Link::Cluster(mut c) => c.ssubscribe(&chan).await,
        };
        if subscribed.is_err()
            && let Ok(mut handlers) = self.handlers.write()
        {
            handlers.remove(&chan);
        }
        subscribed
    }

    pub async fn unsubscribe_from(&self, chan: String) -> Result<(), redis::RedisError> {
        if let Ok(mut handlers) = self.handlers.write() {
            handlers.remove(&chan);
        }
        match self.conn.clone() {
            Link::One(mut c) => c.unsubscribe(chan).await,
            Link::Cluster(mut c) => c.sunsubscribe(chan).await,
        }
    }
}

impl Driver for PubSub {
    type Error = redis::RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        let sent = match self.conn.clone() {
            Link::One(mut c) => c.publish::<_, _, Value>(chan, val).await,
            Link::Cluster(mut c) => c.spublish::<_, _, Value>(chan, val).await,
        };
        if sent.is_err() {
            self.health.set_down();
        }
        sent.map(|_| ())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.subscribe_with(chan, tx).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.unsubscribe_from(chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let sharded = self.conn.is_cluster();
        let reply: Value = redis::cmd("PUBSUB")
            .arg(if sharded { "SHARDNUMSUB" } else { "NUMSUB" })
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(subscriber_count(reply))
    }
}

/// The count in a `PUBSUB NUMSUB`/`SHARDNUMSUB` reply for one channel: a flat
/// `[channel, count]` from one server, a map (combined over nodes) from a cluster.
fn subscriber_count(reply: Value) -> u16 {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(items) => {
            let mut it = items.into_iter();
            std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect()
        }
        Value::Map(pairs) => pairs,
        _ => return 0,
    };
    pairs
        .into_iter()
        .map(|(_, count)| match count {
            Value::Int(n) => u16::try_from(n).unwrap_or(u16::MAX),
            _ => 0,
        })
        .fold(0u16, u16::saturating_add)
}

/// Keys of the node registry.
struct Keys {
    nodes: String,
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let prefix = crate::store::global_prefix(prefix);
        Keys {
            nodes: format!("{prefix}nodes"),
            prefix,
        }
    }

    fn lease(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }
    fn conns(&self, node: &str) -> String {
        format!("{}n:{node}:c", self.prefix)
    }
}

/// Renews this node's lease and sweeps dead nodes, until the process stops.
pub async fn run_lease<A: Adapter>(
    state: AppState,
    io: SocketIo<A>,
    mut conn: Link,
    pubsub: PubSub,
    config: Config,
) {
    let Store::Redis(store) = &state.store else {
        return;
    };
    let node = store.node().to_owned();
    let keys = Keys::new(&config.redis_prefix);
    let lease_ms = config.node_lease.as_millis() as u64;
    // At least every second: the pub/sub link's PING also tells when it is back.
    let mut tick = tokio::time::interval((config.node_lease / 3).min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    // Since when renewals have succeeded without a break. After an outage every lease
    // may have lapsed; a node sweeps only once the others have had a full lease period
    // to renew theirs, so that no live node is taken for dead.
    let mut healthy_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        // Failures show in the keepalive below; the last offset stays meanwhile.
        let _ = store.sync_clock().await;
        if pubsub.keepalive().await {
            tracing::warn!(
                "Redis pub/sub is back; sending keys and history to local clients again"
            );
            crate::socket::resync_all(&io).await;
        }
        match renew(&mut conn, &keys, &node, lease_ms, registered).await {
            Ok(Renewal::Renewed) => registered = true,
            Ok(Renewal::Lost) => {
                tracing::warn!(
                    "this node's lease was claimed while Redis was out of reach; closing its sockets so clients join again"
                );
                io.local().disconnect().await.ok();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew this node's lease");
                healthy_since = None;
                continue;
            }
        }
        let since = *healthy_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < config.node_lease {
            continue;
        }
        if let Err(e) = sweep(&state, &io, &mut conn, &keys, &node).await {
            tracing::warn!(error = %e, "cannot sweep dead nodes");
        }
    }
}

enum Renewal {
    Renewed,
    /// Another node claimed ours as dead: its bindings are gone.
    Lost,
}

async fn renew(
    conn: &mut Link,
    keys: &Keys,
    node: &str,
    lease_ms: u64,
    registered: bool,
) -> redis::RedisResult<Renewal> {
    let (added,): (u32,) = redis::pipe()
        .cmd("SET")
        .arg(keys.lease(node))
        .arg(1)
        .arg("PX")
        .arg(lease_ms)
        .ignore()
        .sadd(&keys.nodes, node)
        .query_async(conn)
        .await?;
    Ok(if registered && added == 1 {
        Renewal::Lost
    } else {
        Renewal::Renewed
    })
}

/// Claims every node whose lease lapsed and unbinds its connections.
async fn sweep<A: Adapter>(
    state: &AppState,
    io: &SocketIo<A>,
    conn: &mut Link,
    keys: &Keys,
    me: &str,
) -> redis::RedisResult<()> {
    let Store::Redis(store) = &state.store else {
        return Ok(());
    };
    let nodes: Vec<String> = conn.smembers(&keys.nodes).await?;
    for dead in nodes.iter().filter(|n| n.as_str() != me) {
        let alive: bool = conn.exists(keys.lease(dead)).await?;
        // SREM answers 1 to one node only: the claim.
        if alive || conn.srem::<_, _, u32>(&keys.nodes, dead).await? == 0 {
            continue;
        }
        let entries: Vec<String> = conn.smembers(keys.conns(dead)).await?;
        tracing::warn!(
            node = dead,
            connections = entries.len(),
            "a node's lease lapsed; dropping its members"
        );
        for entry in &entries {
            let Some((session, sid)) = entry.split_once('|') else {
                continue;
            };
            let Ok(session) = SessionId::parse(session) else {
                continue;
            };
            match store.disconnect_on(&session, sid, dead).await {
                Ok(Some(left)) => {
                    crate::socket::announce_left(|room| io.to(room), &session, &left).await;
                }
                Ok(None) => {}
                Err(_) => {
                    // Put the claim back: the next sweep, here or elsewhere, retries.
                    let _: u32 = conn.sadd(&keys.nodes, dead).await?;
                    return Ok(());
                }
            }
        }
        let _: u32 = conn.del(keys.conns(dead)).await?;
    }
    Ok(())
}

/// At shutdown, after every local socket left: this node leaves the registry.
pub async fn deregister(mut conn: Link, config: &Config, node: &str) {
    let keys = Keys::new(&config.redis_prefix);
    let result: redis::RedisResult<()> = redis::pipe()
        .srem(&keys.nodes, node)
        .ignore()
        .del(keys.lease(node))
        .ignore()
        .del(keys.conns(node))
        .ignore()
        .query_async(&mut conn)
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot leave the node registry; others will sweep this node when its lease lapses");
    }
}
