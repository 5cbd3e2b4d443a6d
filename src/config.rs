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
    pub debug: bool,
    pub log_format: LogFormat,
    pub static_dir: PathBuf,
    /// Sessions and broadcasts go through this Redis when set; in memory otherwise.
    /// Kept as a secret: the URL may carry a password.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    pub redis_prefix: String,
    /// With Redis: how long a node that stopped renewing its lease keeps its members.
    pub node_lease: Duration,
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
            reaper_interval: Duration::from_secs(60),
            max_payload_bytes: 20 * 1024 * 1024,
            history_max_messages: 500,
            history_max_bytes: 32 * 1024 * 1024,
            max_sessions: 100_000,
            max_group_members: 64,
            admin_token: None,
            metrics_token: None,
            shutdown_grace: Duration::from_secs(10),
            debug: false,
            log_format: LogFormat::Pretty,
            static_dir: PathBuf::from("static"),
            redis_url: None,
            redis_prefix: "blindrelay:".into(),
            node_lease: Duration::from_secs(15),
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
        Ok(Config {
            host: parse_or(get("HOST"), "HOST", d.host)?,
            port: parse_or(get("PORT"), "PORT", d.port)?,
            client_origins: match get("CLIENT_URL") {
                None => d.client_origins,
                Some(v) => parse_origins(&v)?,
            },
            session_ttl: secs(get("SESSION_TTL_SECS"), "SESSION_TTL_SECS", d.session_ttl)?,
            reaper_interval: secs(
                get("REAPER_INTERVAL_SECS"),
                "REAPER_INTERVAL_SECS",
                d.reaper_interval,
            )?,
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
            shutdown_grace: secs(
                get("SHUTDOWN_GRACE_SECS"),
                "SHUTDOWN_GRACE_SECS",
                d.shutdown_grace,
            )?,
            debug: match get("DEBUG") {
                None => d.debug,
                Some(v) => parse_bool(&v).ok_or_else(|| ConfigError {
                    var: "DEBUG",
                    reason: format!("expected true or false, got {v:?}"),
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
            node_lease: secs(get("NODE_LEASE_SECS"), "NODE_LEASE_SECS", d.node_lease)?,
        })
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
