//! Settings, read once at start from the environment (and `.env`, loaded by `main`).
//!
//! Every setting has a default so that `blindrelay` runs with no setup; a value that does
//! not parse stops the start with an error naming the variable.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use crate::secret::Secret;

/// Which origins may call the HTTP routes and Socket.IO polling from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `CLIENT_URL=*`: any origin (credentials still allowed: the origin is mirrored).
    Any,
    /// Exact origins such as `http://localhost:5173`.
    List(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The whole runtime configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub client_origins: AllowedOrigins,
    /// An empty session (or a reservation never joined) is deleted after this long without activity.
    pub session_ttl: Duration,
    /// The same for a session nobody but its creator ever joined and where nothing was
    /// sent: abandoned or made in bulk, it should not hold a slot for `session_ttl`.
    pub unused_session_ttl: Duration,
    pub reaper_interval: Duration,
    /// Largest Socket.IO packet a client may send (and the polling body limit).
    pub max_payload_bytes: usize,
    pub history_max_messages: usize,
    pub history_max_bytes: usize,
    pub max_sessions: usize,
    pub max_group_members: usize,
    /// Enables `GET /sessions` when set.
    pub admin_token: Option<Secret>,
    /// When set, `GET /metrics` requires it as a bearer token.
    pub metrics_token: Option<Secret>,
    /// How long a graceful shutdown (SIGTERM) may take.
    pub shutdown_grace: Duration,
    /// Engine.IO heartbeat: the server pings every `ping_interval` and drops a
    /// connection whose pong has not come `ping_timeout` later, unless it kept moving
    /// bytes at `min_progress_bytes_per_sec` meanwhile (clients adopt both). So a
    /// connection that died without a word is gone within their sum, and the reconnect
    /// of a member that holds no resume token waits that long at most for its old one.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// A member whose last connection dropped is announced as gone only if it is not
    /// back within this; back within it, it is not announced as joined either.
    pub presence_grace: Duration,
    pub debug: bool,
    pub log_format: LogFormat,
    pub static_dir: PathBuf,
    /// Sessions and broadcasts go through this Redis when set; in memory otherwise.
    /// Kept as a secret: the URL may carry a password.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    pub redis_prefix: String,
    /// Key of the HMAC under which credentials are stored in Redis, so a copy of Redis
    /// alone cannot be searched for passwords. Required with `redis_url`; the same on
    /// every node.
    pub store_digest_key: Option<Secret>,
    /// With Redis: how long a node that stopped renewing its lease keeps its members.
    pub node_lease: Duration,
    /// In memory: the folder of the snapshot that carries rooms across a restart, and
    /// of its digest key (see `store::snapshot`); `None` keeps nothing. `DATA_DIR`,
    /// default `data` (`off` for none); a `Config` built in code keeps nothing.
    pub data_dir: Option<PathBuf>,
    /// In memory: how often the snapshot is written besides at a graceful stop, the
    /// most a crash can lose; zero writes it only at the stop.
    pub snapshot_interval: Duration,
    /// Limits against abuse (see SECURITY.md); a rate or cap of 0 turns it off.
    pub abuse: AbuseLimits,
}

/// The limits that keep one client from hurting the others (issue #7). Rates are a
/// sustained rate with a burst (a token bucket); a rate of 0 turns that limit off.
#[derive(Debug, Clone)]
pub struct AbuseLimits {
    /// Events one socket may send per second, and in a burst.
    pub socket_events_per_sec: u32,
    pub socket_events_burst: u32,
    /// Bytes of events one socket may send per second, and in a burst (the largest
    /// single event that can pass); events beyond the rate are delayed, not refused.
    pub socket_bytes_per_sec: u32,
    pub socket_bytes_burst: u32,
    /// Bytes of received events one socket may have waiting to be handled (events beyond
    /// the byte rate wait, they are not refused); beyond it events are refused.
    pub socket_queued_bytes: usize,
    /// The same, over all sockets of one address, and over all sockets.
    pub inflight_bytes_per_ip: usize,
    pub inflight_bytes_total: usize,
    /// Bytes of history sent to the sockets of one address, and to all sockets, that
    /// may still be unread (counted for a heartbeat round after each join); beyond
    /// them a join's history waits.
    pub replay_bytes_per_ip: usize,
    pub replay_bytes_total: usize,
    /// Bytes read from one connection, and from all, per second: what arrives faster
    /// waits in the kernel (TCP slows the sender), so half-read messages stay few.
    pub conn_read_bytes_per_sec: u32,
    pub read_bytes_per_sec: u32,
    /// The progress that proves a connection alive: one that moves at least this many
    /// bytes a second (either way) keeps its session while its pong is late (queued
    /// behind a long upload, or its ping behind a long download), and writes waiting on
    /// a client must move this much per `PING_TIMEOUT_SECS`. 0: only pongs count, and a
    /// write that moves nothing for `PING_TIMEOUT_SECS` fails.
    pub min_progress_bytes_per_sec: u32,
    /// Bytes of packets waiting to be written to one socket; beyond it the socket is cut
    /// off as a reader too slow for what it is sent (as with `max_buffered_packets`).
    /// 0: no cap but the packet count.
    pub socket_outgoing_bytes: usize,
    /// New Socket.IO connections per client address, per second and in a burst.
    pub ip_connects_per_sec: u32,
    pub ip_connects_burst: u32,
    /// `POST /api/reserve-session` per client address, per second and in a burst.
    pub ip_reserves_per_sec: u32,
    pub ip_reserves_burst: u32,
    /// Failed joins (unknown session, wrong key or password) per client address, per
    /// minute and in a burst; beyond them every join from that address is refused.
    pub ip_join_failures_per_min: u32,
    pub ip_join_failures_burst: u32,
    /// Wrong keys or passwords for one session from one address before that pair is
    /// locked out for `join_lockout`.
    pub join_failures_per_session: u32,
    pub join_lockout: Duration,
    /// Connected sockets at most, in all and per client address.
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Bytes of history of all sessions together; beyond it the largest histories
    /// lose their oldest messages first.
    pub history_total_max_bytes: usize,
    /// A socket that has joined no session after this long is disconnected.
    pub join_timeout: Duration,
    /// An Engine.IO connection that has not connected the Socket.IO namespace after
    /// this long is closed.
    pub connect_timeout: Duration,
    /// Packets waiting to be written to one socket; a socket whose buffer is full is
    /// disconnected (a reader too slow for what it is sent).
    pub max_buffered_packets: usize,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies, load balancers).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AbuseLimits {
    /// The defaults; `max_payload_bytes` sizes the byte burst, so one largest
    /// allowed message (a 5 MiB file, base64 in one message) always passes.
    pub fn defaults(max_payload_bytes: usize) -> Self {
        AbuseLimits {
            socket_events_per_sec: 30,
            socket_events_burst: 200,
            // Two of the largest events at once (the End2End Chat app sends a 5 MiB
            // photo as ~19.4 MB, and people send a few back to back), then 4 MiB/s.
            socket_bytes_per_sec: 4 * 1024 * 1024,
            socket_bytes_burst: u32::try_from(max_payload_bytes.saturating_mul(2))
                .unwrap_or(u32::MAX),
            socket_queued_bytes: max_payload_bytes.saturating_mul(3),
            // Sized for a 1 GiB node: each queued byte costs a few more while relayed.
            inflight_bytes_per_ip: 128 * 1024 * 1024,
            inflight_bytes_total: 256 * 1024 * 1024,
            replay_bytes_per_ip: 64 * 1024 * 1024,
            replay_bytes_total: 128 * 1024 * 1024,
            conn_read_bytes_per_sec: 0,
            read_bytes_per_sec: 32 * 1024 * 1024,
            min_progress_bytes_per_sec: 4096,
            socket_outgoing_bytes: max_payload_bytes.saturating_mul(2),
            ip_connects_per_sec: 10,
            ip_connects_burst: 100,
            ip_reserves_per_sec: 2,
            ip_reserves_burst: 30,
            ip_join_failures_per_min: 30,
            ip_join_failures_burst: 30,
            join_failures_per_session: 5,
            join_lockout: Duration::from_secs(300),
            max_connections: 20_000,
            max_connections_per_ip: 256,
            history_total_max_bytes: 256 * 1024 * 1024,
            join_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            max_buffered_packets: 512,
            trusted_proxies: Vec::new(),
        }
    }

    /// No limit at all but the timeouts and the buffer (for benchmarks and tests).
    pub fn off() -> Self {
        AbuseLimits {
            socket_events_per_sec: 0,
            socket_bytes_per_sec: 0,
            socket_queued_bytes: 0,
            inflight_bytes_per_ip: 0,
            inflight_bytes_total: 0,
            replay_bytes_per_ip: 0,
            replay_bytes_total: 0,
            conn_read_bytes_per_sec: 0,
            read_bytes_per_sec: 0,
            socket_outgoing_bytes: 0,
            ip_connects_per_sec: 0,
            ip_reserves_per_sec: 0,
            ip_join_failures_per_min: 0,
            join_failures_per_session: 0,
            max_connections: 0,
            max_connections_per_ip: 0,
            history_total_max_bytes: 0,
            ..Self::defaults(u32::MAX as usize)
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3001,
            client_origins: AllowedOrigins::List(vec!["http://localhost:5173".into()]),
            session_ttl: Duration::from_secs(1800),
            unused_session_ttl: Duration::from_secs(300),
            reaper_interval: Duration::from_secs(60),
            max_payload_bytes: 20 * 1024 * 1024,
            history_max_messages: 500,
            history_max_bytes: 32 * 1024 * 1024,
            max_sessions: 100_000,
            max_group_members: 64,
            admin_token: None,
            metrics_token: None,
            shutdown_grace: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            // The End2End Chat app retries after ~1, 3, 8, 13, 18 s (±50 %): covers them.
            presence_grace: Duration::from_secs(20),
            debug: false,
            log_format: LogFormat::Pretty,
            static_dir: PathBuf::from("static"),
            redis_url: None,
            redis_prefix: "blindrelay:".into(),
            store_digest_key: None,
            node_lease: Duration::from_secs(15),
            data_dir: None,
            snapshot_interval: Duration::from_secs(30),
            abuse: AbuseLimits::defaults(20 * 1024 * 1024),
        }
    }
}

impl Config {
    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let d = Config::default();
        let duration = |var: &'static str, default: Duration| secs(get(var), var, default);
        let config = Config {
            host: match get("HOST") {
                None => d.host,
                Some(v) => resolve_host(&v)?,
            },
            port: parse_or(get("PORT"), "PORT", d.port)?,
            client_origins: match get("CLIENT_URL") {
                None => d.client_origins,
                Some(v) => parse_origins(&v)?,
            },
            session_ttl: duration("SESSION_TTL_SECS", d.session_ttl)?,
            unused_session_ttl: duration("UNUSED_SESSION_TTL_SECS", d.unused_session_ttl)?,
            reaper_interval: duration("REAPER_INTERVAL_SECS", d.reaper_interval)?,
            max_payload_bytes: positive(
                get("MAX_PAYLOAD_BYTES"),
                "MAX_PAYLOAD_BYTES",
                d.max_payload_bytes,
            )?,
            history_max_messages: positive(
                get("HISTORY_MAX_MESSAGES"),
                "HISTORY_MAX_MESSAGES",
                d.history_max_messages,
            )?,
            history_max_bytes: positive(
                get("HISTORY_MAX_BYTES"),
                "HISTORY_MAX_BYTES",
                d.history_max_bytes,
            )?,
            max_sessions: positive(get("MAX_SESSIONS"), "MAX_SESSIONS", d.max_sessions)?,
            max_group_members: positive(
                get("MAX_GROUP_MEMBERS"),
                "MAX_GROUP_MEMBERS",
                d.max_group_members,
            )?,
            admin_token: get("ADMIN_TOKEN").map(Secret::from),
            metrics_token: get("METRICS_TOKEN").map(Secret::from),
            shutdown_grace: duration("SHUTDOWN_GRACE_SECS", d.shutdown_grace)?,
            ping_interval: duration("PING_INTERVAL_SECS", d.ping_interval)?,
            ping_timeout: duration("PING_TIMEOUT_SECS", d.ping_timeout)?,
            presence_grace: duration("PRESENCE_GRACE_SECS", d.presence_grace)?,
            debug: match get("DEBUG") {
                None => d.debug,
                Some(v) => parse_bool(&v).ok_or_else(|| ConfigError {
                    var: "DEBUG",
                    reason: format!("expected {DEBUG_VALUES}, got {v:?}"),
                })?,
            },
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError {
                        var: "LOG_FORMAT",
                        reason: format!("expected pretty or json, got {other:?}"),
                    });
                }
            },
            static_dir: get("STATIC_DIR").map(PathBuf::from).unwrap_or(d.static_dir),
            redis_url: match get("REDIS_URL") {
                None => None,
                Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => {
                    Some(Secret::from(v))
                }
                Some(_) => {
                    return Err(ConfigError {
                        var: "REDIS_URL",
                        reason: "expected a redis:// or rediss:// URL".into(),
                    });
                }
            },
            redis_prefix: match get("REDIS_PREFIX") {
                None => d.redis_prefix,
                Some(v) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    return Err(ConfigError {
                        var: "REDIS_PREFIX",
                        reason: "must not hold spaces or control characters".into(),
                    });
                }
                Some(v) => v,
            },
            store_digest_key: get("STORE_DIGEST_KEY").map(Secret::from),
            node_lease: duration("NODE_LEASE_SECS", d.node_lease)?,
            data_dir: match get("DATA_DIR").as_deref() {
                Some("off") => None,
                Some(dir) => Some(PathBuf::from(dir)),
                None => Some(PathBuf::from(DEFAULT_DATA_DIR)),
            },
            snapshot_interval: Duration::from_secs(parse_or(
                get("SNAPSHOT_INTERVAL_SECS"),
                "SNAPSHOT_INTERVAL_SECS",
                d.snapshot_interval.as_secs(),
            )?),
            abuse: AbuseLimits::default(),
        };
        check_digest_key(&config)?;
        Ok(Config {
            abuse: abuse_limits(&get, config.max_payload_bytes)?,
            ..config
        })
    }
}

/// `DATA_DIR` when unset: beside the working directory, like `.env`.
pub const DEFAULT_DATA_DIR: &str = "data";

/// Shortest `STORE_DIGEST_KEY`: 128 bits as hex.
const MIN_DIGEST_KEY_CHARS: usize = 32;

fn check_digest_key(config: &Config) -> Result<(), ConfigError> {
    let error = |reason: &str| ConfigError {
        var: "STORE_DIGEST_KEY",
        reason: reason.into(),
    };
    match &config.store_digest_key {
        None if config.redis_url.is_some() => Err(error(
            "required with REDIS_URL (the same on every node), so that Redis holds no \
             password digest a dictionary could search; make one with `openssl rand -hex 32`",
        )),
        Some(k) if k.len() < MIN_DIGEST_KEY_CHARS => Err(error(
            "must be at least 32 characters; make one with `openssl rand -hex 32`",
        )),
        _ => Ok(()),
    }
}

fn abuse_limits(
    get: &impl Fn(&str) -> Option<String>,
    max_payload_bytes: usize,
) -> Result<AbuseLimits, ConfigError> {
    let d = AbuseLimits::defaults(max_payload_bytes);
    let rate = |var: &'static str, default: u32| parse_or(get(var), var, default);
    let burst = |var: &'static str, default: u32| -> Result<u32, ConfigError> {
        let n = parse_or(get(var), var, default)?;
        if n == 0 {
            return Err(ConfigError {
                var,
                reason: "must be greater than 0 (set the rate to 0 to turn the limit off)".into(),
            });
        }
        Ok(n)
    };
    let cap = |var: &'static str, default: usize| parse_or(get(var), var, default);
    let duration = |var: &'static str, default: Duration| secs(get(var), var, default);
    Ok(AbuseLimits {
        socket_events_per_sec: rate("SOCKET_EVENTS_PER_SEC", d.socket_events_per_sec)?,
        socket_events_burst: burst("SOCKET_EVENTS_BURST", d.socket_events_burst)?,
        socket_bytes_per_sec: rate("SOCKET_BYTES_PER_SEC", d.socket_bytes_per_sec)?,
        socket_bytes_burst: burst("SOCKET_BYTES_BURST", d.socket_bytes_burst)?,
        socket_queued_bytes: cap("SOCKET_QUEUED_BYTES", d.socket_queued_bytes)?,
        inflight_bytes_per_ip: cap("INFLIGHT_BYTES_PER_IP", d.inflight_bytes_per_ip)?,
        inflight_bytes_total: cap("INFLIGHT_BYTES_TOTAL", d.inflight_bytes_total)?,
        replay_bytes_per_ip: cap("REPLAY_BYTES_PER_IP", d.replay_bytes_per_ip)?,
        replay_bytes_total: cap("REPLAY_BYTES_TOTAL", d.replay_bytes_total)?,
        conn_read_bytes_per_sec: rate("CONN_READ_BYTES_PER_SEC", d.conn_read_bytes_per_sec)?,
        read_bytes_per_sec: rate("READ_BYTES_PER_SEC", d.read_bytes_per_sec)?,
        min_progress_bytes_per_sec: rate(
            "MIN_PROGRESS_BYTES_PER_SEC",
            d.min_progress_bytes_per_sec,
        )?,
        socket_outgoing_bytes: cap("SOCKET_OUTGOING_BYTES", d.socket_outgoing_bytes)?,
        ip_connects_per_sec: rate("IP_CONNECTS_PER_SEC", d.ip_connects_per_sec)?,
        ip_connects_burst: burst("IP_CONNECTS_BURST", d.ip_connects_burst)?,
        ip_reserves_per_sec: rate("IP_RESERVES_PER_SEC", d.ip_reserves_per_sec)?,
        ip_reserves_burst: burst("IP_RESERVES_BURST", d.ip_reserves_burst)?,
        ip_join_failures_per_min: rate("IP_JOIN_FAILURES_PER_MIN", d.ip_join_failures_per_min)?,
        ip_join_failures_burst: burst("IP_JOIN_FAILURES_BURST", d.ip_join_failures_burst)?,
        join_failures_per_session: rate("JOIN_FAILURES_PER_SESSION", d.join_failures_per_session)?,
        join_lockout: duration("JOIN_LOCKOUT_SECS", d.join_lockout)?,
        max_connections: cap("MAX_CONNECTIONS", d.max_connections)?,
        max_connections_per_ip: cap("MAX_CONNECTIONS_PER_IP", d.max_connections_per_ip)?,
        history_total_max_bytes: cap("HISTORY_TOTAL_MAX_BYTES", d.history_total_max_bytes)?,
        join_timeout: duration("JOIN_TIMEOUT_SECS", d.join_timeout)?,
        connect_timeout: duration("CONNECT_TIMEOUT_SECS", d.connect_timeout)?,
        max_buffered_packets: positive(
            get("MAX_BUFFERED_PACKETS"),
            "MAX_BUFFERED_PACKETS",
            d.max_buffered_packets,
        )?,
        trusted_proxies: match get("TRUSTED_PROXIES") {
            None => d.trusted_proxies,
            Some(v) => crate::client_ip::parse_trusted(&v).map_err(|reason| ConfigError {
                var: "TRUSTED_PROXIES",
                reason,
            })?,
        },
    })
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self::defaults(20 * 1024 * 1024)
    }
}

fn parse_or<T: std::str::FromStr>(
    value: Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| ConfigError {
            var,
            reason: format!("{v:?}: {e}"),
        }),
    }
}

fn positive(
    value: Option<String>,
    var: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    let n = parse_or(value, var, default)?;
    if n == 0 {
        return Err(ConfigError {
            var,
            reason: "must be greater than 0".into(),
        });
    }
    Ok(n)
}

fn secs(
    value: Option<String>,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default = default.as_secs() as usize;
    positive(value, var, default).map(|n| Duration::from_secs(n as u64))
}

/// `HOST`: an IP address (`0.0.0.0`, `::`, `127.0.0.1`, `[::1]`) or a host name such as
/// `localhost`, resolved once at start (its IPv4 address first: `localhost` is both
/// `127.0.0.1` and `::1`, and one listener binds one of them).
fn resolve_host(v: &str) -> Result<IpAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let error = |reason: String| ConfigError {
        var: "HOST",
        reason,
    };
    let bare = v
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(v);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    let is_name = v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !is_name {
        return Err(error(format!(
            "{v:?} is neither an IP address (0.0.0.0, ::, 127.0.0.1) nor a host name (localhost)"
        )));
    }
    let found: Vec<IpAddr> = (v, 0)
        .to_socket_addrs()
        .map_err(|e| error(format!("cannot resolve {v:?}: {e}")))?
        .map(|a| a.ip())
        .collect();
    found
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| error(format!("{v:?} resolves to no address")))
}

/// The spellings `DEBUG` accepts (any case), all documented in docs/configuration.md.
pub const DEBUG_VALUES: &str = "true, false, 1, 0, yes, no, on or off";

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_origins(v: &str) -> Result<AllowedOrigins, ConfigError> {
    let origins: Vec<String> = v
        .split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        return Ok(AllowedOrigins::Any);
    }
    for o in &origins {
        if !(o.starts_with("http://") || o.starts_with("https://"))
            || axum::http::HeaderValue::from_str(o).is_err()
        {
            return Err(ConfigError {
                var: "CLIENT_URL",
                reason: format!("{o:?} is not an origin like https://chat.example.com"),
            });
        }
    }
    Ok(AllowedOrigins::List(origins))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_original_server() {
        let c = load(&[]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.session_ttl, Duration::from_secs(1800));
        assert_eq!(c.max_payload_bytes, 20 * 1024 * 1024);
        assert_eq!(
            c.client_origins,
            AllowedOrigins::List(vec!["http://localhost:5173".into()])
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = load(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert!(err.to_string().contains("PORT"));
        assert_eq!(
            load(&[("MAX_SESSIONS", "0")]).unwrap_err().var,
            "MAX_SESSIONS"
        );
        assert_eq!(load(&[("DEBUG", "maybe")]).unwrap_err().var, "DEBUG");
        assert_eq!(
            load(&[("LOG_FORMAT", "xml")]).unwrap_err().var,
            "LOG_FORMAT"
        );
        assert_eq!(
            load(&[("CLIENT_URL", "localhost")]).unwrap_err().var,
            "CLIENT_URL"
        );
    }

    #[test]
    fn host_takes_addresses_and_names() {
        let host = |v: &str| load(&[("HOST", v)]).map(|c| c.host);
        assert_eq!(host("0.0.0.0").unwrap(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(host("::").unwrap().to_string(), "::");
        assert_eq!(host("[::1]").unwrap().to_string(), "::1");
        assert_eq!(host("192.168.1.20").unwrap().to_string(), "192.168.1.20");
        let local = host("localhost").unwrap();
        assert!(
            local.is_loopback(),
            "localhost resolves to a loopback address: {local}"
        );
        for bad in [
            "local host",
            "http://localhost",
            "127.0.0.1:3001",
            "bad_name",
            "",
        ] {
            if bad.is_empty() {
                continue; // empty counts as unset
            }
            assert_eq!(host(bad).unwrap_err().var, "HOST", "{bad:?}");
        }
    }

    #[test]
    fn debug_takes_every_documented_spelling_and_refuses_others() {
        for (v, on) in [("true", true), ("YES", true), ("1", true), ("on", true)] {
            assert_eq!(load(&[("DEBUG", v)]).unwrap().debug, on, "{v}");
        }
        for v in ["false", "No", "0", "off"] {
            assert!(!load(&[("DEBUG", v)]).unwrap().debug, "{v}");
        }
        let err = load(&[("DEBUG", "verbose")]).unwrap_err();
        assert_eq!(err.var, "DEBUG");
        assert!(
            err.to_string().contains("yes"),
            "the message lists the spellings: {err}"
        );
    }

    #[test]
    fn origins_parse_as_a_list_or_any() {
        let c = load(&[("CLIENT_URL", "https://a.example, https://b.example/")]).unwrap();
        assert_eq!(
            c.client_origins,
            AllowedOrigins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
        assert_eq!(
            load(&[("CLIENT_URL", "*")]).unwrap().client_origins,
            AllowedOrigins::Any
        );
    }
}
