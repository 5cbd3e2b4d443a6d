//! Log setup, and the short tags that name sessions in logs without revealing their ids.

use std::{
    fmt,
    hash::{BuildHasher, Hasher},
    sync::OnceLock,
};

use tracing_subscriber::{
    EnvFilter,
    filter::{LevelFilter, Targets},
    fmt as tfmt,
    prelude::*,
};

use crate::{
    config::{Config, LogFormat},
    protocol::SessionId,
};

/// Dependencies that print frames, packets, commands or Engine.IO session ids (the
/// polling transport's only credential) at debug and trace levels, and the most each
/// may log whatever `RUST_LOG` says: payloads hold keys, passwords and ciphertexts.
const CAPPED: &[(&str, LevelFilter)] = &[
    ("tungstenite", LevelFilter::INFO),
    ("tokio_tungstenite", LevelFilter::INFO),
    ("engineioxide", LevelFilter::INFO),
    ("engineioxide_core", LevelFilter::INFO),
    ("socketioxide", LevelFilter::INFO),
    ("socketioxide_core", LevelFilter::INFO),
    ("socketioxide_parser_common", LevelFilter::INFO),
    ("socketioxide_redis", LevelFilter::INFO),
    ("redis", LevelFilter::INFO),
    ("hyper", LevelFilter::INFO),
    ("hyper_util", LevelFilter::INFO),
    ("h2", LevelFilter::INFO),
    ("axum", LevelFilter::INFO),
    ("tower", LevelFilter::INFO),
    // Its request span is ours (the path, never the query, which holds the sid).
    ("tower_http", LevelFilter::DEBUG),
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
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let from_rust_log = rust_log.as_deref().and_then(|v| EnvFilter::try_new(v).ok());
    let overridden = from_rust_log.is_some();
    let filter = from_rust_log.unwrap_or_else(|| EnvFilter::new(default));
    let unsafe_payloads = std::env::var(UNSAFE_LOG_VAR).is_ok_and(|v| v == UNSAFE_LOG_VALUE);
    // A second filter on the output: an event must pass both, so a cap only ever lowers
    // what RUST_LOG asks for.
    // Its default is the filter's own ceiling, not TRACE: the subscriber's level hint is
    // the most verbose of its filters, and it sets the `log` crate's maximum level
    // (tracing-log). At TRACE every `log::trace!` of the WebSocket library (several per
    // frame) went through the log bridge to be filtered out there.
    let ceiling =
        tracing_subscriber::Layer::<tracing_subscriber::Registry>::max_level_hint(&filter)
            .unwrap_or(LevelFilter::TRACE);
    let caps = match unsafe_payloads {
        true => Targets::new().with_default(ceiling),
        false => Targets::new()
            .with_default(ceiling)
            .with_targets(CAPPED.iter().copied()),
    };
    let registry = tracing_subscriber::registry().with(filter);
    // Colours for a person at a terminal only: log files (PM2, docker logs, systemd) and
    // pipes get plain text. NO_COLOR (no-color.org) turns them off anywhere.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(tfmt::layer().json().flatten_event(true).with_filter(caps))
            .try_init(),
        LogFormat::Pretty => registry
            .with(tfmt::layer().with_ansi(ansi).with_filter(caps))
            .try_init(),
    };
    // Say what DEBUG did, so that it is never silently without effect.
    match (config.debug, overridden) {
        (true, true) => {
            tracing::warn!("DEBUG is set but RUST_LOG is too, and RUST_LOG decides what is logged")
        }
        (true, false) => tracing::debug!(
            "debug logs on (DEBUG): each HTTP request (method, path, status, time) \
             and per reservation; never payloads, keys or session ids"
        ),
        _ => {}
    }
    if rust_log.is_some() && !overridden {
        tracing::warn!("RUST_LOG is not a valid filter; it is ignored");
    }
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
