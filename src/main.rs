//! The `blindrelay` binary: reads the command line and environment, then serves (or
//! probes a running server with `healthcheck`).

use std::{net::SocketAddr, process::ExitCode};

use blindrelay::{
    cli::{self, Cli, Command},
    logging,
};
use clap::Parser;

/// mimalloc returns freed memory to the system and fragments less than glibc's malloc
/// under many small per-connection allocations (see BENCHMARKS.md). Feature
/// `system-alloc` keeps the system allocator, for heap profilers that hook malloc.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("blindrelay: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let config = match cli.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("blindrelay: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}/health", config.port));
        return match cli::healthcheck(&url).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("blindrelay healthcheck: {e}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init(&config);
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match blindrelay::listen(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("blindrelay: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    match blindrelay::serve(listener, config, blindrelay::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blindrelay: {e}");
            ExitCode::from(1)
        }
    }
}
