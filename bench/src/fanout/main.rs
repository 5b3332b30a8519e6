//! `fanout-bench`: N watchers of one resource on the relay (SSE, then the multiplexed
//! WebSocket), measured beside bare axum serving the same stream (see `reference`). For each
//! it prints the time N clients connecting at once take until all are streaming, the server's
//! memory per watcher (VmRSS before and after, divided by N), and the delivery latency of a
//! change to every watcher: first as the clients, reading all along on the same cores as the
//! server, see it; then with the clients idle during the fan-out and the arrival taken from
//! the kernel's receive timestamps (see `quiet`). See `bench/README.md`.

#[allow(dead_code)]
#[path = "../http.rs"]
mod http;
mod quiet;
mod reference;
#[allow(dead_code)]
#[path = "../relay.rs"]
mod relay;
mod watcher;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use hyper::Method;
use restsip_protocol::{CallCreated, ParticipantCreated, Token};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::http::{basic, Api};
use crate::quiet::Quiet;
use crate::relay::RelayProcess;
use crate::watcher::{Plan, Report, Transport, ROUND};

/// The relay built by `cargo build --release -p relay-server` in this workspace.
const DEFAULT_RELAY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/release/relay-server"
);
/// Longest wait for all watchers to stream, and for a change to reach them all.
const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(
    name = "fanout-bench",
    about = "N watchers of one resource on the relay (SSE and WebSocket), beside bare axum"
)]
struct Args {
    /// The relay binary [default: target/release/relay-server of this workspace].
    #[arg(long, value_name = "PATH")]
    relay: Option<PathBuf>,
    /// Watchers of the resource, all connecting at once.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    watchers: usize,
    /// Changes made (one at a time, each awaited by every watcher).
    #[arg(long, default_value_t = 5, value_name = "N")]
    changes: u32,
    /// Only this transport: sse or ws [default: both].
    #[arg(long, value_name = "NAME")]
    only: Option<String>,
    /// Serve the reference (internal: the benchmark starts itself with it).
    #[arg(long, hide = true)]
    serve_reference: bool,
    /// Checking the method: the reference waits this long before publishing each change, so
    /// both delivery measures must grow by as much.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    reference_delay_ms: u64,
    /// Both servers with their tokio workers pinned one to a CPU: the relay started with
    /// `--pin-workers`, the reference's runtime built the same way.
    #[arg(long)]
    pin_workers: bool,
}

/// One measured run.
struct Row {
    transport: Transport,
    server: &'static str,
    /// Watchers streaming, of those started.
    ready: usize,
    /// From starting all the connections to the last one's first event.
    connect: Duration,
    /// VmRSS growth per watcher (bytes).
    rss_per_watcher: f64,
    /// Delivery latencies of every change to every watcher.
    latencies: Vec<Duration>,
    /// Deliveries that did not arrive.
    missed: usize,
    /// Delivery latencies with the clients idle, from the kernel's receive timestamps.
    quiet: Vec<Duration>,
    /// Of those, the ones whose read also held later bytes (a keep-alive): maybe late.
    quiet_trailing: usize,
    /// Quiet deliveries that did not arrive.
    quiet_missed: usize,
    /// The longest wait for the server to fall idle after a quiet change.
    quiet_wait: Duration,
    /// The server's CPU time over the quiet changes (from sending each to its being idle).
    quiet_cpu: Duration,
    /// Quiet changes made.
    quiet_changes: u32,
    /// The first failure, if any.
    failure: Option<String>,
}

/// A server under test: how to make a change, and its process.
struct Server {
    addr: SocketAddr,
    pid: u32,
    /// The stream's path.
    path: String,
    /// `Authorization` of the watchers.
    auth: Option<String>,
    /// `PUT` here with `{"session": marker}` to make a change.
    change_path: String,
    /// Credentials of the change.
    change_auth: Option<hyper::header::HeaderValue>,
    /// Keeps the relay's process alive (and kills it when dropped).
    _relay: Option<RelayProcess>,
    /// Keeps the reference's process alive (and kills it when dropped).
    _reference: Option<Child>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The clients run free; the reference's workers are pinned as the relay's are.
    let runtime = restsip_relay::runtime::build(args.serve_reference && args.pin_workers).map(
        |(runtime, placement)| {
            if let restsip_relay::runtime::Placement::NotPinned(why) = placement {
                eprintln!("fanout-bench: the reference's workers are not pinned: {why}");
            }
            runtime
        },
    );
    let result = runtime.map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            if args.serve_reference {
                reference::serve(Duration::from_millis(args.reference_delay_ms)).await
            } else {
                run(args).await
            }
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fanout-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if !(1..=60_000).contains(&args.watchers) || !(1..=1000).contains(&args.changes) {
        bail!("--watchers must be 1 to 60000 and --changes 1 to 1000");
    }
    let transports = match args.only.as_deref() {
        None => vec![Transport::Sse, Transport::Ws],
        Some("sse") => vec![Transport::Sse],
        Some("ws") => vec![Transport::Ws],
        Some(other) => bail!("--only must be sse or ws, not {other}"),
    };
    let binary = args
        .relay
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RELAY));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("restsip fan-out benchmark");
    println!("  relay      {}", binary.display());
    if args.pin_workers {
        println!(
            "  workers    pinned one to a CPU, the relay's (--pin-workers) and the reference's"
        );
    }
    println!(
        "  load       {} watchers of one call, {} changes; {cores} CPU cores; load average {}",
        args.watchers,
        args.changes,
        load_average()
    );
    let mut rows = Vec::new();
    for transport in transports {
        for server in ["relay", "axum"] {
            eprintln!("running {} on {server}...", transport.name());
            let started = match server {
                "relay" => start_relay(&binary, args.watchers, args.pin_workers).await,
                _ => start_reference(args.reference_delay_ms, args.pin_workers).await,
            }
            .with_context(|| format!("starting {server}"))?;
            rows.push(measure(&started, transport, server, &args).await?);
        }
    }
    println!();
    print_table(&rows);
    println!("  load average after: {}", load_average());
    Ok(())
}

/// Starts the relay with room for the watchers, and sets up a call with one participant whose
/// session the changes rewrite.
async fn start_relay(binary: &std::path::Path, watchers: usize, pin: bool) -> Result<Server> {
    let room = (watchers + 64).to_string();
    let extra = [
        // SIP on a free port: a fixed 5060 fails while another relay runs on the machine.
        "--sip",
        "127.0.0.1:0",
        "--max-connections",
        &room,
        "--max-connections-per-ip",
        &room,
        "--max-streams-per-user",
        &room,
    ]
    .map(str::to_owned);
    let pinned = pin.then(|| "--pin-workers".to_owned());
    let extra: Vec<String> = extra.into_iter().chain(pinned).collect();
    let relay = RelayProcess::start(binary, &extra).await?;
    let api = Api::new(relay.addr);
    let (email, password) = ("fan@bench.invalid", "fan-bench-password");
    api.call(
        Method::POST,
        "/user",
        None,
        Some(&json!({ "email": email, "password": password })),
    )
    .await?;
    let auth = basic(email, password)?;
    let login = format!("/login/{email}");
    api.call(Method::POST, &login, Some(&auth), Some(&json!({})))
        .await?;
    let call: CallCreated = serde_json::from_value(
        api.call(Method::POST, "/call", Some(&auth), Some(&json!({})))
            .await?,
    )?;
    let joined: ParticipantCreated = serde_json::from_value(
        api.call(
            Method::POST,
            &call.url,
            Some(&auth),
            Some(&json!({ "url": login, "session": "start" })),
        )
        .await?,
    )?;
    // Watchers show a bearer token, as browsers do (checking it costs no argon2).
    let token: Token =
        serde_json::from_value(api.call(Method::POST, "/token", Some(&auth), None).await?)?;
    Ok(Server {
        addr: relay.addr,
        pid: relay.pid().ok_or_else(|| anyhow!("the relay has no pid"))?,
        path: call.url,
        auth: Some(format!("Bearer {}", token.token)),
        change_path: joined.url,
        change_auth: Some(auth),
        _relay: Some(relay),
        _reference: None,
    })
}

/// Starts this binary as the reference server.
async fn start_reference(delay_ms: u64, pin: bool) -> Result<Server> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("--serve-reference")
        .arg(format!("--reference-delay-ms={delay_ms}"))
        .args(pin.then_some("--pin-workers"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
        .await
        .context("the reference did not start in 10 s")??;
    let addr = line
        .trim()
        .strip_prefix(reference::LISTENING)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("unexpected line from the reference: {line:?}"))?;
    Ok(Server {
        addr,
        pid: child
            .id()
            .ok_or_else(|| anyhow!("the reference has no pid"))?,
        path: "/call/reference".to_owned(),
        auth: None,
        change_path: "/change/reference".to_owned(),
        change_auth: None,
        _relay: None,
        _reference: Some(child),
    })
}

/// Connects all the watchers at once, waits for them to stream, reads the memory, then makes
/// the changes one at a time.
async fn measure(
    server: &Server,
    transport: Transport,
    name: &'static str,
    args: &Args,
) -> Result<Row> {
    let n = args.watchers;
    let (hand_over, hand_over_rx) = watch::channel(false);
    let plan = Arc::new(Plan {
        addr: server.addr,
        transport,
        path: server.path.clone(),
        auth: server.auth.clone(),
        hand_over: hand_over_rx,
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss(server.pid)?;
    let (tx, mut reports) = mpsc::unbounded_channel();
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(watcher::run(plan.clone(), tx.clone())))
        .collect();
    drop(tx);
    let mut row = Row {
        transport,
        server: name,
        ready: 0,
        connect: Duration::ZERO,
        rss_per_watcher: 0.0,
        latencies: Vec::with_capacity(n * args.changes as usize),
        missed: 0,
        quiet: Vec::with_capacity(n * args.changes as usize),
        quiet_trailing: 0,
        quiet_missed: 0,
        quiet_wait: Duration::ZERO,
        quiet_cpu: Duration::ZERO,
        quiet_changes: 0,
        failure: None,
    };
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while row.ready + failed < n {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(Report::Ready(at))) => {
                row.ready += 1;
                row.connect = row.connect.max(at - start);
            }
            Ok(Some(Report::Failed(e))) => {
                failed += 1;
                row.failure.get_or_insert(e);
            }
            Ok(Some(Report::Change(..) | Report::Quiet(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss(server.pid)?;
    row.rss_per_watcher = rss_after.saturating_sub(rss_before) as f64 / row.ready.max(1) as f64;
    let api = Api::new(server.addr);
    for round in 1..=args.changes {
        let sent = Instant::now();
        change(server, &api, round).await?;
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen < row.ready {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(Report::Change(r, at))) if r == round => {
                    seen += 1;
                    row.latencies.push(at - sent);
                }
                Ok(Some(Report::Failed(e))) => {
                    row.failure.get_or_insert(e);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        row.missed += row.ready - seen;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same watchers again, idle during each change.
    hand_over.send_replace(true);
    let mut sockets = Vec::with_capacity(row.ready);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sockets.len() < row.ready {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(Report::Quiet(quiet))) => sockets.push(*quiet),
            Ok(Some(Report::Failed(e))) => {
                row.failure.get_or_insert(e);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    for task in tasks {
        task.abort();
    }
    for k in 1..=args.changes {
        let round = args.changes + k;
        sockets = quiet_round(server, &api, sockets, round, &mut row).await?;
    }
    Ok(row)
}

/// Change `round`: the watched participant's session becomes the round's marker.
async fn change(server: &Server, api: &Api, round: u32) -> Result<()> {
    let marker = format!("{}{round}", String::from_utf8_lossy(ROUND));
    api.call(
        Method::PUT,
        &server.change_path,
        server.change_auth.as_ref(),
        Some(&json!({ "session": marker })),
    )
    .await
    .with_context(|| format!("change {round}"))?;
    Ok(())
}

/// One change with the clients idle: every socket drained first, the change made, the server
/// left alone until idle, then every socket read for the change's kernel receive timestamp.
async fn quiet_round(
    server: &Server,
    api: &Api,
    sockets: Vec<Quiet>,
    round: u32,
    row: &mut Row,
) -> Result<Vec<Quiet>> {
    let sockets = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0; 64 * 1024];
        for quiet in &sockets {
            quiet::drain(&quiet.socket, &mut buf)?;
        }
        anyhow::Ok(sockets)
    })
    .await??;
    let cpu_before = quiet::cpu_ticks(server.pid)?;
    let sent = SystemTime::now();
    change(server, api, round).await?;
    let waited = quiet::wait_idle(server.pid, Duration::from_secs(5)).await?;
    row.quiet_wait = row.quiet_wait.max(waited);
    let ticks = quiet::cpu_ticks(server.pid)?.saturating_sub(cpu_before);
    row.quiet_cpu += Duration::from_secs_f64(ticks as f64 / quiet::ticks_per_second() as f64);
    row.quiet_changes += 1;
    let (sockets, got) = tokio::task::spawn_blocking(move || {
        let got = quiet::collect(&sockets, round, WAIT);
        (sockets, got)
    })
    .await?;
    for arrival in got.arrivals {
        let latency = arrival
            .at
            .duration_since(sent)
            .map_err(|_| anyhow!("a change arrived before it was sent (clock stepped?)"))?;
        row.quiet.push(latency);
        row.quiet_trailing += usize::from(arrival.trailing);
    }
    row.quiet_missed += got.missed;
    if let Some(e) = got.failure {
        row.failure.get_or_insert(e);
    }
    Ok(sockets)
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/PID/status`).
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Nearest-rank percentile of sorted `values`, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn print_table(rows: &[Row]) {
    println!(
        "| transport | server | streaming | all streaming after s | RSS per watcher KB | p50 ms | p90 ms | p99 ms | max ms | missed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let mut sorted = row.latencies.clone();
        sorted.sort();
        println!(
            "| {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            row.transport.name(),
            row.server,
            row.ready,
            row.connect.as_secs_f64(),
            row.rss_per_watcher / 1024.0,
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            row.missed
        );
    }
    println!();
    println!(
        "Delivery with the clients idle during the fan-out (arrival = kernel receive timestamp):"
    );
    println!(
        "| transport | server | p50 ms | p90 ms | p99 ms | max ms | p99 vs axum | missed | maybe late | idle after s | server CPU ms per change | µs per watcher |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let p99 = |row: &Row| {
        let mut sorted = row.quiet.clone();
        sorted.sort();
        percentile(&sorted, 99.0)
    };
    for row in rows {
        let mut sorted = row.quiet.clone();
        sorted.sort();
        let axum = rows
            .iter()
            .find(|r| r.transport == row.transport && r.server == "axum")
            .map_or(f64::NAN, p99);
        let cpu_ms = row.quiet_cpu.as_secs_f64() * 1000.0 / f64::from(row.quiet_changes.max(1));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}× | {} | {} | {:.1} | {:.0} | {:.1} |",
            row.transport.name(),
            row.server,
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            p99(row) / axum,
            row.quiet_missed,
            row.quiet_trailing,
            row.quiet_wait.as_secs_f64(),
            cpu_ms,
            cpu_ms * 1000.0 / row.ready.max(1) as f64
        );
    }
    for row in rows {
        if let Some(failure) = &row.failure {
            println!(
                "  {} on {}: first failure: {failure}",
                row.transport.name(),
                row.server
            );
        }
    }
}
