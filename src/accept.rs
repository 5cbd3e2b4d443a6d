//! Accepting HTTP connections, with what `axum::serve` lacks: a deadline on request
//! headers (which also closes idle keep-alive connections), and staying up when file
//! descriptors run out.
//!
//! A client that opens connections and sends headers slowly, or nothing, would otherwise
//! hold a descriptor each for as long as it likes; with `HEADER_READ_TIMEOUT` it holds
//! one for seconds, and at most [`MAX_PENDING`] connections without a first request are
//! held at all (the oldest is shed for a new one), so such clients cannot take every
//! descriptor. When `accept` fails for want of descriptors anyway, a spare one kept for the purpose is given up, so the waiting connection can
//! be accepted and closed at once (the client sees a refusal instead of hanging in the
//! backlog), and the loop goes on.

use std::{
    collections::VecDeque,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::connect_info::IntoMakeServiceWithConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Notify};
use tower::{Service, ServiceExt};

use crate::paced_io::ReadPace;

/// How long a client may take to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` completes (the app keeps serving while it
/// runs), then stops accepting and returns once every open connection has ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    pace: ReadPace,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let mut make: IntoMakeServiceWithConnectInfo<Router, SocketAddr> =
        app.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut spare = Spare::new();
    let pending = Pending::default();
    tokio::pin!(stop);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    spare.on_accept_error(&listener, &e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Small messages must leave at once, not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let (settled, close) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
        pending.push(settled.clone(), close.clone());
        let Ok(service) = make.call(remote).await;
        let first_request = settled.clone();
        let tcp = pace.wrap(tcp);
        // Every request carries its connection's watch: the Engine.IO session made or
        // upgraded by it judges liveness by the bytes the connection moves.
        let watch = tcp.watch().clone();
        let service = service.map_request(move |mut req: hyper::Request<Incoming>| {
            first_request.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(watch.clone());
            req.map(axum::body::Body::new)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                // Shed before its first request (dropping the connection closes it).
                () = close.notified(), if !settled.load(Ordering::Relaxed) => {}
            }
            settled.store(true, Ordering::Relaxed);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Connections that have not sent a whole request yet: beyond [`MAX_PENDING`], the
/// oldest is closed to make room. An honest client sends its request within
/// milliseconds of connecting; one that trickles headers or sends nothing is who pays.
#[derive(Default, Clone)]
struct Pending(std::sync::Arc<std::sync::Mutex<VecDeque<PendingConn>>>);

/// Connections held before their first request, at most.
const MAX_PENDING: usize = 256;

struct PendingConn {
    /// Set by the first request, or when the connection ends.
    settled: Arc<AtomicBool>,
    close: Arc<Notify>,
}

impl Pending {
    /// Registers a new connection; closes the oldest unsettled ones beyond the cap.
    fn push(&self, settled: Arc<AtomicBool>, close: Arc<Notify>) {
        let Ok(mut queue) = self.0.lock() else {
            return;
        };
        queue.retain(|c| !c.settled.load(Ordering::Relaxed));
        queue.push_back(PendingConn { settled, close });
        while queue.len() > MAX_PENDING {
            if let Some(oldest) = queue.pop_front() {
                crate::telemetry::refused("http_pending_shed");
                // Stored if the task is not waiting yet: it closes as soon as it looks.
                oldest.close.notify_one();
            }
        }
    }
}

/// A descriptor held back for when the process runs out of them.
struct Spare(Option<std::fs::File>);

impl Spare {
    fn new() -> Self {
        Spare(std::fs::File::open("/dev/null").ok())
    }

    async fn on_accept_error(&mut self, listener: &TcpListener, e: &std::io::Error) {
        let out_of_descriptors = matches!(e.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
        if !out_of_descriptors {
            // Per-connection errors (a client that reset before accept): go on.
            return;
        }
        crate::telemetry::refused("fd_exhausted");
        tracing::warn!(error = %e, "out of file descriptors: refusing a connection to stay up");
        // Free the spare, take the waiting connection and close it: it is refused at
        // once instead of waiting in the backlog.
        self.0 = None;
        if let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
        // Let connections finish (their header deadline frees descriptors), then
        // take the spare back.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0 = std::fs::File::open("/dev/null").ok();
    }
}
