//! HTTP routes: health, reservation, the admin listing and the static web client, with
//! the headers every answer carries (security policy, caching) and compression.

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
};

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use tower_http::{
    compression::CompressionLayer, services::ServeDir, set_header::SetResponseHeaderLayer,
};

use crate::{
    logging::SessionTag,
    protocol::{ChatMode, ErrorCode, ObjectOnly, SessionId, now_ms, parse_credential_field},
    state::AppState,
    store::ReserveError,
};

/// Largest body `POST /api/reserve-session` accepts.
pub const RESERVE_BODY_LIMIT: usize = 16 * 1024;

/// The policy the web client runs under: scripts, styles and connections from the page's
/// own origin only, no inline script, no framing, no referrer, no form posts. One
/// injected script would read every room's keys; this keeps it from running.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
    font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

/// The page records voice notes (the microphone, its own origin only, and only after
/// the person allows it); it needs no camera or location: no script may ask for them.
pub const PERMISSIONS_POLICY: &str = "camera=(), microphone=(self), geolocation=()";

/// Headers on every answer: the policy above, no MIME sniffing, no referrer, no framing,
/// and a browsing context of its own (no `window.opener` from or to other sites).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", PERMISSIONS_POLICY),
];

/// Adds [`SECURITY_HEADERS`] to every response of `router` that does not set them itself.
/// [`routes`] applies it; applied again around the whole app (Socket.IO included), it
/// covers the rest without doubling any header.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    SECURITY_HEADERS
        .iter()
        .fold(router, |router, &(name, value)| {
            router.layer(SetResponseHeaderLayer::if_not_present(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ))
        })
}

/// The HTTP routes and, at every other path, the files of `STATIC_DIR`, all with
/// [`SECURITY_HEADERS`] and compressed (gzip or brotli) when the client accepts it.
/// Socket.IO is not in here: its layer wraps this router and answers `/socket.io`
/// before it, so its polling bodies are never compressed by this layer.
pub fn routes(state: AppState) -> Router {
    let files = static_files(state.config.static_dir.clone());
    let api = Router::new()
        .route("/health", get(health))
        .route(
            "/api/reserve-session",
            post(reserve)
                .layer(axum::extract::DefaultBodyLimit::max(RESERVE_BODY_LIMIT))
                .layer(axum::middleware::from_fn_with_state(
                    state.guard.clone(),
                    crate::limits::reserve_gate,
                )),
        )
        .route(
            "/api/session-status",
            post(session_status).layer(axum::extract::DefaultBodyLimit::max(RESERVE_BODY_LIMIT)),
        )
        .route("/sessions", get(sessions))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        // Live figures and one-off answers: never from a cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let app = api
        // Catch-all routes rather than a fallback: the layers below apply to them, and
        // the exact routes above still win.
        .route_service("/", files.clone())
        .route_service("/{*path}", files)
        .with_state(state)
        .layer(CompressionLayer::new());
    with_security_headers(app)
}

/// The web client: `STATIC_DIR`'s files with `Last-Modified` (a 304 for an unchanged
/// file) and `Cache-Control: no-cache`, so a browser keeps its copy but asks each time:
/// the page has no build step and no hashed file names, so a changed file must show up
/// at the next load, never after a cache lifetime. Unknown paths get [`not_found`].
fn static_files(
    dir: PathBuf,
) -> tower_http::set_header::SetResponseHeader<
    ServeDir<tower_http::set_status::SetStatus<NotFound>>,
    HeaderValue,
> {
    use tower::Layer;
    let files = ServeDir::new(&dir).not_found_service(NotFound(dir));
    SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    )
    .layer(files)
}

/// The answer for a path with no file: `STATIC_DIR/404.html` when there is one, else a
/// page of ours that says what happened and where to go (never a bare status).
#[derive(Clone)]
struct NotFound(PathBuf);

impl<B: Send + 'static> tower::Service<axum::http::Request<B>> for NotFound {
    type Response = Response;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::http::Request<B>) -> Self::Future {
        let dir = self.0.clone();
        Box::pin(async move { Ok(not_found(&dir).await) })
    }
}

/// The not-found page (status 404; `ServeDir` sets it for its fallback, and the admin
/// route answers the same page so that it cannot be told from a path that is not there).
async fn not_found(dir: &Path) -> Response {
    if let Ok(page) = tokio::fs::read(dir.join("404.html")).await {
        let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
        return (StatusCode::NOT_FOUND, html, page).into_response();
    }
    let installed = tokio::fs::metadata(dir.join("index.html")).await.is_ok();
    let body = if installed {
        "<h1>Page not found</h1>\n<p>There is nothing at this address. Room links look like \
         <code>/#…</code>: check that the whole link was copied.</p>\n\
         <p><a href=\"/\">Open the start page</a> to create a room.</p>"
    } else {
        "<h1>No web page here</h1>\n<p>This blindrelay server runs without its web client \
         (its <code>STATIC_DIR</code> folder is missing), so there is no page to open. \
         Apps that speak its Socket.IO protocol still work.</p>"
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Not found · blindrelay</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    );
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

/// Liveness: 200 while the process serves. Session counts are `null` while Redis is
/// unreachable (that is `/ready`'s business, not a reason to restart the process).
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let stats = state.store.stats().await.ok();
    Json(json!({
        "status": "ok",
        "uptime": state.started.elapsed().as_secs_f64(),
        "sessions": stats.map(|s| s.sessions),
        "activeSessions": stats.map(|s| s.active),
        "connections": state.connection_count(),
        "timestamp": now_ms(),
    }))
}

/// For load balancers: 200 while this node can serve, 503 while it drains or cannot
/// reach Redis.
async fn ready(State(state): State<AppState>) -> Response {
    let reason = if state.is_draining() {
        Some("draining")
    } else if !state.store.ping().await {
        Some("redis unreachable")
    } else {
        None
    };
    if let Some(reason) = reason {
        let body = Json(json!({ "ready": false, "reason": reason }));
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    Json(json!({ "ready": true })).into_response()
}

/// Prometheus text format; requires `Authorization: Bearer $METRICS_TOKEN` when that is set.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.config.metrics_token
        && !bearer_matches(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response();
    }
    let content_type = [(
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )];
    (content_type, crate::telemetry::render(&state).await).into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
fn bearer_matches(headers: &HeaderMap, token: &crate::secret::Secret) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| token.matches(given.trim()))
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": message.into(), "code": code })),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    /// As in `join-session`: `"<id>"`, `"<id>:<key>"` or `"<id>:password:<digest>"`.
    session_id: Option<String>,
    auth_key: Option<String>,
}

/// `POST /api/session-status`: whether a link still leads to a room, before its page
/// asks for a name: `{status: "open", chatMode, credentialChecked}`, `{status: "gone",
/// code}` or `{status: "refused", code, error}` with the code a join would get
/// (`SESSION_NOT_FOUND`, `SESSION_EXPIRED`, `INVALID_KEY`, ...), without joining, under
/// the same lockouts. Every answer that is not a credential admitted counts against the
/// address's failed-join budget: no faster an oracle of ids than a join. Opening a link
/// is not a join attempt, so a wrong key here never starts a lockout (nor tells the
/// room of one); it takes one of the (address, session) pair's strikes, shared with
/// joins, and once they are spent the key is no longer checked (`credentialChecked:
/// false`): no faster an oracle of keys than a join either.
async fn session_status(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<ObjectOnly<StatusBody>>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(ObjectOnly(body))) => body,
        Err(rejection) => return error(rejection.status(), "BAD_REQUEST", rejection.body_text()),
    };
    let link = match body
        .session_id
        .as_deref()
        .map(crate::protocol::SessionRef::parse)
    {
        Some(Ok(link)) => link,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e),
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "sessionId is required",
            );
        }
    };
    let credential = match body.auth_key.filter(|k| !k.is_empty()) {
        Some(k) => match parse_credential_field(&k) {
            Ok(k) => Some(k),
            Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e),
        },
        None => link.credential,
    };
    let ip = crate::client_ip::resolve(Some(peer), &headers, &state.guard.limits().trusted_proxies);
    let guard = &state.guard;
    if let Err(refusal) = guard.check_join(ip, &link.id) {
        crate::limits::refused(refusal.kind);
        return refusal.into_response();
    }
    let credential = credential.filter(|_| guard.may_check_key(ip, &link.id));
    match state.store.status(&link.id, credential.as_ref()).await {
        Ok((mode, checked)) => {
            if checked {
                guard.join_result(ip, &link.id, None);
            } else {
                guard.probed(ip);
            }
            Json(json!({ "status": "open", "chatMode": mode, "credentialChecked": checked }))
                .into_response()
        }
        Err(e) if e.error == ErrorCode::Unavailable => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.error.as_str(), e.message)
        }
        // An answer, not a failure of the request: 200, so a page's console stays clean.
        Err(e) => {
            if matches!(e.error, ErrorCode::InvalidKey | ErrorCode::InvalidPassword) {
                guard.key_probe_failed(ip, &link.id);
            } else {
                guard.join_result(ip, &link.id, Some(e.error));
            }
            let gone = matches!(
                e.error,
                ErrorCode::SessionNotFound | ErrorCode::SessionExpired
            );
            Json(json!({
                "status": if gone { "gone" } else { "refused" },
                "code": e.error,
                "error": e.message,
            }))
            .into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveBody {
    session_id: Option<String>,
    auth_key: Option<String>,
    chat_mode: Option<ChatMode>,
}

async fn reserve(
    State(state): State<AppState>,
    body: Result<Json<ObjectOnly<ReserveBody>>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(ObjectOnly(body))) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("The body is larger than {RESERVE_BODY_LIMIT} bytes"),
            );
        }
        // Wrong types, not an object, not JSON: 400, as the original answers bad bodies.
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                rejection.body_text(),
            );
        }
    };
    let (Some(id), Some(key)) = (body.session_id, body.auth_key.filter(|k| !k.is_empty())) else {
        return error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "sessionId and authKey are required",
        );
    };
    let id = match SessionId::parse(&id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e),
    };
    let key = match parse_credential_field(&key) {
        Ok(key) => key,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", e),
    };
    let mode = body.chat_mode.unwrap_or_default();
    match state.store.reserve(id.clone(), key, mode).await {
        Ok(()) => {
            tracing::debug!(session = %SessionTag::of(&id), ?mode, "reserved");
            Json(json!({
                "success": true,
                "sessionId": id,
                "chatMode": mode,
                "message": "Session reserved",
            }))
            .into_response()
        }
        Err(ReserveError::Exists) => error(
            StatusCode::CONFLICT,
            "SESSION_EXISTS",
            "Session already exists",
        ),
        Err(ReserveError::LimitReached) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "LIMIT_REACHED",
            "The server holds too many sessions",
        ),
        Err(ReserveError::Unavailable) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The server cannot reach its shared state; try again shortly",
        ),
    }
}

/// The admin listing. Without `ADMIN_TOKEN`, or with a wrong bearer, the route does
/// not exist (404): the original leaked every live session id to anyone.
async fn sessions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let authorised =
        (state.config.admin_token.as_ref()).is_some_and(|t| bearer_matches(&headers, t));
    if !authorised {
        return not_found(&state.config.static_dir).await;
    }
    match state.store.summaries().await {
        Ok(list) => Json(json!({ "count": list.len(), "sessions": list })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.error.as_str(), e.message),
    }
}
