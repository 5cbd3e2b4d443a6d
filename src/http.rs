//! HTTP routes: health, reservation, the admin listing and the static web client.

use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    logging::SessionTag,
    protocol::{ChatMode, ObjectOnly, SessionId, now_ms, parse_credential_field},
    state::AppState,
    store::ReserveError,
};

/// Largest body `POST /api/reserve-session` accepts.
pub const RESERVE_BODY_LIMIT: usize = 16 * 1024;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/api/reserve-session",
            post(reserve)
                .layer(axum::extract::DefaultBodyLimit::max(RESERVE_BODY_LIMIT))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::limits::reserve_gate,
                )),
        )
        .route("/sessions", get(sessions))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
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
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.store.summaries().await {
        Ok(list) => Json(json!({ "count": list.len(), "sessions": list })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.error.as_str(), e.message),
    }
}
