//! Operations endpoints against the real binary: `/metrics` on the HTTP listener for loopback
//! clients only (a client on another address gets 403), on a listener of its own with
//! `--metrics`; webhook deliveries and calls in progress counted; `/healthz`; log lines as
//! JSON with `--log-format json`.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use restsip_e2e::metrics::Scrape;
use restsip_e2e::receiver::Receiver;
use restsip_e2e::{relay_binary, Relay, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// This host's address toward the outside (not loopback), as routing picks it; no packet is
/// sent (a UDP socket is only connected).
fn outside_address() -> IpAddr {
    for target in ["192.0.2.1:9", "203.0.113.1:9", "[2001:db8::1]:9"] {
        let bind = if target.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let Ok(socket) = std::net::UdpSocket::bind(bind) else {
            continue;
        };
        if socket.connect(target).is_ok() {
            if let Ok(local) = socket.local_addr() {
                let ip = local.ip();
                if !ip.is_loopback() && !ip.is_unspecified() {
                    return ip;
                }
            }
        }
    }
    panic!("this test needs a network interface with an address other than loopback");
}

#[tokio::test]
async fn metrics_on_the_http_listener_are_for_loopback_clients_only() {
    // A loopback client reads them: a sign-up counted, a WebSocket open.
    let relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let ws = alice.ws().await.unwrap();
    let open = "restsip_websockets_open";
    let m = Scrape::until(&relay.url("/metrics"), |m| m.sum(open, &[]) == 1.0)
        .await
        .unwrap();
    let signups = [("method", "POST"), ("route", "/user"), ("status", "201")];
    assert_eq!(
        m.sum("restsip_http_requests_total", &signups),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.sum(open, &[]), 1.0, "{}", m.text);
    drop(ws);
    let m = Scrape::until(&relay.url("/metrics"), |m| m.sum(open, &[]) == 0.0)
        .await
        .unwrap();
    assert_eq!(m.sum(open, &[]), 0.0, "{}", m.text);

    // A relay on every address, reached at this host's outside address: a client that is not
    // on loopback is refused, with a problem saying why; health stays open to it.
    let ip = outside_address();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("relay.db").display());
    let any = if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let mut child = tokio::process::Command::new(relay_binary())
        .args(["--http", any, "--database", &db, "--sip", "off"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let bound: SocketAddr = first.rsplit("http://").next().unwrap().parse().unwrap();
    let base = format!("http://{}", SocketAddr::new(ip, bound.port()));
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(kind, "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("--metrics"),
        "{problem}"
    );
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The same relay answers its own loopback clients.
    let local = format!("http://127.0.0.1:{}/metrics", bound.port());
    let m = Scrape::get(&local).await.unwrap();
    assert!(
        m.has(
            "restsip_http_requests_total",
            &[("route", "/metrics"), ("status", "403")]
        ),
        "{}",
        m.text
    );
}

#[tokio::test]
async fn with_metrics_flag_they_are_on_their_own_listener_only() {
    let relay = Relay::start(&["--metrics", "127.0.0.1:0"]).await.unwrap();
    // The startup line names the listener's port.
    let url = relay.announced("metrics on ").unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    relay.user("alice@example.net").await.unwrap();
    let m = Scrape::get(&url).await.unwrap();
    let signups = [("method", "POST"), ("route", "/user"), ("status", "201")];
    assert_eq!(
        m.sum("restsip_http_requests_total", &signups),
        1.0,
        "{}",
        m.text
    );
    let r = relay.anonymous().get("/metrics").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    let r = relay.anonymous().get("/healthz").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
}

#[tokio::test]
async fn json_logs_are_one_json_object_per_line() {
    let relay = Relay::start_logging(&["--log-format", "json"], "info")
        .await
        .unwrap();
    relay.user("alice@example.net").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !relay.log().contains("relay started") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = relay.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
    }
    let started = lines
        .iter()
        .find(|l| l["message"] == "relay started")
        .unwrap_or_else(|| panic!("no start line in {log}"));
    assert_eq!(started["level"], "INFO", "{started}");
    assert_eq!(
        started["http"],
        json!(relay.base.trim_start_matches("http://")),
        "{started}"
    );

    // A flag value other than text or json is refused at start, with why.
    let out = std::process::Command::new(relay_binary())
        .args(["--log-format", "xml", "--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("neither text nor json"), "{stderr}");
}

#[tokio::test]
async fn webhook_deliveries_and_calls_in_progress_are_counted() {
    let relay = Relay::start(&["--webhook-max-backoff", "1"]).await.unwrap();
    let url = relay.url("/metrics");
    let alice = relay.user("alice@example.net").await.unwrap();
    relay.user("bob@example.net").await.unwrap();

    // The receiver refuses the first POST (500), then takes the retry.
    let mut receiver = Receiver::start().await.unwrap();
    receiver.then(1, 500);
    let body = json!({"url": receiver.url, "resource": "/login/bob@example.net"});
    let r = alice.request("POST", "/webhook", Some(body)).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!receiver.next().await.unwrap().accepted());
    assert!(receiver.next_accepted().await.is_ok());
    let deliveries = "restsip_webhook_deliveries_total";
    let m = Scrape::until(&url, |m| {
        m.sum(deliveries, &[("result", "delivered")]) >= 1.0
    })
    .await
    .unwrap();
    assert_eq!(
        m.sum(deliveries, &[("result", "failed")]),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(
        m.sum(deliveries, &[("result", "delivered")]),
        1.0,
        "{}",
        m.text
    );

    // A call context counts as in progress once someone joined it, and no more once left.
    let call = alice
        .request("POST", "/call", Some(json!({})))
        .await
        .unwrap();
    let call = call.body["url"].as_str().unwrap().to_owned();
    let m = Scrape::get(&url).await.unwrap();
    assert_eq!(m.sum("restsip_calls_active", &[]), 0.0, "{}", m.text);
    alice.login(json!({})).await.unwrap();
    let joined = alice
        .request(
            "POST",
            &call,
            Some(json!({"url": "/login/alice@example.net"})),
        )
        .await
        .unwrap();
    assert_eq!(joined.status, 201, "{}", joined.body);
    let m = Scrape::get(&url).await.unwrap();
    assert_eq!(m.sum("restsip_calls_active", &[]), 1.0, "{}", m.text);
    let r = alice.request("DELETE", &call, None).await.unwrap();
    assert!(r.status < 300, "{} {}", r.status, r.body);
    let m = Scrape::get(&url).await.unwrap();
    assert_eq!(m.sum("restsip_calls_active", &[]), 0.0, "{}", m.text);
}

/// A field of a `/proc/.../status` file.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// The CPUs each thread of process `pid` named `name` may run on (`Cpus_allowed_list`).
fn threads_cpus(pid: u32, name: &str) -> Vec<String> {
    let mut lists = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        if status_field(&status, "Name:") == name {
            lists.push(status_field(&status, "Cpus_allowed_list:"));
        }
    }
    lists
}

/// The CPUs of a `Cpus_allowed_list` (`0-1`, `0,2-3`), one by one.
fn cpus_of(list: &str) -> Vec<String> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (u32, u32) = (first.parse().unwrap(), last.parse().unwrap());
                cpus.extend((first..=last).map(|c| c.to_string()));
            }
            None => cpus.push(part.to_owned()),
        }
    }
    cpus
}

#[tokio::test]
async fn pinned_workers_each_have_a_cpu_and_still_serve() {
    // The CPUs this test (and so the relays it starts) may use.
    let everywhere = status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "Cpus_allowed_list:",
    );
    let free = Relay::start(&[]).await.unwrap();
    let lists = threads_cpus(free.pid().unwrap(), "tokio-rt-worker");
    assert!(!lists.is_empty());
    assert!(lists.iter().all(|l| *l == everywhere), "{lists:?}");

    let relay = Relay::start_logging(&["--pin-workers"], "info")
        .await
        .unwrap();
    relay.user("alice@example.net").await.unwrap();
    let r = relay.anonymous().get("/healthz").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Tokio's workers and its blocking pool share a name: one worker per CPU, each on a
    // CPU of its own, and the blocking threads (SQLite's opening, argon2) anywhere.
    let lists = threads_cpus(relay.pid().unwrap(), "tokio-rt-worker");
    let mut single: Vec<String> = lists
        .iter()
        .filter(|l| **l != everywhere)
        .cloned()
        .collect();
    single.sort_by_key(|c| c.parse::<u32>().unwrap_or(u32::MAX));
    let expected = cpus_of(&everywhere);
    if expected.len() > 1 {
        assert_eq!(single, expected, "threads and their CPUs: {lists:?}");
    }
    assert!(
        relay.log().contains("worker threads pinned"),
        "{}",
        relay.log()
    );
}
