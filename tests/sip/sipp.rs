//! Running sipp scenarios of tests/sip/scenarios against a relay.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::process::Command;

/// A sipp transport: `u1` (UDP) or `t1` (TCP), one socket for the scenario.
pub(crate) type Mode = &'static str;
/// UDP.
pub(crate) const UDP: Mode = "u1";
/// TCP.
pub(crate) const TCP: Mode = "t1";

/// A local port free for both UDP and TCP, for sipp's `-p` (so a phone keeps its Contact).
pub(crate) fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("sip/scenarios/{name}.xml"))
}

/// One sipp run: a scenario, once, from `port`, with `-key` values and digest credentials.
pub(crate) struct Run<'a> {
    /// The relay's SIP address.
    pub(crate) relay: SocketAddr,
    /// Scenario file name without `.xml`.
    pub(crate) scenario: &'a str,
    /// UDP or TCP.
    pub(crate) mode: Mode,
    /// sipp's local port.
    pub(crate) port: u16,
    /// `-key NAME VALUE` pairs.
    pub(crate) keys: &'a [(&'a str, &'a str)],
    /// `-au` and `-ap`.
    pub(crate) auth: Option<(&'a str, &'a str)>,
}

impl Run<'_> {
    /// Runs sipp to the end; Ok when the scenario passed (exit status 0) within 20 s.
    pub(crate) async fn pass(&self) -> Result<()> {
        self.pass_within(20).await
    }

    /// [`Run::pass`] for a scenario that may take up to `seconds` (one that waits out a
    /// SIP timer).
    pub(crate) async fn pass_within(&self, seconds: u32) -> Result<()> {
        self.pass_with(seconds, &[]).await
    }

    /// [`Run::pass_within`] with more sipp options (`-aa`: NOTIFYs the scenario does not
    /// expect are answered 200 instead of failing it).
    pub(crate) async fn pass_with(&self, seconds: u32, options: &[&str]) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let errors = dir.path().join("errors.log");
        let mut cmd = Command::new("sipp");
        cmd.arg(self.relay.to_string())
            .arg("-sf")
            .arg(scenario(self.scenario))
            .args(["-t", self.mode, "-i", "127.0.0.1", "-m", "1", "-nostdin"])
            .args(["-p", &self.port.to_string()])
            .args(["-timeout", &format!("{seconds}s"), "-timeout_error"])
            .args(["-recv_timeout", "5000"])
            .args(options)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in self.keys {
            cmd.args(["-key", name, value]);
        }
        if let Some((user, password)) = self.auth {
            cmd.args(["-au", user, "-ap", password]);
        }
        let out = cmd.output().await.context(
            "running sipp: install it with scripts/setup.sh (Debian package sip-tester)",
        )?;
        if !out.status.success() {
            let log = std::fs::read_to_string(&errors).unwrap_or_default();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let tail: String = stdout.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            bail!(
                "sipp {} over {} failed ({}):\n{log}\n{}\n{tail}",
                self.scenario,
                self.mode,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// True once something listens on `port` (a UAS sipp started).
fn bound(mode: Mode, port: u16) -> bool {
    if mode == TCP {
        TcpListener::bind(("127.0.0.1", port)).is_err()
    } else {
        UdpSocket::bind(("127.0.0.1", port)).is_err()
    }
}

/// Registers a sipp phone for `aor` from `port` (password `pw-{aor}`, as the harness signs
/// users up), for two minutes.
pub(crate) async fn register_phone(relay: SocketAddr, mode: Mode, aor: &str, port: u16) {
    let password = format!("pw-{aor}");
    Run {
        relay,
        scenario: "register",
        mode,
        port,
        keys: &[("aor", aor), ("expires", "120")],
        auth: Some((aor, &password)),
    }
    .pass()
    .await
    .unwrap();
}

/// Starts the sipp UAS `scenario` on `port` and returns once it listens; the handle ends with
/// the scenario's outcome.
pub(crate) async fn spawn_uas(
    relay: SocketAddr,
    mode: Mode,
    port: u16,
    scenario: &'static str,
) -> tokio::task::JoinHandle<Result<()>> {
    let uas = tokio::spawn(async move {
        Run {
            relay,
            scenario,
            mode,
            port,
            keys: &[],
            auth: None,
        }
        .pass()
        .await
    });
    let deadline = tokio::time::Instant::now() + restsip_e2e::WAIT;
    while !bound(mode, port) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    uas
}

/// Runs `scenario` (one that writes the status line of the final response it got to
/// `-key out FILE`) once from a fresh port with `keys`; that status line.
pub(crate) async fn final_status(
    relay: SocketAddr,
    scenario: &str,
    mode: Mode,
    keys: &[(&str, &str)],
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("status");
    let out_arg = out.to_string_lossy().into_owned();
    let mut all = keys.to_vec();
    all.push(("out", &out_arg));
    Run {
        relay,
        scenario,
        mode,
        port: free_port(),
        keys: &all,
        auth: None,
    }
    .pass()
    .await
    .unwrap();
    std::fs::read_to_string(&out).unwrap().trim().to_owned()
}
