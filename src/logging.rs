//! Log setup, and the short tags that name sessions in logs without revealing their ids.

use std::{
    fmt,
    hash::{BuildHasher, Hasher},
    sync::OnceLock,
};

use tracing_subscriber::{EnvFilter, fmt as tfmt, prelude::*};

use crate::{
    config::{Config, LogFormat},
    protocol::SessionId,
};

/// Dependencies that print frames, packets, commands or Engine.IO session ids (the
/// polling transport's only credential) at debug and trace levels, and the most each
/// may log whatever `RUST_LOG` says: payloads hold keys, passwords and ciphertexts.
const CAPPED: &[(&str, &str)] = &[
    ("tungstenite", "info"),
    ("tokio_tungstenite", "info"),
    ("engineioxide", "info"),
    ("engineioxide_core", "info"),
    ("socketioxide", "info"),
    ("socketioxide_core", "info"),
    ("socketioxide_parser_common", "info"),
    ("socketioxide_redis", "info"),
    ("redis", "info"),
    ("hyper", "info"),
    ("hyper_util", "info"),
    ("h2", "info"),
    ("axum", "info"),
    ("tower", "info"),
    // Its request span is ours (the path, never the query, which holds the sid).
    ("tower_http", "debug"),
];

/// Set to exactly this to lift [`CAPPED`] while debugging on a machine of your own.
pub const UNSAFE_LOG_VAR: &str = "BLINDRELAY_UNSAFE_LOG_PAYLOADS";
const UNSAFE_LOG_VALUE: &str = "i-understand-logs-will-hold-secrets";

/// Installs the global subscriber: `RUST_LOG` wins, else `DEBUG` picks debug or info;
/// either way the dependencies in [`CAPPED`] stay at their cap. Returns false when one
/// was already installed (tests start several servers).
pub fn init(config: &Config) -> bool {
    let default = if config.debug {
        "blindrelay=debug,tower_http=debug,info"
    } else {
        "info"
    };
    // An empty RUST_LOG (as `.env.example` has) counts as unset.
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let unsafe_payloads = std::env::var(UNSAFE_LOG_VAR).is_ok_and(|v| v == UNSAFE_LOG_VALUE);
    if !unsafe_payloads {
        // Added last, so they win over a directive for the same target in RUST_LOG.
        for (target, cap) in CAPPED {
            if let Ok(directive) = format!("{target}={cap}").parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(tfmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Pretty => registry.with(tfmt::layer()).try_init(),
    };
    if unsafe_payloads {
        tracing::warn!(
            "{UNSAFE_LOG_VAR} is set: dependencies may log frames, keys, passwords, \
             ciphertexts and session credentials. Never use this in production."
        );
    }
    result.is_ok()
}

/// A random number from the standard library's per-process random hasher keys.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

fn tag_hasher() -> &'static std::collections::hash_map::RandomState {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(std::collections::hash_map::RandomState::new)
}

/// How a session appears in logs: a keyed hash, stable for this process, from which
/// the id cannot be recovered (the key is random per process).
pub struct SessionTag(u32);

impl SessionTag {
    pub fn of(id: &SessionId) -> Self {
        let mut h = tag_hasher().build_hasher();
        h.write(id.as_str().as_bytes());
        SessionTag(h.finish() as u32)
    }
}

impl fmt::Display for SessionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s-{:08x}", self.0)
    }
}

/// How a connection appears in logs: a keyed hash of its id, which socketioxide also
/// uses as the Engine.IO session id, the only credential of the polling transport.
pub struct ConnTag(u32);

impl ConnTag {
    pub fn of(id: socketioxide::socket::Sid) -> Self {
        let mut h = tag_hasher().build_hasher();
        h.write(id.as_str().as_bytes());
        ConnTag(h.finish() as u32)
    }
}

impl fmt::Display for ConnTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c-{:08x}", self.0)
    }
}
