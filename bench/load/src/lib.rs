//! blindrelay's load tools: the load generator (`blindrelay-bench`, [`bench`]), the soak
//! test (`blindrelay-soak`, [`soak`]) and the floor relay (`bench-floor`, its own binary).
//!
//! Both clients speak Engine.IO v4 / Socket.IO v5 over WebSocket themselves, through one
//! client ([`client`]: connect, handshake, pings, events, acks), and read the servers'
//! CPU and memory from /proc ([`procfs`]).

pub mod bench;
pub mod client;
pub mod procfs;
pub mod rx;
pub mod soak;

/// Errors are the text shown to the user.
pub type R<T> = Result<T, String>;
