//! `rest-bench`: measures the restsip relay's REST API on loopback and prints the figures next
//! to those of bare axum doing the same kind of work. See `bench/README.md`.
//!
//! 1. `GET /login/{email}` with Basic auth, on N keep-alive connections.
//! 2. `SEND /login/{email}/{id}`, timed until the message arrives on the recipient's WebSocket.
//! 3. `GET /login/{email}` again, each on a new connection (`--only fresh`; not in the default
//!    run).

mod http;
mod inbox;
mod load;
mod reference;
mod relay;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use hyper::header::HeaderValue;
use hyper::Method;
use restsip_protocol::{Contact, LoginCreated};
use serde_json::json;

use crate::http::{basic, Api, RequestTemplate};
use crate::inbox::Listener;
use crate::load::{Deliver, Fetch, FetchFresh, Measured, Operation, Plan};
use crate::reference::Reference;
use crate::relay::RelayProcess;
use crate::report::Row;

/// The relay built by `cargo build --release -p relay-server` in this workspace.
const DEFAULT_RELAY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/release/relay-server"
);

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "rest-bench",
    about = "Benchmark of the restsip relay's REST API, side by side with bare axum"
)]
struct Args {
    /// The relay binary [default: target/release/relay-server of this workspace].
    #[arg(long, value_name = "PATH")]
    relay: Option<PathBuf>,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    seconds: f64,
    /// Unmeasured seconds before each run's measurement starts.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    warmup: f64,
    /// Concurrent keep-alive connections of the GET scenario.
    #[arg(long, default_value_t = 32, value_name = "N")]
    connections: usize,
    /// Concurrent senders (connections) of the SEND scenario.
    #[arg(long, default_value_t = 8, value_name = "N")]
    senders: usize,
    /// Most requests measured per run.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    max_requests: u64,
    /// Rounds: every scenario runs this many times, on the relay then on the reference each
    /// time, and the median of the rounds' throughput ratios is printed last (the reference's
    /// own figure moves by a third from run to run on a shared 2-core machine).
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: usize,
    /// An already running relay (`http://127.0.0.1:PORT`): no relay is started, and only the
    /// SEND scenario runs on it, with users of their own (so several clients can share one
    /// relay or one database) and no reference.
    #[arg(long, value_name = "URL")]
    relay_url: Option<String>,
    /// One scenario only (on the relay, then on the reference), e.g. to count one scenario's
    /// instructions with the relay under valgrind.
    #[arg(long, value_enum, value_name = "SCENARIO")]
    only: Option<Only>,
}

/// A scenario of `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// `GET /login/{email}`.
    Get,
    /// SEND -> WebSocket.
    Send,
    /// `GET /login/{email}`, each request on a connection of its own (`--connections` at once).
    Fresh,
}

impl Args {
    /// The plan of a run with `connections` connections.
    fn plan(&self, connections: usize) -> Result<Plan> {
        Ok(Plan {
            connections,
            warmup: seconds("--warmup", self.warmup)?,
            measure: seconds("--seconds", self.seconds)?,
            max_requests: self.max_requests,
        })
    }

    /// Refuses settings that would not give a bounded, meaningful run.
    fn check(&self) -> Result<()> {
        if self.seconds <= 0.0 {
            bail!("--seconds must be above 0");
        }
        for (flag, n) in [
            ("--connections", self.connections),
            ("--senders", self.senders),
        ] {
            if !(1..=1000).contains(&n) {
                bail!("{flag} must be 1 to 1000");
            }
        }
        if self.max_requests == 0 {
            bail!("--max-requests must be above 0");
        }
        if !(1..=100).contains(&self.rounds) {
            bail!("--rounds must be 1 to 100");
        }
        if self.rounds > 1 && self.relay_url.is_some() {
            bail!("--rounds compares with the reference, which --relay-url does not run");
        }
        Ok(())
    }
}

/// `value` seconds, if finite and within an hour.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if !(0.0..=3600.0).contains(&value) {
        bail!("{flag} must be 0 to 3600 seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

/// The users, credentials and resources the scenarios use on the relay.
struct Fixture {
    /// Basic credentials of user A, who reads and sends.
    auth_a: HeaderValue,
    /// Basic credentials of user B, who is logged in and receives.
    auth_b: HeaderValue,
    /// B's email.
    email_b: String,
    /// B's contact resource, `/login/{emailB}/{id}`.
    contact_path: String,
    /// The relay's answer to `GET /login/{emailB}`, which the reference serves.
    contacts: Vec<Contact>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rest-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    args.check()?;
    if let Some(url) = &args.relay_url {
        return send_only(&args, relay_url(url)?).await;
    }
    let binary = args
        .relay
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RELAY));
    let relay = RelayProcess::start(&binary, &[]).await?;
    print_settings(&args, &binary, relay.addr);
    let rounds = bench(&args, relay.addr).await;
    let stopped = relay.stop().await;
    let rounds = rounds?;
    stopped?;
    for (n, rows) in rounds.iter().enumerate() {
        println!();
        if rounds.len() > 1 {
            println!("round {} of {}:", n + 1, rounds.len());
        }
        report::print_table(rows);
        report::print_ratios(&pairs(rows));
    }
    if rounds.len() > 1 {
        let all: Vec<Vec<(&Row, &Row)>> = rounds.iter().map(|rows| pairs(rows)).collect();
        report::print_medians(&all);
    }
    Ok(())
}

/// A round's rows as (relay, reference) pairs.
fn pairs(rows: &[Row]) -> Vec<(&Row, &Row)> {
    rows.chunks_exact(2)
        .map(|pair| (&pair[0], &pair[1]))
        .collect()
}

fn print_settings(args: &Args, binary: &std::path::Path, relay: SocketAddr) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("restsip REST benchmark");
    println!("  relay      {} on {relay}", binary.display());
    println!(
        "  runs       {} s measured after {} s warm-up, at most {} requests each",
        args.seconds, args.warmup, args.max_requests
    );
    println!(
        "  load       GET: {} keep-alive connections; SEND: {} senders; {cores} CPU cores",
        args.connections, args.senders
    );
}

/// `--relay-url`: the SEND scenario (or with `--only get` / `fresh` that one) alone on a relay
/// someone else started.
async fn send_only(args: &Args, relay: SocketAddr) -> Result<()> {
    print_settings(args, std::path::Path::new("(already running)"), relay);
    // Users of this run only: another client may be signing up on the same database.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tag = format!("-{}-{nanos}", std::process::id());
    let fixture = setup(relay, &tag).await.context("setting up the relay")?;
    let row = match args.only {
        Some(only @ (Only::Get | Only::Fresh)) => {
            let plan = args.plan(args.connections)?;
            get_on(relay, "relay", &fixture, plan, only == Only::Fresh).await?
        }
        _ => send_on_relay(args, relay, &fixture).await?,
    };
    println!();
    report::print_table(&[row]);
    Ok(())
}

/// `http://HOST:PORT` (a trailing `/` allowed) → the address; HOST must be an IP address.
fn relay_url(url: &str) -> Result<SocketAddr> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|addr| addr.parse().ok())
        .with_context(|| format!("--relay-url must be http://IP:PORT, not {url:?}"))
}

/// Sets up the relay, starts the reference, and runs the four measurements `--rounds` times;
/// each round's rows.
async fn bench(args: &Args, relay: SocketAddr) -> Result<Vec<Vec<Row>>> {
    let fixture = setup(relay, "").await.context("setting up the relay")?;
    let reference = Reference::start(fixture.contacts.clone())?;
    let mut rounds = Vec::with_capacity(args.rounds);
    let mut failed = None;
    for _ in 0..args.rounds {
        match scenarios(args, relay, reference.addr, &fixture).await {
            Ok(rows) => rounds.push(rows),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    reference.stop()?;
    failed.map_or(Ok(rounds), Err)
}

/// The four runs: GET then SEND, each on the relay then on the reference.
async fn scenarios(
    args: &Args,
    relay: SocketAddr,
    reference: SocketAddr,
    fixture: &Fixture,
) -> Result<Vec<Row>> {
    let get_plan = args.plan(args.connections)?;
    let send_plan = args.plan(args.senders)?;
    let mut rows = Vec::new();
    if args.only == Some(Only::Send) {
        return send_rows(args, relay, reference, fixture, send_plan).await;
    }
    if args.only == Some(Only::Fresh) {
        let relay = get_on(relay, "relay", fixture, get_plan, true).await?;
        let axum = get_on(reference, "axum", fixture, get_plan, true).await?;
        return Ok(vec![relay, axum]);
    }
    let get_relay = get_on(relay, "relay", fixture, get_plan, false).await?;
    let get_axum = get_on(reference, "axum", fixture, get_plan, false).await?;
    rows.extend([get_relay, get_axum]);
    if args.only != Some(Only::Get) {
        rows.extend(send_rows(args, relay, reference, fixture, send_plan).await?);
    }
    Ok(rows)
}

/// The GET scenario on `server` at `addr`: A reads B's logins, on keep-alive connections or,
/// `fresh`, on a new connection for each request.
async fn get_on(
    addr: SocketAddr,
    server: &'static str,
    fixture: &Fixture,
    plan: Plan,
    fresh: bool,
) -> Result<Row> {
    let path = format!("/login/{}", fixture.email_b);
    let template = RequestTemplate::new(Method::GET, addr, path, Some(&fixture.auth_a))?;
    if fresh {
        let op = FetchFresh { template, addr };
        measure("GET, new connection", server, addr, op, plan).await
    } else {
        measure("GET /login/{email}", server, addr, Fetch { template }, plan).await
    }
}

/// The SEND scenario on the relay, then on the reference.
async fn send_rows(
    args: &Args,
    relay: SocketAddr,
    reference: SocketAddr,
    fixture: &Fixture,
    send_plan: Plan,
) -> Result<Vec<Row>> {
    let send_relay = send_on_relay(args, relay, fixture).await?;

    let inbox = Listener::connect(&format!("ws://{reference}/ws"), None, None)
        .await
        .context("the reference's WebSocket")?;
    let template = RequestTemplate::new(
        Method::POST,
        reference,
        "/send".to_owned(),
        Some(&fixture.auth_a),
    )?;
    let op = Deliver::new(template, inbox.arrivals.clone());
    let send_axum = measure(SEND, "axum", reference, op, send_plan).await?;
    drop(inbox);

    Ok(vec![send_relay, send_axum])
}

/// The SEND scenario on the relay: A sends to B's contact, timed to B's WebSocket.
async fn send_on_relay(args: &Args, relay: SocketAddr, fixture: &Fixture) -> Result<Row> {
    let inbox = Listener::connect(
        &format!("ws://{relay}/ws"),
        Some(&fixture.auth_b),
        Some(&fixture.contact_path),
    )
    .await
    .context("B's WebSocket on the relay")?;
    let send = Method::from_bytes(b"SEND")?;
    let template = RequestTemplate::new(
        send,
        relay,
        fixture.contact_path.clone(),
        Some(&fixture.auth_a),
    )?;
    let op = Deliver::new(template, inbox.arrivals.clone());
    let row = measure(SEND, "relay", relay, op, args.plan(args.senders)?).await;
    drop(inbox);
    row
}

/// The SEND scenario's name in the table.
const SEND: &str = "SEND -> WebSocket";

/// Runs `op` against `addr` as `plan` says, with a progress line on stderr.
async fn measure<O: Operation>(
    scenario: &'static str,
    server: &'static str,
    addr: SocketAddr,
    op: O,
    plan: Plan,
) -> Result<Row> {
    eprintln!(
        "running {scenario} on {server} ({} connections, {:.1} s)...",
        plan.connections,
        (plan.warmup + plan.measure).as_secs_f64()
    );
    let measured: Measured = load::run(addr, Arc::new(op), plan)
        .await
        .with_context(|| format!("{scenario} on {server}"))?;
    Ok(Row {
        scenario,
        server,
        measured,
    })
}

/// Signs up A and B (`alice{tag}@…`, `bob{tag}@…`), logs B in, and reads B's logins as A
/// sees them.
async fn setup(relay: SocketAddr, tag: &str) -> Result<Fixture> {
    let api = Api::new(relay);
    let (email_a, password_a) = (format!("alice{tag}@bench.invalid"), "alice-bench-password");
    let (email_b, password_b) = (format!("bob{tag}@bench.invalid"), "bob-bench-password");
    let (email_a, email_b) = (email_a.as_str(), email_b.as_str());
    for (email, password) in [(email_a, password_a), (email_b, password_b)] {
        let user = json!({ "email": email, "password": password });
        api.call(Method::POST, "/user", None, Some(&user)).await?;
    }
    let auth_a = basic(email_a, password_a)?;
    let auth_b = basic(email_b, password_b)?;
    let login_path = format!("/login/{email_b}");
    let created = api
        .call(Method::POST, &login_path, Some(&auth_b), Some(&json!({})))
        .await?;
    let created: LoginCreated =
        serde_json::from_value(created).context("the answer to POST /login is not a login")?;
    let listed = api
        .call(Method::GET, &login_path, Some(&auth_a), None)
        .await?;
    let contacts: Vec<Contact> =
        serde_json::from_value(listed).context("the answer to GET /login is not a contact list")?;
    Ok(Fixture {
        auth_a,
        auth_b,
        email_b: email_b.to_owned(),
        contact_path: format!("{login_path}/{}", created.id),
        contacts,
    })
}
