//! The connections to Redis: one server, or a Redis Cluster, found from the same
//! `REDIS_URL`.
//!
//! `REDIS_URL` names one server, or any node of a cluster, or several seeds separated by
//! commas. At start the first seed that answers is asked `INFO cluster`: with
//! `cluster_enabled:1` the node discovers the cluster from the seeds and follows its
//! slot moves and failovers (redis' cluster client); otherwise it talks to that one
//! server through a reconnecting connection manager. Everything above this module sees
//! one [`Link`] and asks [`Link::is_cluster`] only where the two differ: which keys a
//! script may touch (see `store/redis/lua/common.lua`) and sharded pub/sub.

use std::time::Duration;

use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, PushInfo,
    RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
};

/// How long a connection attempt, and a command on the pub/sub link, may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The outer bound of a command on the command link. The store gives each call its own,
/// shorter deadline, which grows with what it sends (a 5 MiB message on a busy machine
/// takes seconds to reach Redis); see `store/redis`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// A command connection, to one server or to a cluster; cheap to clone (both are
/// multiplexed handles).
#[derive(Clone)]
pub enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Link {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Link::Cluster(_))
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::One(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::One(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::One(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Where `REDIS_URL` leads: its seeds, and whether they form a cluster.
pub struct Topology {
    seeds: Vec<String>,
    /// On a cluster: every node it had at start, with the seed's credentials. The
    /// cluster client only ever reconnects through its initial nodes, so a deployment
    /// whose one seed died (failed over) would otherwise never find the cluster again.
    nodes: Vec<ConnectionInfo>,
    cluster: bool,
}

/// Handles pushed pub/sub messages and disconnections.
pub type PushHandler = Box<dyn Fn(PushInfo) + Send + Sync>;

impl Topology {
    /// Asks the seeds of `urls` (comma-separated) whether they form a cluster.
    pub async fn detect(urls: &str) -> Result<Self, redis::RedisError> {
        let seeds: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(resp3)
            .collect();
        let mut last = None;
        for seed in &seeds {
            match cluster_nodes(seed).await {
                Ok(nodes) => {
                    return Ok(Topology {
                        cluster: nodes.is_some(),
                        nodes: nodes.unwrap_or_default(),
                        seeds: seeds.clone(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no URL given"))
        }))
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A connection for commands.
    pub async fn commands(&self) -> Result<Link, redis::RedisError> {
        if self.cluster {
            let client = self.cluster_builder(COMMAND_TIMEOUT).build()?;
            Ok(Link::Cluster(client.get_async_connection().await?))
        } else {
            let client = Client::open(self.seeds[0].as_str())?;
            Ok(Link::One(
                ConnectionManager::new_with_config(client, manager_config(COMMAND_TIMEOUT)).await?,
            ))
        }
    }

    /// A connection for pub/sub whose pushes (messages, and the connection's drops) go
    /// to `on_push`; it resubscribes by itself after a reconnection or a failover.
    pub async fn pubsub(&self, on_push: PushHandler) -> Result<Link, redis::RedisError> {
        let sender = move |push: PushInfo| {
            on_push(push);
            Ok::<(), std::convert::Infallible>(())
        };
        if self.cluster {
            let client = self
                .cluster_builder(RESPONSE_TIMEOUT)
                .push_sender(sender)
                .build()?;
            Ok(Link::Cluster(client.get_async_connection().await?))
        } else {
            let client = Client::open(self.seeds[0].as_str())?;
            let config = manager_config(RESPONSE_TIMEOUT)
                .set_automatic_resubscription()
                .set_push_sender(sender);
            Ok(Link::One(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }

    fn cluster_builder(&self, timeout: Duration) -> ClusterClientBuilder {
        let mut initial: Vec<ConnectionInfo> = self
            .seeds
            .iter()
            .filter_map(|s| s.as_str().into_connection_info().ok())
            .collect();
        initial.extend(self.nodes.iter().cloned());
        ClusterClientBuilder::new(initial)
            .use_protocol(redis::ProtocolVersion::RESP3)
            .connection_timeout(RESPONSE_TIMEOUT)
            .response_timeout(timeout)
            // A failover takes the cluster's node timeout and an election: retries
            // follow MOVED and reconnections within that bound, then the operation
            // answers UNAVAILABLE (its fence keeps a late run from changing anything).
            .overall_response_timeout(Some(timeout))
            .retries(6)
            .min_retry_wait(50)
            .max_retry_wait(500)
    }
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
        .set_max_delay(RESPONSE_TIMEOUT)
}

/// The URL with `protocol=resp3`, which pub/sub pushes need.
fn resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// `None` if the server at `url` is not in cluster mode; else every node of its cluster
/// (primaries and replicas, from `CLUSTER SLOTS`), reached with `url`'s credentials.
async fn cluster_nodes(url: &str) -> Result<Option<Vec<ConnectionInfo>>, redis::RedisError> {
    let info = url.into_connection_info()?;
    let client = Client::open(info.clone())?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(RESPONSE_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
        )
        .await?;
    let text: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    if !text.lines().any(|l| l.trim() == "cluster_enabled:1") {
        return Ok(None);
    }
    // Each slot range: [start, end, [host, port, ...], [host, port, ...] ...].
    let slots: Vec<Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let mut nodes: Vec<ConnectionInfo> = Vec::new();
    for range in slots {
        let Value::Array(items) = range else { continue };
        for node in items.into_iter().skip(2) {
            let Value::Array(fields) = node else { continue };
            let mut fields = fields.into_iter();
            let (Some(host), Some(Value::Int(port))) = (fields.next(), fields.next()) else {
                continue;
            };
            let host = match host {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                _ => continue,
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            let addr = match info.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host, port),
            };
            let node = info.clone().set_addr(addr);
            if !nodes.iter().any(|n| n.addr() == node.addr()) {
                nodes.push(node);
            }
        }
    }
    Ok(Some(nodes))
}
