//! `relay-server`: runs the restsip relay. See `relay-server --help`.

use std::io::Write;

use restsip_relay::config::{Config, LogFormat};
use restsip_relay::runtime::{self, Placement};

/// mimalloc: glibc's malloc cost a quarter of the CPU time of a SIP REGISTER (many small
/// allocations, freed on other threads than the one that made them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let config = match Config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("relay-server: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    init_logs(config.operations.log_format);
    let runtime = match runtime::build(config.operations.pin_workers) {
        Ok((runtime, placement)) => {
            match placement {
                Placement::Free => {}
                Placement::Pinned(cpus) => tracing::info!(?cpus, "worker threads pinned"),
                Placement::NotPinned(why) => {
                    tracing::warn!(%why, "worker threads not pinned");
                }
            }
            runtime
        }
        Err(e) => {
            eprintln!("relay-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines on stderr, filtered by `RUST_LOG` (default `info`), as text or JSON lines.
fn init_logs(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match format {
        // One JSON object per line, the event's fields at its top level, for log shippers.
        LogFormat::Json => logs.json().flatten_event(true).init(),
        // Colours only on a terminal: a log file or a pipe gets plain text (and the SIP
        // trace's messages stay greppable).
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let database = config.database.clone();
    let relay = restsip_relay::start(config).await?;
    // The first line on stdout says where the relay is; scripts and tests read it.
    let scheme = if relay.https() { "https" } else { "http" };
    println!(
        "restsip relay listening on {scheme}://{}",
        relay.http_addr()
    );
    // The SIP address comes second, so readers of the first line are unaffected.
    if let Some(sip) = relay.sip_addr() {
        println!("restsip relay sip on udp+tcp {sip}");
    }
    // Later lines are optional: readers find them by their prefix.
    if let Some(tls) = relay.sip_tls_addr() {
        println!("restsip relay sip on tls {tls}");
    }
    // `/metrics` on a listener of its own (--metrics) comes after the lines above.
    if let Some(metrics) = relay.metrics_addr() {
        println!("restsip relay metrics on http://{metrics}/metrics");
    }
    std::io::stdout().flush()?;
    tracing::info!(http = %relay.http_addr(), sip = ?relay.sip_addr(), %database, "relay started");
    relay.serve(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
