//! The command line: `blindrelay [serve]`, `blindrelay healthcheck [--url URL]`,
//! `--version` and `--help`.
//!
//! Every flag falls back to its environment variable (and `.env`). Values stay strings
//! here and are validated by [`Config::from_lookup`], so a bad one is reported the same
//! way, naming the variable, whether it came from a flag or the environment.

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Parser, Debug)]
#[command(
    name = "blindrelay",
    version,
    about = "Zero-knowledge Socket.IO relay for end-to-end-encrypted chat sessions",
    after_help = "Every setting may also be given as its environment variable or in a .env file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve Socket.IO and HTTP (the default).
    Serve,
    /// Probe a running server's /health and exit 0 if it answers 200 (for container
    /// health checks: the image needs no curl).
    Healthcheck {
        /// URL to probe [default: http://127.0.0.1:$PORT/health]
        #[arg(long, env = "HEALTHCHECK_URL")]
        url: Option<String>,
    },
}

/// Declares the settings once: a flag per variable, with its help and env fallback.
macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident => $var:literal ),* $(,)?) => {
        #[derive(Args, Debug, Default, Clone)]
        pub struct Settings {
            $(
                $(#[$doc])*
                #[arg(long, env = $var, global = true, hide_env_values = true, value_name = "VALUE")]
                pub $field: Option<String>,
            )*
        }

        impl Settings {
            /// Every environment variable a setting reads.
            pub const VARS: &[&str] = &[$($var),*];

            /// The value given for environment variable `var`, by flag or environment.
            pub fn get(&self, var: &str) -> Option<String> {
                match var {
                    $( $var => self.$field.clone(), )*
                    _ => None,
                }
            }
        }
    };
}

settings! {
    /// Port to listen on [default: 3001]
    port => "PORT",
    /// Address to bind [default: 0.0.0.0]
    host => "HOST",
    /// Allowed browser origins, comma-separated, or * [default: http://localhost:5173]
    client_url => "CLIENT_URL",
    /// Seconds an empty session is kept without activity [default: 1800]
    session_ttl_secs => "SESSION_TTL_SECS",
    /// Seconds an empty session nobody but its creator joined is kept [default: 300]
    unused_session_ttl_secs => "UNUSED_SESSION_TTL_SECS",
    /// Seconds between sweeps of expired sessions [default: 60]
    reaper_interval_secs => "REAPER_INTERVAL_SECS",
    /// Largest Socket.IO packet a client may send, in bytes [default: 20971520]
    max_payload_bytes => "MAX_PAYLOAD_BYTES",
    /// Messages of history kept per session [default: 500]
    history_max_messages => "HISTORY_MAX_MESSAGES",
    /// Bytes of history kept per session [default: 33554432]
    history_max_bytes => "HISTORY_MAX_BYTES",
    /// Sessions held at most [default: 100000]
    max_sessions => "MAX_SESSIONS",
    /// Connected members of a group session at most [default: 64]
    max_group_members => "MAX_GROUP_MEMBERS",
    /// Bearer token enabling GET /sessions [default: unset]
    admin_token => "ADMIN_TOKEN",
    /// Bearer token required by GET /metrics [default: unset = open]
    metrics_token => "METRICS_TOKEN",
    /// Seconds a graceful shutdown may take before the process exits [default: 10]
    shutdown_grace_secs => "SHUTDOWN_GRACE_SECS",
    /// Seconds between Engine.IO pings [default: 10]
    ping_interval_secs => "PING_INTERVAL_SECS",
    /// Seconds a pong may take before the connection is dropped [default: 10]
    ping_timeout_secs => "PING_TIMEOUT_SECS",
    /// Seconds a dropped member may take to come back before the others are told [default: 20]
    presence_grace_secs => "PRESENCE_GRACE_SECS",
    /// true = debug logs [default: false]
    debug => "DEBUG",
    /// pretty or json [default: pretty]
    log_format => "LOG_FORMAT",
    /// Folder served at / [default: static]
    static_dir => "STATIC_DIR",
    /// redis:// URL: share sessions and broadcasts with other nodes [default: unset = in memory]
    redis_url => "REDIS_URL",
    /// Prefix of every Redis key and channel [default: blindrelay:]
    redis_prefix => "REDIS_PREFIX",
    /// With Redis: key of the HMAC credentials are stored under, the same on every node [required with REDIS_URL]
    store_digest_key => "STORE_DIGEST_KEY",
    /// With Redis: seconds before a dead node's members are dropped [default: 15]
    node_lease_secs => "NODE_LEASE_SECS",
    /// In memory: folder of the snapshot that keeps rooms across restarts, or off [default: data]
    data_dir => "DATA_DIR",
    /// In memory: seconds between snapshots besides the one at a graceful stop; 0 = only then [default: 30]
    snapshot_interval_secs => "SNAPSHOT_INTERVAL_SECS",
    /// Events one socket may send per second; 0 = no limit [default: 30]
    socket_events_per_sec => "SOCKET_EVENTS_PER_SEC",
    /// Events one socket may send in a burst [default: 200]
    socket_events_burst => "SOCKET_EVENTS_BURST",
    /// Bytes one socket may send per second (beyond it, events wait); 0 = no limit [default: 4194304]
    socket_bytes_per_sec => "SOCKET_BYTES_PER_SEC",
    /// Bytes one socket may send at once, the largest event that can pass [default: 2 x MAX_PAYLOAD_BYTES]
    socket_bytes_burst => "SOCKET_BYTES_BURST",
    /// Bytes of one socket's events waiting to be handled; 0 = no cap [default: 3 x MAX_PAYLOAD_BYTES]
    socket_queued_bytes => "SOCKET_QUEUED_BYTES",
    /// Bytes of received events waiting, all sockets of one address; 0 = no cap [default: 134217728]
    inflight_bytes_per_ip => "INFLIGHT_BYTES_PER_IP",
    /// Bytes of received events waiting, all sockets; 0 = no cap [default: 268435456]
    inflight_bytes_total => "INFLIGHT_BYTES_TOTAL",
    /// Bytes of history sent and maybe unread, all sockets of one address; 0 = no cap [default: 67108864]
    replay_bytes_per_ip => "REPLAY_BYTES_PER_IP",
    /// Bytes of history sent and maybe unread, all sockets; 0 = no cap [default: 134217728]
    replay_bytes_total => "REPLAY_BYTES_TOTAL",
    /// Bytes read from one connection per second; 0 = no limit [default: 0]
    conn_read_bytes_per_sec => "CONN_READ_BYTES_PER_SEC",
    /// Bytes read from all connections per second; 0 = no limit [default: 33554432]
    read_bytes_per_sec => "READ_BYTES_PER_SEC",
    /// Bytes a second a connection must move to stay alive while its pong is late, and while writes to it wait; 0 = pongs only [default: 4096]
    min_progress_bytes_per_sec => "MIN_PROGRESS_BYTES_PER_SEC",
    /// Bytes queued for one socket before it is cut off as a slow reader; 0 = no cap [default: 2 x MAX_PAYLOAD_BYTES]
    socket_outgoing_bytes => "SOCKET_OUTGOING_BYTES",
    /// New Socket.IO connections per client address per second; 0 = no limit [default: 10]
    ip_connects_per_sec => "IP_CONNECTS_PER_SEC",
    /// New Socket.IO connections per client address in a burst [default: 100]
    ip_connects_burst => "IP_CONNECTS_BURST",
    /// POST /api/reserve-session per client address per second; 0 = no limit [default: 2]
    ip_reserves_per_sec => "IP_RESERVES_PER_SEC",
    /// POST /api/reserve-session per client address in a burst [default: 30]
    ip_reserves_burst => "IP_RESERVES_BURST",
    /// Failed joins per client address per minute; 0 = no limit [default: 30]
    ip_join_failures_per_min => "IP_JOIN_FAILURES_PER_MIN",
    /// Failed joins per client address in a burst [default: 30]
    ip_join_failures_burst => "IP_JOIN_FAILURES_BURST",
    /// Wrong keys/passwords for one session from one address before a lockout; 0 = off [default: 5]
    join_failures_per_session => "JOIN_FAILURES_PER_SESSION",
    /// Seconds an (address, session) pair stays locked out [default: 300]
    join_lockout_secs => "JOIN_LOCKOUT_SECS",
    /// Connected sockets at most; 0 = no limit [default: 20000]
    max_connections => "MAX_CONNECTIONS",
    /// Connected sockets per client address at most; 0 = no limit [default: 256]
    max_connections_per_ip => "MAX_CONNECTIONS_PER_IP",
    /// Bytes of history of all sessions together; 0 = no limit [default: 268435456]
    history_total_max_bytes => "HISTORY_TOTAL_MAX_BYTES",
    /// Seconds a socket may stay connected without joining a session [default: 300]
    join_timeout_secs => "JOIN_TIMEOUT_SECS",
    /// Seconds a transport may take to connect the Socket.IO namespace [default: 10]
    connect_timeout_secs => "CONNECT_TIMEOUT_SECS",
    /// Packets buffered for one socket before it is cut off as a slow reader [default: 512]
    max_buffered_packets => "MAX_BUFFERED_PACKETS",
    /// Proxies whose X-Forwarded-For is believed: IPs and CIDRs, comma-separated [default: none]
    trusted_proxies => "TRUSTED_PROXIES",
}

impl Cli {
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::from_lookup(|var| self.settings.get(var))
    }
}

/// Runs `healthcheck`: true when `url` answers 200 within a few seconds.
pub async fn healthcheck(url: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
        let status_line = String::from_utf8_lossy(&head[..n]);
        if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
            Ok(())
        } else {
            Err(format!(
                "unhealthy: {}",
                status_line.lines().next().unwrap_or("no answer")
            ))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(3), probe)
        .await
        .map_err(|_| "no answer within 3 s".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_feed_the_same_validation_as_the_environment() {
        let cli =
            Cli::try_parse_from(["blindrelay", "--port", "4000", "--max-sessions", "7"]).unwrap();
        let config = cli.config().unwrap();
        assert_eq!(config.port, 4000);
        assert_eq!(config.max_sessions, 7);
        let cli = Cli::try_parse_from(["blindrelay", "--port", "x"]).unwrap();
        assert_eq!(cli.config().unwrap_err().var, "PORT");
    }

    #[test]
    fn every_setting_is_documented_in_the_configuration_doc_and_env_example() {
        let reference = include_str!("../docs/configuration.md");
        let example = include_str!("../.env.example");
        for var in Settings::VARS {
            assert!(
                reference.contains(&format!("| `{var}` |")),
                "{var} has no row in docs/configuration.md's tables"
            );
            assert!(
                example.lines().any(|l| l.starts_with(&format!("{var}="))),
                "{var} is missing from .env.example"
            );
        }
    }

    #[test]
    fn abuse_limits_parse_from_flags_and_the_environment() {
        let cli = Cli::try_parse_from([
            "blindrelay",
            "--socket-events-per-sec",
            "0",
            "--trusted-proxies",
            "10.0.0.0/8, ::1",
            "--max-payload-bytes",
            "1000",
            "--join-lockout-secs",
            "7",
        ])
        .unwrap();
        let abuse = cli.config().unwrap().abuse;
        assert_eq!(abuse.socket_events_per_sec, 0);
        assert_eq!(abuse.trusted_proxies.len(), 2);
        assert_eq!(
            abuse.socket_bytes_burst, 2000,
            "the byte burst follows MAX_PAYLOAD_BYTES"
        );
        assert_eq!(abuse.socket_queued_bytes, 3000);
        assert_eq!(abuse.join_lockout, std::time::Duration::from_secs(7));
        for (flag, var) in [
            ("--trusted-proxies", "TRUSTED_PROXIES"),
            ("--socket-events-burst", "SOCKET_EVENTS_BURST"),
            ("--max-buffered-packets", "MAX_BUFFERED_PACKETS"),
            ("--join-timeout-secs", "JOIN_TIMEOUT_SECS"),
        ] {
            let value = if var == "TRUSTED_PROXIES" {
                "proxy.local"
            } else {
                "0"
            };
            let cli = Cli::try_parse_from(["blindrelay", flag, value]).unwrap();
            assert_eq!(cli.config().unwrap_err().var, var);
        }
    }

    #[test]
    fn healthcheck_is_a_subcommand_with_a_url() {
        let cli = Cli::try_parse_from([
            "blindrelay",
            "healthcheck",
            "--url",
            "http://127.0.0.1:9/health",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Healthcheck { url: Some(_) })
        ));
    }
}
