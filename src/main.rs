//! The `blindrelay` binary: loads the configuration and serves.

use std::{net::SocketAddr, process::ExitCode};

use blindrelay::{Config, logging};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("blindrelay: cannot read .env: {e}");
        return ExitCode::from(2);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("blindrelay: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config);
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match TcpListener::bind(addr).await {
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
