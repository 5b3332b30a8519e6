//! The relay under test: the real `relay-server` binary as a child process, on a free loopback
//! port, with a fresh SQLite database in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// How long the relay may take to print where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// What the relay's first stdout line starts with; the address follows.
const LISTENING: &str = "restsip relay listening on http://";

/// A running relay. Dropping it kills the process and removes its database.
pub(crate) struct RelayProcess {
    /// The child process.
    child: Child,
    /// Where it listens (127.0.0.1).
    pub(crate) addr: SocketAddr,
    /// Temporary directory holding the database.
    dir: PathBuf,
}

impl RelayProcess {
    /// Starts `binary` with `--http 127.0.0.1:0`, a new database and `extra` arguments, and waits
    /// for its address.
    pub(crate) async fn start(binary: &Path, extra: &[String]) -> Result<Self> {
        if !binary.is_file() {
            bail!(
                "no relay binary at {}: build it with `cargo build --release -p relay-server` \
                 (bench/rest.sh does), or pass --relay PATH",
                binary.display()
            );
        }
        let dir = temp_dir()?;
        let database = format!("sqlite:{}", dir.join("bench.db").display());
        let mut command = Command::new(binary);
        command
            .args(["--http", "127.0.0.1:0", "--database", &database])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Per-request logging would be part of what is measured; keep the relay quiet unless
        // the caller asks otherwise.
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("cannot start {}", binary.display()));
            }
        };
        let mut relay = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        relay.addr = relay.read_addr().await?;
        Ok(relay)
    }

    /// Reads the first stdout line and parses the address from it; the rest of stdout is drained
    /// in the background so the relay never blocks on a full pipe.
    async fn read_addr(&mut self) -> Result<SocketAddr> {
        let stdout = self
            .child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("the relay's stdout is not piped"))?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, reader.read_line(&mut line))
            .await
            .context("the relay did not say where it listens within 30 s")?
            .context("reading the relay's stdout")?;
        if read == 0 {
            let status = self.child.wait().await?;
            bail!("the relay exited before listening ({status}); see its messages above");
        }
        drain(reader);
        parse_listening(&line)
    }

    /// The process id, for reading its memory in `/proc` (fanout-bench; rest-bench needs none).
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the relay and waits for it to exit; the database goes when `self` is dropped.
    pub(crate) async fn stop(mut self) -> Result<()> {
        self.child
            .kill()
            .await
            .context("stopping the relay process")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `restsip relay listening on http://127.0.0.1:PORT` → the address.
fn parse_listening(line: &str) -> Result<SocketAddr> {
    let line = line.trim();
    line.strip_prefix(LISTENING)
        .and_then(|addr| addr.trim_end_matches('/').parse().ok())
        .ok_or_else(|| anyhow!("unexpected first line from the relay: {line:?}"))
}

/// Discards whatever else the relay prints on stdout.
fn drain(mut reader: BufReader<ChildStdout>) {
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    });
}

/// A new, empty directory under the system's temporary directory.
fn temp_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("restsip-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line() {
        let addr = parse_listening("restsip relay listening on http://127.0.0.1:4321\n");
        assert_eq!(addr.ok(), Some(SocketAddr::from(([127, 0, 0, 1], 4321))));
        assert!(parse_listening("something else").is_err());
    }
}
