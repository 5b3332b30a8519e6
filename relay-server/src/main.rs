//! `relay-server`: runs the restsip relay. See `relay-server --help`.

use std::io::Write;

use restsip_relay::config::Config;

/// mimalloc: glibc's malloc cost a quarter of the CPU time of a SIP REGISTER (many small
/// allocations, freed on other threads than the one that made them).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a pipe gets plain text (and the SIP
        // trace's messages stay greppable).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let config = Config::from_args()?;
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
