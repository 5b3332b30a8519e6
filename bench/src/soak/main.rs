//! `soak`: drives a running relay with a mixed load at a fixed rate for a bounded time and
//! prints, every minute, the relay's RSS and open descriptors, errors by kind and latency
//! percentiles by operation. Exits non-zero on any error. `bench/soak.sh` starts the relay
//! and runs it; see `bench/README.md`.

// The HTTP client and WebSocket reader of `rest-bench`, shared as files: the soak uses the
// pooled client and the listener, not the benchmark's keep-alive loop.
#[allow(dead_code)]
#[path = "../http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../inbox.rs"]
mod inbox;
mod ops;
mod sip;
mod sse;
mod stats;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use tokio::sync::Semaphore;

use crate::ops::{World, NAMES, WEIGHTS};
use crate::stats::{percentile, process, Stats};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "Bounded mixed-load soak of a running restsip relay"
)]
struct Args {
    /// The relay's HTTP address.
    #[arg(long, value_name = "IP:PORT")]
    http: SocketAddr,
    /// The relay's SIP address (UDP).
    #[arg(long, value_name = "IP:PORT")]
    sip: String,
    /// The relay's process id (RSS and descriptors are read from /proc).
    #[arg(long)]
    pid: u32,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 1800)]
    seconds: u64,
    /// Operations started per second, all kinds together.
    #[arg(long, default_value_t = 400)]
    rate: u32,
    /// Seconds between reports.
    #[arg(long, default_value_t = 60)]
    every: u64,
    /// SIP phones (accounts registered over UDP), refreshed in turn.
    #[arg(long, default_value_t = 50)]
    phones: usize,
    /// Most operations in flight; past it a start counts as an error (the relay is behind).
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(errors) => {
            eprintln!("soak: {errors} errors");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the soak: the number of errors.
async fn run(args: Args) -> Result<u64> {
    if !(1..=100_000).contains(&args.rate) {
        bail!("--rate must be 1 to 100000");
    }
    if !(1..=86_400).contains(&args.seconds) || args.every == 0 || args.phones == 0 {
        bail!("--seconds must be 1 to 86400, --every and --phones above 0");
    }
    let sip = sip::parse_addr(&args.sip)?;
    let world = Arc::new(World::setup(args.http, sip, args.phones).await?);
    let stats = Arc::new(Stats::default());
    let slots: Vec<usize> = WEIGHTS
        .iter()
        .enumerate()
        .flat_map(|(i, w)| std::iter::repeat_n(i, *w as usize))
        .collect();
    print_header(&args);
    report(0, args.pid, &stats, &mut 0)?;

    let permits = Arc::new(Semaphore::new(args.max_in_flight));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    // A pause of the driver (a loaded machine) must not turn into a burst of every missed start
    // at once: the first run had 600 start together after a 3 s stall, 489 refused by
    // --max-in-flight. The ops column shows the rate actually offered.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_report = started + Duration::from_secs(args.every);
    let (mut n, mut minute, mut errors) = (0usize, 0u64, 0u64);
    while Instant::now() < end {
        ticker.tick().await;
        let op = slots[(n * 7919) % slots.len()];
        n += 1;
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let (world, stats) = (world.clone(), stats.clone());
                tokio::spawn(async move {
                    match world.run(op).await {
                        Ok(took) => stats.ok(NAMES[op], took),
                        Err(e) => stats.error(NAMES[op], &format!("{e:#}")),
                    }
                    drop(permit);
                });
            }
            Err(_) => stats.error(NAMES[op], "not started: too many in flight"),
        }
        if Instant::now() >= next_report {
            minute += 1;
            report(minute, args.pid, &stats, &mut errors)?;
            next_report += Duration::from_secs(args.every);
        }
    }
    // Let what is in flight finish, then the last figures, then again once idle.
    let _ = tokio::time::timeout(
        Duration::from_secs(15),
        permits.acquire_many(args.max_in_flight as u32),
    )
    .await;
    minute += 1;
    report(minute, args.pid, &stats, &mut errors)?;
    // Past the relay's 10 s idle keep-alive limit and the client pool's 5 s: what is still
    // open then is held by the relay, not by idle connections.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (rss, fds) = process(args.pid)?;
    println!(
        "idle 15 s after the load: RSS {:.1} MiB, {fds} open descriptors",
        rss as f64 / 1024.0
    );
    println!("errors in all: {errors}");
    Ok(errors)
}

fn print_header(args: &Args) {
    println!(
        "soak: {} ops/s for {} s against http://{} and sip:{} (pid {}), {} phones; \
         mix per 200 ops: {}",
        args.rate,
        args.seconds,
        args.http,
        args.sip,
        args.pid,
        args.phones,
        NAMES
            .iter()
            .zip(WEIGHTS)
            .map(|(n, w)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("| min | RSS MiB | fds | ops | errors |");
    for name in NAMES {
        print!(" {name} p50/p99 ms |");
    }
    println!();
    print!("|---|---|---|---|---|");
    for _ in NAMES {
        print!("---|");
    }
    println!();
}

/// Prints one row (and the errors by kind under it); adds its errors to `total`.
fn report(minute: u64, pid: u32, stats: &Stats, total: &mut u64) -> Result<()> {
    let (rss, fds) = process(pid)?;
    let mut figures = stats.take();
    let ops: usize = figures.latencies.values().map(Vec::len).sum();
    let errors: u64 = figures.errors.values().sum();
    *total += errors;
    print!(
        "| {minute} | {:.1} | {fds} | {ops} | {errors} |",
        rss as f64 / 1024.0
    );
    for name in NAMES {
        match figures.latencies.get_mut(name) {
            Some(v) if !v.is_empty() => {
                v.sort_by(f64::total_cmp);
                print!(" {:.1}/{:.1} |", percentile(v, 50.0), percentile(v, 99.0));
            }
            _ => print!(" - |"),
        }
    }
    println!();
    for (kind, count) in &figures.errors {
        println!("    error x{count}: {kind}");
    }
    Ok(())
}
