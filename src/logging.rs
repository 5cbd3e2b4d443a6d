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

/// Installs the global subscriber: `RUST_LOG` wins, else `DEBUG` picks debug or info.
/// Returns false when one was already installed (tests start several servers).
pub fn init(config: &Config) -> bool {
    let default = if config.debug {
        "blindrelay=debug,tower_http=debug,info"
    } else {
        "info"
    };
    // An empty RUST_LOG (as `.env.example` has) counts as unset.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Json => registry
            .with(tfmt::layer().json().flatten_event(true))
            .try_init(),
        LogFormat::Pretty => registry.with(tfmt::layer()).try_init(),
    };
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
