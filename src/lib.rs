//! blindrelay: a zero-knowledge Socket.IO relay for ephemeral end-to-end-encrypted chat.
//!
//! Clients swap public keys through the server and exchange ciphertexts it relays but
//! cannot read. Rooms live in memory and vanish after `SESSION_TTL_SECS` without activity.
//!
//! Layout:
//! - [`config`]: settings from the environment;
//! - [`protocol`]: identifiers, payloads both ways, error codes;
//! - [`store`]: the sessions and the rules inside them;
//! - [`socket`]: Socket.IO connections and one handler per event;
//! - [`http`]: health, reservation, admin listing;
//! - [`reaper`]: deletes expired sessions;
//! - [`serve`]: puts them together on a listener.

pub mod config;
pub mod http;
pub mod logging;
pub mod protocol;
pub mod reaper;
pub mod secret;
pub mod socket;
pub mod state;
pub mod store;

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::http::{HeaderValue, Method, Request};
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowHeaders, AllowOrigin, CorsLayer},
    services::ServeDir,
    trace::TraceLayer,
};

pub use config::Config;
pub use state::AppState;

/// How long a shutdown may wait for connections to close before it returns anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves blindrelay on `listener` until `shutdown` completes, then closes every socket
/// and returns within [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(config.clone());
    let (socket_layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(60))
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        .build_layer();
    socket::register(&io, state.clone());

    let app = http::routes(state.clone())
        .fallback_service(ServeDir::new(&config.static_dir))
        .layer(socket_layer)
        .layer(cors(&config))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // The path only: query strings carry Engine.IO session ids.
                tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
            }),
        );

    let reaper = tokio::spawn(reaper::run(state.clone(), config.reaper_interval));
    let addr = listener.local_addr()?;
    tracing::info!(
        "blindrelay {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );

    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: closing every socket");
        let _ = stopping_tx.send(());
        io.close().await;
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
    let deadline = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        r = server.into_future() => r,
        () = deadline => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
            Ok(())
        }
    };
    reaper.abort();
    tracing::info!("stopped");
    result
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
