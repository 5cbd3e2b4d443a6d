//! The `blindrelay` binary: reads the command line and environment, then serves (or
//! probes a running server with `healthcheck`).

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    process::ExitCode,
    time::Duration,
};

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
    warn_without_web_client(&config.static_dir);
    if let Some(url) = &config.redis_url
        && let Err(why) = probe_redis(url.expose()).await
    {
        eprintln!("blindrelay: cannot reach Redis {why}");
        return ExitCode::from(1);
    }
    let addr = SocketAddr::new(config.host, config.port);
    let listener = match blindrelay::listen(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("blindrelay: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    for line in open_hint(bound, cli.settings.host.as_deref()) {
        tracing::info!("{line}");
    }
    match blindrelay::serve(listener, config, blindrelay::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("blindrelay: {e}");
            ExitCode::from(1)
        }
    }
}

/// The socket server is useful without the page (other apps speak its protocol), so a
/// missing `STATIC_DIR` does not stop the start; but a person who runs it to open the
/// page must learn why there is none, not find a 404.
fn warn_without_web_client(dir: &Path) {
    let index = dir.join("index.html");
    if index.is_file() {
        return;
    }
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    tracing::warn!(
        "no web client: {} not found (STATIC_DIR={}). The page answers 404; Socket.IO and \
         the HTTP API work. Run from the repository folder, or set STATIC_DIR to its static/ folder.",
        shown.join("index.html").display(),
        dir.display()
    );
}

/// What a person should open, for a listener on `bound` (`host` as the setting spelled
/// it). Browsers give the page WebCrypto only in a secure context, which plain http:// is
/// only for localhost: any other address needs HTTPS in front.
fn open_hint(bound: SocketAddr, host: Option<&str>) -> Vec<String> {
    let port = bound.port();
    let ip = bound.ip();
    let named = host
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err() && !h.starts_with('['));
    let https = "Browsers allow the page's encryption only on https:// or localhost: for \
                 other machines put HTTPS in front (docs/deployment.md, \"HTTPS\": deploy/nginx-tls.conf).";
    if ip.is_unspecified() {
        return vec![
            format!("open http://localhost:{port} in a browser on this machine"),
            format!(
                "other machines reach this one at http://<its address>:{port}, but there the page \
                 cannot encrypt. {https}"
            ),
        ];
    }
    let url = match (named, ip) {
        (Some(name), _) => format!("http://{name}:{port}"),
        (None, IpAddr::V6(v6)) => format!("http://[{v6}]:{port}"),
        (None, IpAddr::V4(v4)) => format!("http://{v4}:{port}"),
    };
    if ip.is_loopback() {
        vec![format!(
            "open {url} in a browser on this machine (HOST={}: no other machine can reach it)",
            host.unwrap_or("")
        )]
    } else {
        vec![
            format!("reachable at {url}"),
            format!("the page at {url} cannot encrypt (not a secure context). {https}"),
        ]
    }
}

/// Connects to Redis once before serving, to say precisely what is wrong when it cannot:
/// an unknown host, a refused connection, no answer, or a refused password. Errors name
/// the host and port, never the URL (which may hold the password).
/// Probes each seed of `REDIS_URL` (comma-separated for a cluster) until one answers;
/// the error of the last one otherwise.
async fn probe_redis(urls: &str) -> Result<(), String> {
    let mut last = String::from("(REDIS_URL names no server)");
    for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        match probe_one(url).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn probe_one(url: &str) -> Result<(), String> {
    const WAIT: Duration = Duration::from_secs(5);
    let client = redis::Client::open(url)
        .map_err(|e| format!("(REDIS_URL is not a valid Redis URL: {:?})", e.kind()))?;
    let info = client.get_connection_info();
    let at = info.addr().to_string();
    let password = info.redis_settings().password().unwrap_or("").to_owned();
    let hide = |text: String| match password.is_empty() {
        true => text,
        false => text.replace(&password, "***"),
    };
    if let redis::ConnectionAddr::Tcp(host, port)
    | redis::ConnectionAddr::TcpTls { host, port, .. } = info.addr()
    {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, *port))
            .await
            .map_err(|e| format!("at {at}: cannot resolve host {host:?} ({e})"))?
            .collect();
        // The address tried, when the name was not already it.
        let resolved = |a: SocketAddr| match a.to_string() == at {
            true => String::new(),
            false => format!(" at {a}"),
        };
        let mut last = format!("at {at}: {host:?} resolves to no address");
        let mut reached = false;
        for a in addrs {
            match tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(a)).await {
                Ok(Ok(_)) => {
                    reached = true;
                    break;
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    last = format!(
                        "at {at}: connection refused{} (is redis-server running there?)",
                        resolved(a)
                    );
                }
                Ok(Err(e)) => last = format!("at {at}: cannot connect{}: {e}", resolved(a)),
                Err(_) => last = format!("at {at}: no answer{} within {WAIT:?}", resolved(a)),
            }
        }
        if !reached {
            return Err(last);
        }
    }
    let explain = |e: redis::RedisError| {
        let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"));
        if auth {
            format!(
                "at {at}: authentication failed (the password or user in REDIS_URL is wrong or \
                 missing): {}",
                hide(e.to_string())
            )
        } else {
            format!("at {at}: {}", hide(e.to_string()))
        }
    };
    let mut conn = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| format!("at {at}: no Redis answer within {WAIT:?}"))?
        .map_err(explain)?;
    let _: String = tokio::time::timeout(WAIT, redis::cmd("PING").query_async(&mut conn))
        .await
        .map_err(|_| format!("at {at}: no answer to PING within {WAIT:?}"))?
        .map_err(explain)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_an_address_a_browser_can_use() {
        let any: SocketAddr = "0.0.0.0:3001".parse().unwrap();
        let hint = open_hint(any, None).join("\n");
        assert!(hint.contains("http://localhost:3001"), "{hint}");
        assert!(!hint.contains("0.0.0.0"), "{hint}");
        assert!(hint.contains("HTTPS"), "{hint}");
        let v6: SocketAddr = "[::]:3001".parse().unwrap();
        assert!(open_hint(v6, Some("::"))[0].contains("http://localhost:3001"));
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(open_hint(local, Some("localhost"))[0].contains("http://localhost:4000"));
        assert!(open_hint(local, Some("127.0.0.1"))[0].contains("http://127.0.0.1:4000"));
        let one: SocketAddr = "[::1]:4000".parse().unwrap();
        assert!(open_hint(one, Some("::1"))[0].contains("http://[::1]:4000"));
        let lan: SocketAddr = "192.168.1.20:3001".parse().unwrap();
        let hint = open_hint(lan, Some("192.168.1.20")).join("\n");
        assert!(
            hint.contains("cannot encrypt") && hint.contains("HTTPS"),
            "{hint}"
        );
    }
}
