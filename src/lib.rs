//! blindrelay: a zero-knowledge Socket.IO relay for ephemeral end-to-end-encrypted chat.
//!
//! Clients swap public keys through the server and exchange ciphertexts it relays but
//! cannot read. Rooms live in memory (or in Redis, shared by several nodes) and vanish
//! after `SESSION_TTL_SECS` without activity.
//!
//! Layout, from the wire inwards (each module's own doc says why it is built so):
//! - [`config`]: settings from the environment; [`cli`]: the command line; [`secret`]:
//!   credentials that never reach a log or a reply;
//! - [`protocol`]: identifiers, the client events (declared once), payloads both ways,
//!   error codes, display names, binary attachments, who gets which copy of a message;
//! - `accept` and `paced_io`: accepting TCP connections, header deadlines, and every
//!   connection's bytes paced and bounded both ways;
//! - [`limits`]: per-socket, per-address and per-session budgets; [`client_ip`]: which
//!   address a request comes from;
//! - [`socket`]: Socket.IO connections: admission (`guard`), a queue per socket
//!   (`queue`), one handler per event (`handlers`), where their notices go (`tell`), history
//!   replay (`replay`), rooms;
//! - [`http`]: health, readiness, reservation, status, metrics, the static web client;
//! - [`state`]: what the routes and handlers share;
//! - [`store`]: the sessions and the rules inside them, in memory (`store::memory`) or
//!   in Redis (`store::redis`, with its scripts);
//! - [`redis_link`]: the connections to one Redis or a Redis Cluster; [`cluster`]: node
//!   leases and the pub/sub driver under socketioxide-redis; [`bus`]: each session's
//!   messages between nodes;
//! - [`reaper`]: deletes expired sessions; [`telemetry`]: Prometheus metrics;
//!   [`logging`]: log setup and the hashed tags logs use instead of ids;
//! - [`serve`]: puts them together on a listener.
//!
//! No module imports another that imports it back, directly or around a circle.

mod accept;
pub mod bus;
pub mod cli;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod http;
pub mod limits;
pub mod logging;
mod paced_io;
pub mod protocol;
pub mod reaper;
pub mod redis_link;
pub mod secret;
pub mod socket;
pub mod state;
pub mod store;
pub mod telemetry;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::http::{HeaderValue, Method, Request, header};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    trace::{self, TraceLayer},
};

pub use config::Config;
pub use state::AppState;

/// What `server-shutdown` suggests clients wait before reconnecting (to another node).
const RECONNECT_HINT_MS: u64 = 1000;

/// Serves blindrelay on `listener` until `shutdown` completes, then drains: `/ready`
/// fails, new connections are refused, clients get `server-shutdown {reconnectInMs}` and
/// their transports are closed (so socket.io-client reconnects, through the load
/// balancer, to another node), and it returns within `SHUTDOWN_GRACE_SECS`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    telemetry::handle();
    let builder = SocketIo::builder()
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        // A transport that never connects the namespace is closed after this.
        .connect_timeout(config.abuse.connect_timeout)
        // Packets waiting for a slow reader; a full buffer gets it disconnected.
        .max_buffer_size(config.abuse.max_buffered_packets)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES);
    let Some(url) = &config.redis_url else {
        let (store, snapshots) = store::snapshot::open_memory_store(&config);
        let state = AppState::with_store(config.clone(), store::Store::Memory(store));
        let (layer, io) = builder.build_layer();
        socket::register(&io, state.clone());
        let backing = Backing::Memory(snapshots.map(Arc::new));
        return run(listener, config, state, layer, io, backing, shutdown).await;
    };
    // `Config::from_lookup` refuses REDIS_URL without it; a Config built in code may not.
    let Some(digest_key) = &config.store_digest_key else {
        return Err(std::io::Error::other(
            "STORE_DIGEST_KEY is required with REDIS_URL",
        ));
    };
    let cluster = cluster::Cluster::connect(url.expose())
        .await
        .map_err(std::io::Error::other)?;
    let (bus, frames) = bus::SessionBus::new(
        cluster.pubsub.clone(),
        &config.redis_prefix,
        cluster.node.clone(),
    );
    let store = store::RedisStore::new(
        cluster.commands.clone(),
        cluster.pubsub.health.clone(),
        &config.redis_prefix,
        cluster.node.clone(),
        store::StoreLimits::from(&config),
        store::DigestKey::new(digest_key),
    )
    .with_bus(std::sync::Arc::new(bus));
    store
        .sync_clock()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot read Redis's clock: {e}")))?;
    let state = AppState::with_store(config.clone(), store::Store::Redis(Box::new(store)));
    let adapter = socketioxide_redis::RedisAdapterCtr::new_with_driver(
        cluster.pubsub.clone(),
        socketioxide_redis::RedisAdapterConfig::new()
            .with_prefix(format!("{}socket.io", config.redis_prefix))
            // Broadcasts received and not yet handed to local sockets (default 1024):
            // room for bursts, since a full backlog pauses this node (see `cluster::route`).
            .with_stream_buffer(16 * 1024),
    );
    let (layer, io) = builder
        .with_adapter::<cluster::ClusterAdapter>(adapter)
        .build_layer();
    socket::register(&io, state.clone())
        .await
        .map_err(|e| std::io::Error::other(format!("cannot subscribe to Redis: {e}")))?;
    tokio::spawn(bus::deliver(
        io.clone(),
        cluster.node.clone(),
        config.redis_prefix.as_str().into(),
        cluster.commands.clone(),
        frames,
    ));
    tracing::info!(node = %cluster.node, "sharing sessions through Redis");
    let backing = Backing::Redis(cluster);
    run(listener, config, state, layer, io, backing, shutdown).await
}

/// What keeps the sessions beyond this process: its snapshots (in memory), or Redis.
enum Backing {
    Memory(Option<Arc<store::snapshot::Snapshots>>),
    Redis(cluster::Cluster),
}

/// Each WebSocket's read buffer while it reads small frames (engineioxide's default is
/// 4 KiB). tungstenite zero-fills the whole buffer, so every connection holds all of it
/// in RSS; a larger frame grows the buffer to its announced length, so a small one costs
/// large messages nothing but an extra read. 1 KiB: 2.7 KiB less per idle connection
/// (23.9 against 26.7 KiB at 10,000 held), saturation CPU within the run-to-run noise.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// WebSocket pings a client may send per 10 s before its connection is closed. Browsers
/// send none; other clients' keep-alives send one every few seconds.
const WS_PINGS_PER_WINDOW: u32 = 20;

/// Serves with either adapter: local, or Redis when `cluster` is set.
async fn run<A: socketioxide::adapter::Adapter>(
    listener: TcpListener,
    config: Config,
    state: AppState,
    socket_layer: socketioxide::layer::SocketIoLayer<A>,
    io: SocketIo<A>,
    backing: Backing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (cluster, snapshots) = match backing {
        Backing::Memory(snapshots) => (None, snapshots),
        Backing::Redis(cluster) => (Some(cluster), None),
    };
    let grace = config.shutdown_grace;
    let app = http::routes(state.clone())
        .layer(socket_layer)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            handshake_gate,
        ))
        .layer(cors(&config))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // The path only: query strings carry Engine.IO session ids.
                    tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
                })
                // Our 5xx are answers, not faults (503 while draining or while Redis is
                // away, said once by the code that knows why): at the default ERROR, each
                // request would be a log line any client could multiply.
                .on_failure(trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        );
    // Around everything, Socket.IO's answers and CORS preflights included.
    let app = http::with_security_headers(app);

    let reaper = tokio::spawn(reaper::run(state.clone(), config.reaper_interval));
    let sweeper = tokio::spawn(limits::sweep(state.guard.clone()));
    let upkeep = tokio::spawn(telemetry::run_upkeep());
    let snapshotting = snapshots.clone().map(|s| {
        tokio::spawn(store::snapshot::run(
            state.clone(),
            s,
            config.snapshot_interval,
        ))
    });
    let addr = listener.local_addr()?;
    tracing::info!(
        "blindrelay {} listening on {addr}",
        env!("CARGO_PKG_VERSION")
    );

    let lease = cluster.as_ref().map(|c| {
        tokio::spawn(cluster::run_lease(
            state.clone(),
            io.clone(),
            c.commands.clone(),
            c.pubsub.clone(),
            config.clone(),
        ))
    });
    // Stopped when the drain starts: before the namespace closes (the task emits through
    // it) and before the node leaves the registry (its next renewal would rejoin it).
    let lease_abort = lease.as_ref().map(tokio::task::JoinHandle::abort_handle);

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let draining = state.clone();
    let drain_snapshots = snapshots.clone();
    let graceful = async move {
        shutdown.await;
        draining.start_draining();
        let _ = stopping_tx.send(());
        tracing::info!(
            connections = draining.connection_count(),
            "draining: telling clients, closing sockets"
        );
        // Before the namespace closes: the lease task emits and renews through it.
        if let Some(lease) = &lease_abort {
            lease.abort();
        }
        // This node's clients only: with Redis, `io.emit` would reach every node's.
        let notice = serde_json::json!({ "reconnectInMs": RECONNECT_HINT_MS });
        let _ = io.local().emit("server-shutdown", &notice).await;
        socket::disconnect_all(&io).await;
        io.close().await;
        if let Some(c) = &cluster {
            cluster::deregister(c.commands.clone(), &draining.config, &c.node).await;
        }
        // Every socket is closed: the rooms are written now, before the linger, so a
        // supervisor that kills at its own deadline (Docker's 10 s) finds them written.
        if let Some(s) = drain_snapshots {
            store::snapshot::write_logged(draining.clone(), s, "at stop").await;
        }
        // Keep answering (/ready 503, handshakes 503) a moment, so load balancers see it.
        tokio::time::sleep(drain_linger(grace)).await;
    };

    let pace = paced_io::ReadPace::new(
        config.abuse.conn_read_bytes_per_sec,
        config.abuse.read_bytes_per_sec,
        config.ping_timeout,
        engineioxide::watch::WatchLimits {
            min_bytes_per_sec: u64::from(config.abuse.min_progress_bytes_per_sec),
            max_queued_bytes: match config.abuse.socket_outgoing_bytes {
                0 => usize::MAX,
                n => n,
            },
            max_ws_pings: WS_PINGS_PER_WINDOW,
        },
    );
    let server = accept::serve(listener, app, pace, graceful);
    let deadline = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        () = server => Ok(()),
        () = deadline => {
            tracing::warn!("connections still open after {grace:?}; exiting anyway");
            Ok(())
        }
    };
    reaper.abort();
    if let Some(lease) = lease {
        lease.abort();
    }
    sweeper.abort();
    upkeep.abort();
    if let Some(task) = snapshotting {
        task.abort();
    }
    // Again if anything changed since the drain's write (a reservation meanwhile), or if
    // the drain did not get that far before its deadline.
    if let Some(snapshots) = snapshots
        && let store::Store::Memory(memory) = &state.store
        && snapshots.is_stale(memory)
    {
        store::snapshot::write_logged(state.clone(), snapshots, "at exit").await;
    }
    tracing::info!("stopped");
    result
}

/// Binds `addr` with a listen backlog of 4096 (tokio's `bind` asks for 128, which drops
/// connection attempts when hundreds of clients reconnect at once).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// How long a draining node keeps answering after closing its sockets: 2 s, or half
/// the grace period when that is shorter.
fn drain_linger(grace: Duration) -> Duration {
    (grace / 2).min(Duration::from_secs(2))
}

/// New Engine.IO sessions (handshakes carry no `sid`): while draining, refused with 503,
/// so load balancers and clients go elsewhere (established ones finish); beyond the
/// address's handshake budget, 429.
async fn handshake_gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let is_handshake = req.uri().path().starts_with("/socket.io")
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("sid=")));
    if !is_handshake {
        return next.run(req).await;
    }
    if state.is_draining() {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    let ip = state.guard.client_ip(req.extensions(), req.headers());
    if let Err(refusal) = state.guard.check_handshake(ip) {
        limits::refused(refusal.kind);
        return refusal.into_response();
    }
    next.run(detach_head(req)).await
}

/// The request with its URI and headers copied out of the connection's read buffer.
///
/// engineioxide keeps a session's request head (`socket.req_parts()`) as long as the
/// session lives, and hyper parses the head into slices of the connection's HTTP read
/// buffer (16 KiB), so keeping the head kept the whole buffer: 16 KiB of every
/// connection's memory for a few hundred bytes of headers. axum's `OriginalUri`
/// extension is such a slice too. Cookies and authorization headers are left out.
fn detach_head(req: axum::extract::Request) -> axum::extract::Request {
    use axum::extract::OriginalUri;
    let (mut head, body) = req.into_parts();
    let copy = |uri: &axum::http::Uri| uri.to_string().parse().ok();
    if let Some(uri) = copy(&head.uri) {
        head.uri = uri;
    }
    if let Some(uri) = head
        .extensions
        .get::<OriginalUri>()
        .and_then(|o| copy(&o.0))
    {
        head.extensions.insert(OriginalUri(uri));
    }
    let mut headers = axum::http::HeaderMap::with_capacity(head.headers.len());
    for (name, value) in &head.headers {
        // Credentials of the site the page came from (same-origin deployments send its
        // cookies here): nothing of Socket.IO reads them, so no session keeps them.
        if [
            header::COOKIE,
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
        ]
        .contains(name)
        {
            continue;
        }
        let (Ok(name), Ok(mut copy)) = (
            axum::http::HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue; // cannot happen: both were parsed from the same bytes
        };
        copy.set_sensitive(value.is_sensitive());
        headers.append(name, copy);
    }
    head.headers = headers;
    axum::extract::Request::from_parts(head, body)
}

/// CORS from `CLIENT_URL`, on every route and on Socket.IO polling alike.
fn cors(config: &Config) -> CorsLayer {
    let origin = match &config.client_origins {
        config::AllowedOrigins::Any => AllowOrigin::mirror_request(),
        config::AllowedOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_keeps_copies_of_its_head_and_no_credentials() {
        // One buffer holding every value, as hyper parses them.
        let buffer =
            bytes::Bytes::from_static(b"/socket.io/?EIO=4&transport=websocket 203.0.113.7 a=b");
        let value = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(buffer.slice(range)).expect("a header value")
        };
        let mut req = axum::extract::Request::new(axum::body::Body::empty());
        *req.uri_mut() = axum::http::Uri::from_maybe_shared(buffer.slice(0..37)).expect("a URI");
        req.headers_mut().insert("x-forwarded-for", value(38..49));
        req.headers_mut().insert(header::COOKIE, value(50..53));
        req.headers_mut()
            .insert(header::AUTHORIZATION, value(50..53));
        let in_buffer = |p: *const u8| buffer.as_ptr_range().contains(&p);

        let req = detach_head(req);
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert!(!in_buffer(req.uri().path().as_ptr()));
        let xff = &req.headers()["x-forwarded-for"];
        assert_eq!(xff, "203.0.113.7");
        assert!(!in_buffer(xff.as_bytes().as_ptr()));
        assert!(req.headers().get(header::COOKIE).is_none());
        assert!(req.headers().get(header::AUTHORIZATION).is_none());
    }
}
