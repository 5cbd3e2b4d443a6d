//! Limits that keep one client from hurting the others (SECURITY.md lists them all):
//! per socket (events and bytes per second), per client address (new connections,
//! reservations, failed joins, concurrent connections) and per (address, session)
//! (wrong keys and passwords lock that pair out for a while).
//!
//! Token buckets are `governor`'s GCRA limiters; keyed ones live in a `DashMap` and
//! are swept by [`sweep`] so that addresses seen once do not stay in memory.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use dashmap::DashMap;
use governor::{
    DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, clock::Clock,
    middleware::StateInformationMiddleware,
};

use crate::{
    client_ip,
    config::AbuseLimits,
    protocol::{AppError, ErrorCode, SessionId},
};

pub use crate::telemetry::refused;

/// Why something was refused: the code the client sees, a sentence, and when to retry.
#[derive(Debug, Clone)]
pub struct Refused {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// For the metric `blindrelay_refused_total{kind}`.
    pub kind: &'static str,
}

impl Refused {
    fn rate(kind: &'static str, message: impl Into<String>, retry_after: Duration) -> Self {
        Refused {
            code: ErrorCode::RateLimited,
            message: message.into(),
            retry_after: Some(retry_after),
            kind,
        }
    }

    pub fn into_app_error(self) -> AppError {
        let error = AppError::new(self.code, self.message);
        match self.retry_after {
            Some(wait) => error.retry_after(wait),
            None => error,
        }
    }

    /// Whole seconds to wait, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after
            .map_or(1, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .max(1)
    }
}

/// As Socket.IO's `connect_error` message: the code first, so clients can read it.
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// 429 (or 503 for a full server) with `Retry-After` and `{error, code, retryAfter}`.
impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let secs = self.retry_after_secs();
        let body = serde_json::json!({
            "error": self.message,
            "code": self.code.as_str(),
            "retryAfter": secs,
        });
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A quota of `per` cells per `period`, bursting to `burst`; `None` when `per` is 0.
fn quota(per: u32, period: Duration, burst: u32) -> Option<Quota> {
    let per = NonZeroU32::new(per)?;
    let interval = period / per.get();
    Quota::with_period(interval.max(Duration::from_nanos(1))).map(|q| q.allow_burst(nz(burst)))
}

type Keyed = DefaultKeyedRateLimiter<IpAddr>;

/// Takes one from `ip`'s bucket of `limiter` (none: no limit), or says when to retry.
fn take(
    limiter: Option<&Keyed>,
    ip: IpAddr,
    kind: &'static str,
    message: &'static str,
) -> Result<(), Refused> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(&client_ip::limit_key(ip))
        .map_err(|not_until| {
            Refused::rate(
                kind,
                message,
                not_until.wait_time_from(limiter.clock().now()),
            )
        })
}
type KeyedWithState = governor::RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

/// Strikes of wrong keys or passwords for one session from one address: failed joins
/// and statuses that found the key wrong.
#[derive(Debug, Clone, Copy)]
struct Strikes {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl Strikes {
    /// Whether these strikes are forgotten: the last is older than a lockout, or the
    /// lockout they started is over.
    fn expired(&self, now: Instant, lockout: Duration) -> bool {
        now.duration_since(self.last) > lockout || self.locked_until.is_some_and(|u| u <= now)
    }
}

/// Concurrent connections, in all and per address.
#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
}

/// A connected socket's place under `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_IP`;
/// dropping it (with the socket) gives the place back.
pub struct ConnectionPermit {
    counts: Arc<Counts>,
    key: IpAddr,
}

impl fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPermit").finish_non_exhaustive()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
        if let dashmap::Entry::Occupied(mut e) = self.counts.per_ip.entry(self.key) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// Every per-address limit, shared by the HTTP routes and the sockets.
pub struct Guard {
    limits: AbuseLimits,
    /// Received bytes waiting to be handled, per address and in all.
    pub inflight: Arc<InFlight>,
    /// History sent to sockets and maybe unread, per address and in all.
    pub replay: Arc<InFlight>,
    connects: Option<Keyed>,
    /// Engine.IO handshakes (before any namespace connection): twice `connects`, so that
    /// only transports that never connect a namespace meet it.
    handshakes: Option<Keyed>,
    reserves: Option<Keyed>,
    join_failures: Option<KeyedWithState>,
    /// Addresses refused every join until then (too many failed joins).
    blocked: DashMap<IpAddr, Instant>,
    strikes: DashMap<(IpAddr, SessionId), Strikes>,
    counts: Arc<Counts>,
}

impl Guard {
    pub fn new(limits: &AbuseLimits) -> Self {
        let sec = Duration::from_secs(1);
        Guard {
            connects: quota(limits.ip_connects_per_sec, sec, limits.ip_connects_burst)
                .map(Keyed::keyed),
            handshakes: quota(
                limits.ip_connects_per_sec.saturating_mul(2),
                sec,
                limits.ip_connects_burst.saturating_mul(2),
            )
            .map(Keyed::keyed),
            reserves: quota(limits.ip_reserves_per_sec, sec, limits.ip_reserves_burst)
                .map(Keyed::keyed),
            join_failures: quota(
                limits.ip_join_failures_per_min,
                Duration::from_secs(60),
                limits.ip_join_failures_burst,
            )
            .map(|q| Keyed::keyed(q).with_middleware::<StateInformationMiddleware>()),
            blocked: DashMap::new(),
            strikes: DashMap::new(),
            counts: Arc::default(),
            inflight: Arc::new(InFlight::new(limits)),
            replay: Arc::new(InFlight::replay(limits)),
            limits: limits.clone(),
        }
    }

    pub fn limits(&self) -> &AbuseLimits {
        &self.limits
    }

    /// The client address of a request or a socket's handshake.
    pub fn client_ip(
        &self,
        parts_ext: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> IpAddr {
        let peer = parts_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        client_ip::resolve(peer, headers, &self.limits.trusted_proxies)
    }

    /// Connected sockets, as counted for `MAX_CONNECTIONS`.
    pub fn connections(&self) -> usize {
        self.counts.total.load(Ordering::Relaxed)
    }

    /// Admits a new Socket.IO connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionPermit, Refused> {
        let key = client_ip::limit_key(ip);
        if let Some(limiter) = &self.connects
            && let Err(not_until) = limiter.check_key(&key)
        {
            let wait = not_until.wait_time_from(limiter.clock().now());
            return Err(Refused::rate(
                "ip_connects",
                "Too many new connections from this address; retry later",
                wait,
            ));
        }
        let max = self.limits.max_connections;
        let total = self.counts.total.fetch_add(1, Ordering::Relaxed);
        if max > 0 && total >= max {
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused {
                code: ErrorCode::LimitReached,
                message: "The server holds too many connections; retry later".into(),
                retry_after: Some(Duration::from_secs(5)),
                kind: "max_connections",
            });
        }
        let per_ip_max = self.limits.max_connections_per_ip;
        let mut here = self.counts.per_ip.entry(key).or_insert(0);
        if per_ip_max > 0 && *here >= per_ip_max {
            drop(here);
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::rate(
                "ip_connections",
                "Too many open connections from this address",
                Duration::from_secs(5),
            ));
        }
        *here += 1;
        drop(here);
        Ok(ConnectionPermit {
            counts: self.counts.clone(),
            key,
        })
    }

    /// A new Engine.IO session (a handshake) from `ip`. Each one holds memory until it
    /// connects a namespace or `CONNECT_TIMEOUT_SECS` passes, and the connection caps
    /// count only connected sockets; this bounds how many an address can keep pending.
    pub fn check_handshake(&self, ip: IpAddr) -> Result<(), Refused> {
        take(
            self.handshakes.as_ref(),
            ip,
            "ip_handshakes",
            "Too many new transports from this address; retry later",
        )
    }

    /// Refused while the address's failed-join budget is empty (see [`Guard::probed`]).
    fn check_blocked(&self, key: IpAddr, now: Instant) -> Result<(), Refused> {
        match self.blocked.get(&key).map(|u| *u) {
            Some(until) if until > now => Err(Refused::rate(
                "ip_join_failures",
                "Too many failed joins or probes of session ids from this address; wait and retry",
                until - now,
            )),
            _ => Ok(()),
        }
    }

    /// `POST /api/reserve-session` from `ip`.
    pub fn check_reserve(&self, ip: IpAddr) -> Result<(), Refused> {
        self.check_blocked(client_ip::limit_key(ip), Instant::now())?;
        take(
            self.reserves.as_ref(),
            ip,
            "ip_reserves",
            "Too many reservations from this address; retry later",
        )
    }

    /// Before a join: refused while the address, or the (address, session) pair, is
    /// locked out by failed joins; even with the right key, so keys cannot be guessed.
    pub fn check_join(&self, ip: IpAddr, session: &SessionId) -> Result<(), Refused> {
        let key = client_ip::limit_key(ip);
        let now = Instant::now();
        self.check_blocked(key, now)?;
        if let Some(until) = self
            .strikes
            .get(&(key, session.clone()))
            .and_then(|s| s.locked_until)
            && until > now
        {
            return Err(Refused::rate(
                "session_lockout",
                "Too many wrong keys or passwords for this session; wait and retry",
                until - now,
            ));
        }
        Ok(())
    }

    /// Something that tells an address whether a session id exists, without joining an
    /// existing session: a creator's join that created a session, a reservation of a
    /// taken id. It counts against the same budget as failed joins, so ids cannot be
    /// enumerated faster one way than another.
    pub fn probed(&self, ip: IpAddr) {
        self.count_probe(client_ip::limit_key(ip), Instant::now());
    }

    /// Takes one from the address's failed-join budget; an empty budget blocks it.
    fn count_probe(&self, key: IpAddr, now: Instant) {
        if let Some(limiter) = &self.join_failures {
            let until = match limiter.check_key(&key) {
                Ok(state) if state.remaining_burst_capacity() > 0 => None,
                Ok(state) => Some(now + state.quota().replenish_interval()),
                Err(not_until) => Some(now + not_until.wait_time_from(limiter.clock().now())),
            };
            if let Some(until) = until {
                self.blocked.insert(key, until);
            }
        }
    }

    /// Whether `POST /api/session-status` may check a key for `session` from `ip`: while
    /// the pair has strikes left before a lockout (see [`Guard::key_probe_failed`]).
    /// Beyond that the status answers without checking the key, so a status is no faster
    /// a way of guessing keys than a join.
    pub fn may_check_key(&self, ip: IpAddr, session: &SessionId) -> bool {
        let per_session = self.limits.join_failures_per_session;
        if per_session == 0 {
            return true;
        }
        let key = client_ip::limit_key(ip);
        let now = Instant::now();
        self.strikes
            .get(&(key, session.clone()))
            .is_none_or(|s| s.expired(now, self.limits.join_lockout) || s.count < per_session)
    }

    /// A status found the key or password wrong: a strike for the pair, counted with the
    /// joins' strikes, and one from the address's failed-join budget. Unlike a failed
    /// join it never starts a lockout by itself: opening a mis-copied link is not trying
    /// to join, and must not keep its opener (or anyone behind the same address) out of
    /// the room, nor tell the room that someone was locked out. The next wrong *join*
    /// after the pair's strikes are spent does lock it out.
    pub fn key_probe_failed(&self, ip: IpAddr, session: &SessionId) {
        let key = client_ip::limit_key(ip);
        let now = Instant::now();
        self.count_probe(key, now);
        if self.limits.join_failures_per_session > 0 {
            self.strike(key, session, now);
        }
    }

    /// One more strike for the pair; strikes older than a lockout are forgotten first.
    fn strike(
        &self,
        key: IpAddr,
        session: &SessionId,
        now: Instant,
    ) -> dashmap::mapref::one::RefMut<'_, (IpAddr, SessionId), Strikes> {
        let mut strikes = self
            .strikes
            .entry((key, session.clone()))
            .or_insert(Strikes {
                count: 0,
                last: now,
                locked_until: None,
            });
        if strikes.expired(now, self.limits.join_lockout) {
            strikes.count = 0;
            strikes.locked_until = None;
        }
        strikes.count += 1;
        strikes.last = now;
        strikes
    }

    /// After a join: counts a failure that could be guessing (an unknown session, a
    /// wrong key or password); a success clears the pair's strikes. Returns the lockout
    /// this failure started, if it did.
    pub fn join_result(
        &self,
        ip: IpAddr,
        session: &SessionId,
        outcome: Option<ErrorCode>,
    ) -> Option<Duration> {
        let key = client_ip::limit_key(ip);
        let now = Instant::now();
        let Some(code) = outcome else {
            self.strikes.remove(&(key, session.clone()));
            return None;
        };
        if !matches!(
            code,
            ErrorCode::SessionNotFound | ErrorCode::InvalidKey | ErrorCode::InvalidPassword
        ) {
            return None;
        }
        self.count_probe(key, now);
        let per_session = self.limits.join_failures_per_session;
        if per_session > 0 && matches!(code, ErrorCode::InvalidKey | ErrorCode::InvalidPassword) {
            let lockout = self.limits.join_lockout;
            let mut strikes = self.strike(key, session, now);
            if strikes.count >= per_session {
                strikes.locked_until = Some(now + lockout);
                return Some(lockout);
            }
        }
        None
    }

    /// Forgets what no longer limits anyone (run every minute).
    pub fn sweep(&self) {
        let now = Instant::now();
        let lockout = self.limits.join_lockout;
        self.blocked.retain(|_, until| *until > now);
        self.strikes.retain(|_, s| match s.locked_until {
            Some(until) => until > now,
            None => now.duration_since(s.last) <= lockout,
        });
        for limiter in [&self.connects, &self.handshakes, &self.reserves]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.join_failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.blocked.shrink_to_fit();
        self.strikes.shrink_to_fit();
    }
}

/// Sweeps the guard's tables every minute.
pub async fn sweep(guard: Arc<Guard>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        guard.sweep();
    }
}

/// Axum middleware for `POST /api/reserve-session`: 429 beyond the per-address rate.
pub async fn reserve_gate(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let ip = guard.client_ip(req.extensions(), req.headers());
    match guard.check_reserve(ip) {
        Ok(()) => {
            let response = next.run(req).await;
            // 409 says the id exists: a probe, counted like a failed join.
            if response.status() == StatusCode::CONFLICT {
                guard.probed(ip);
            }
            response
        }
        Err(refusal) => {
            refused(refusal.kind);
            tracing::info!(kind = refusal.kind, "reservation refused");
            refusal.into_response()
        }
    }
}

/// One socket's budget: events per second (beyond it, refused), bytes per second
/// (beyond it, the socket's events wait their turn: paced, not refused), and bytes of
/// received events waiting in its queue (beyond it, refused).
///
/// Pacing instead of refusing bytes: the End2End Chat app sends a 5 MiB photo as a
/// ~19.4 MB event and has no acks, so a refusal would be a photo lost without a word.
/// The queue cap bounds what pacing holds in memory for one socket.
pub struct SocketBudget {
    events: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    byte_burst: u32,
    queued: AtomicUsize,
    max_queued: usize,
    /// The same bytes, counted for the socket's address and the whole process.
    shared: Option<(Arc<InFlight>, IpAddr)>,
}

/// Bytes of received events waiting to be handled, per address and in all: each
/// socket's queue is capped (`SOCKET_QUEUED_BYTES`), and so are the sum of an address's
/// sockets (`INFLIGHT_BYTES_PER_IP`) and of every socket (`INFLIGHT_BYTES_TOTAL`), so
/// many sockets sending large messages at once cannot exhaust memory.
///
/// The same type counts history replayed to sockets that may not have read it yet
/// (`REPLAY_BYTES_*`, see [`InFlight::replay`]).
pub struct InFlight {
    total: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    max_total: usize,
    max_per_ip: usize,
    /// Refusal kinds: over the address's cap, over the total.
    kinds: (&'static str, &'static str),
}

impl InFlight {
    pub fn new(limits: &AbuseLimits) -> Self {
        InFlight {
            total: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            max_total: limits.inflight_bytes_total,
            max_per_ip: limits.inflight_bytes_per_ip,
            kinds: ("ip_inflight_bytes", "inflight_bytes"),
        }
    }

    /// History sent to sockets and maybe not read yet.
    pub fn replay(limits: &AbuseLimits) -> Self {
        InFlight {
            max_total: limits.replay_bytes_total,
            max_per_ip: limits.replay_bytes_per_ip,
            kinds: ("ip_replay_bytes", "replay_bytes"),
            ..Self::new(limits)
        }
    }

    /// Holds `bytes` for `ip` until the returned [`Held`] is dropped, or refuses
    /// (nothing held).
    pub fn hold(self: &Arc<Self>, ip: IpAddr, bytes: usize) -> Result<Held, Refused> {
        self.admit(ip, bytes)?;
        Ok(Held {
            budget: self.clone(),
            ip,
            bytes,
        })
    }

    /// Takes `bytes` for `ip`, or refuses (nothing taken). One event always fits an
    /// empty budget, so no size of event is refused for ever.
    fn admit(&self, ip: IpAddr, bytes: usize) -> Result<(), Refused> {
        let key = client_ip::limit_key(ip);
        let mut here = self.per_ip.entry(key).or_insert(0);
        let over_ip = self.max_per_ip > 0 && *here > 0 && *here + bytes > self.max_per_ip;
        let total = self.total.fetch_add(bytes, Ordering::Relaxed);
        let over_total = self.max_total > 0 && total > 0 && total + bytes > self.max_total;
        if over_ip || over_total {
            self.total.fetch_sub(bytes, Ordering::Relaxed);
            if *here == 0 {
                drop(here);
                self.per_ip.remove_if(&key, |_, n| *n == 0);
            }
            return Err(Refused::rate(
                if over_ip { self.kinds.0 } else { self.kinds.1 },
                "Too many bytes waiting to be handled; retry when earlier messages are answered",
                Duration::from_secs(1),
            ));
        }
        *here += bytes;
        Ok(())
    }

    fn release(&self, ip: IpAddr, bytes: usize) {
        self.total.fetch_sub(bytes, Ordering::Relaxed);
        if let dashmap::Entry::Occupied(mut e) = self.per_ip.entry(client_ip::limit_key(ip)) {
            *e.get_mut() = e.get().saturating_sub(bytes);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// Bytes held in an [`InFlight`] budget, given back when dropped.
pub struct Held {
    budget: Arc<InFlight>,
    ip: IpAddr,
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.release(self.ip, self.bytes);
    }
}

impl SocketBudget {
    pub fn new(limits: &AbuseLimits) -> Self {
        let sec = Duration::from_secs(1);
        SocketBudget {
            events: quota(
                limits.socket_events_per_sec,
                sec,
                limits.socket_events_burst,
            )
            .map(DefaultDirectRateLimiter::direct),
            bytes: quota(limits.socket_bytes_per_sec, sec, limits.socket_bytes_burst)
                .map(DefaultDirectRateLimiter::direct),
            byte_burst: limits.socket_bytes_burst,
            queued: AtomicUsize::new(0),
            max_queued: limits.socket_queued_bytes,
            shared: None,
        }
    }

    /// Counts this socket's bytes in `inflight` too, as coming from `ip`.
    pub fn shared_with(mut self, inflight: Arc<InFlight>, ip: IpAddr) -> Self {
        self.shared = Some((inflight, ip));
        self
    }

    /// Admits one received event of `bytes` into the socket's queue, or says why not.
    /// An admitted event is given back with [`SocketBudget::release`] once handled.
    pub fn admit(&self, bytes: usize) -> Result<(), Refused> {
        if let Some(events) = &self.events
            && let Err(not_until) = events.check()
        {
            return Err(Refused::rate(
                "socket_events",
                "Too many events; slow down",
                not_until.wait_time_from(events.clock().now()),
            ));
        }
        if self.bytes.is_some() && bytes > self.byte_burst as usize {
            return Err(Refused::rate(
                "socket_bytes",
                "This event is larger than this server's byte budget per socket",
                Duration::from_secs(1),
            ));
        }
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.max_queued > 0 && queued > self.max_queued && queued > bytes {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Refused::rate(
                "socket_queued_bytes",
                "Too many bytes waiting to be handled; retry when earlier events are answered",
                Duration::from_secs(1),
            ));
        }
        if let Some((inflight, ip)) = &self.shared
            && let Err(refusal) = inflight.admit(*ip, bytes)
        {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            return Err(refusal);
        }
        Ok(())
    }

    /// Waits until the byte rate lets an admitted event of `bytes` be handled.
    pub async fn pace(&self, bytes: usize) {
        if let Some(limiter) = &self.bytes {
            let n = nz(u32::try_from(bytes).unwrap_or(u32::MAX));
            // More than the burst was refused by `admit`.
            let _ = limiter.until_n_ready(n).await;
        }
    }

    /// An admitted event was handled (or dropped): its bytes leave the queue.
    pub fn release(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        if let Some((inflight, ip)) = &self.shared {
            inflight.release(*ip, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AbuseLimits {
        AbuseLimits {
            ip_join_failures_per_min: 1,
            ip_join_failures_burst: 3,
            join_failures_per_session: 2,
            join_lockout: Duration::from_secs(60),
            max_connections: 3,
            max_connections_per_ip: 2,
            ip_connects_per_sec: 0,
            ..AbuseLimits::defaults(1 << 20)
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wrong_keys_lock_the_pair_out_but_not_other_sessions_or_addresses() {
        let g = Guard::new(&AbuseLimits {
            ip_join_failures_per_min: 0,
            ..limits()
        });
        let s1 = SessionId::parse("s1").unwrap();
        let s2 = SessionId::parse("s2").unwrap();
        let a = ip("192.0.2.1");
        g.join_result(a, &s1, Some(ErrorCode::InvalidKey));
        assert!(g.check_join(a, &s1).is_ok());
        g.join_result(a, &s1, Some(ErrorCode::InvalidPassword));
        let refused = g.check_join(a, &s1).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert!(refused.retry_after_secs() > 50);
        assert!(g.check_join(a, &s2).is_ok());
        assert!(g.check_join(ip("192.0.2.2"), &s1).is_ok());
        // Other failures are no guess at the key.
        g.join_result(a, &s2, Some(ErrorCode::SessionFull));
        g.join_result(a, &s2, Some(ErrorCode::SessionFull));
        assert!(g.check_join(a, &s2).is_ok());
    }

    #[test]
    fn a_status_with_a_wrong_key_never_locks_out_and_stops_checking_keys_when_strikes_are_spent() {
        let g = Guard::new(&AbuseLimits {
            ip_join_failures_per_min: 0,
            join_failures_per_session: 3,
            ..limits()
        });
        let s = SessionId::parse("s1").unwrap();
        let a = ip("192.0.2.1");
        // A mis-copied link opened over and over: never a lockout.
        for i in 0..3 {
            assert!(g.may_check_key(a, &s), "status {i}");
            g.key_probe_failed(a, &s);
            assert!(g.check_join(a, &s).is_ok(), "status {i} locked nobody out");
        }
        // Its strikes spent, the status no longer checks keys (no faster an oracle than
        // joins), and the right key still joins; that clears the strikes.
        assert!(!g.may_check_key(a, &s));
        assert!(g.check_join(a, &s).is_ok());
        assert_eq!(g.join_result(a, &s, None), None);
        assert!(g.may_check_key(a, &s));
        // Statuses and joins share the strikes: the next wrong join once they are spent
        // locks the pair out.
        for _ in 0..3 {
            g.key_probe_failed(a, &s);
        }
        assert!(
            g.join_result(a, &s, Some(ErrorCode::InvalidKey)).is_some(),
            "a wrong join locks out"
        );
        assert_eq!(g.check_join(a, &s).unwrap_err().kind, "session_lockout");
        // Other addresses are not affected.
        assert!(g.may_check_key(ip("192.0.2.2"), &s));
    }

    #[test]
    fn failed_joins_beyond_the_burst_block_the_address() {
        let g = Guard::new(&limits());
        let a = ip("192.0.2.1");
        for i in 0..3 {
            let s = SessionId::parse(&format!("x{i}")).unwrap();
            assert!(g.check_join(a, &s).is_ok(), "attempt {i}");
            g.join_result(a, &s, Some(ErrorCode::SessionNotFound));
        }
        let s = SessionId::parse("other").unwrap();
        assert_eq!(g.check_join(a, &s).unwrap_err().kind, "ip_join_failures");
        assert!(g.check_join(ip("192.0.2.9"), &s).is_ok());
    }

    #[test]
    fn connection_caps_count_permits_until_dropped() {
        let g = Guard::new(&limits());
        let a = ip("192.0.2.1");
        let p1 = g.admit(a).unwrap();
        let _p2 = g.admit(a).unwrap();
        assert_eq!(g.admit(a).unwrap_err().kind, "ip_connections");
        let _p3 = g.admit(ip("192.0.2.2")).unwrap();
        let full = g.admit(ip("192.0.2.3")).unwrap_err();
        assert_eq!(full.code, ErrorCode::LimitReached);
        assert!(full.to_string().starts_with("LIMIT_REACHED"));
        drop(p1);
        assert_eq!(g.connections(), 2);
        assert!(g.admit(a).is_ok());
    }

    #[test]
    fn a_socket_budget_refuses_events_and_queued_bytes_beyond_their_caps() {
        let b = SocketBudget::new(&AbuseLimits {
            socket_events_per_sec: 1,
            socket_events_burst: 4,
            socket_bytes_per_sec: 10,
            socket_bytes_burst: 1000,
            socket_queued_bytes: 900,
            ..limits()
        });
        assert!(b.admit(400).is_ok());
        assert!(b.admit(400).is_ok());
        assert_eq!(b.admit(400).unwrap_err().kind, "socket_queued_bytes");
        b.release(400);
        assert!(b.admit(400).is_ok(), "released bytes make room");
        assert_eq!(b.admit(1).unwrap_err().kind, "socket_events");
        let big = SocketBudget::new(&AbuseLimits {
            socket_bytes_burst: 1000,
            ..limits()
        });
        assert_eq!(big.admit(1001).unwrap_err().kind, "socket_bytes");
    }

    #[tokio::test]
    async fn bytes_beyond_the_burst_are_paced_not_refused() {
        let b = SocketBudget::new(&AbuseLimits {
            socket_bytes_per_sec: 10_000,
            socket_bytes_burst: 1000,
            ..limits()
        });
        let started = std::time::Instant::now();
        b.pace(1000).await;
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "the burst passes at once"
        );
        b.pace(500).await;
        // 500 bytes at 10,000 bytes/s: about 50 ms later.
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "{:?}",
            started.elapsed()
        );
    }
}
