//! baresip (Debian's `baresip-core`, 1.0.0) as an independent softphone for the interop tests:
//! started headless in a fresh configuration directory with one account registered at the
//! relay, and driven over its `ctrl_tcp` module (netstring-framed JSON commands, the same
//! names as the menu's long commands: `dial`, `accept`, `hangup`, `message`, `reginfo`,
//! `contacts`, `quit`; its events such as `CALL_INCOMING` come over the same connection).
//! What the phone shows its user (a received MESSAGE is only printed, 1.0 has no event for it)
//! comes from the `cons` UI module over TCP. The process runs with `-s` (SIP trace) and its
//! output goes to `baresip.log` in the directory; its end is printed when a test panics with
//! the phone alive, so errors here do not repeat it.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::WAIT;

/// The baresip binary: `baresip` on the PATH (scripts/setup.sh installs `baresip-core`), or
/// `RESTSIP_BARESIP_BIN`.
pub fn binary() -> PathBuf {
    std::env::var_os("RESTSIP_BARESIP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("baresip"))
}

/// Where baresip's modules are (`RESTSIP_BARESIP_MODULES`, else Debian's path).
fn module_path() -> String {
    std::env::var("RESTSIP_BARESIP_MODULES")
        .unwrap_or_else(|_| "/usr/lib/baresip/modules".to_owned())
}

/// The SIP transport of the phone's account (and of everything it sends the relay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// The URI parameter value.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// A phone to start: one account at the relay and at most one contact.
pub struct Phone<'a> {
    /// The relay's SIP address (registrar and outbound proxy).
    pub relay: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The account's email: the AoR `sip:{email}` and the digest user name.
    pub email: &'a str,
    /// The account's password.
    pub password: &'a str,
    /// The phone's one contact, `sip:` + this address (the current contact: the target of the
    /// `message` command), and whether the phone watches its presence (`;presence=p2p`: a
    /// SUBSCRIBE through the outbound proxy, the relay).
    pub contact: Option<(&'a str, bool)>,
    /// The SIP port (UDP and TCP) to listen on; None: a free one. (A phone started again on
    /// the port of one that was killed is that phone restarted.)
    pub sip_port: Option<u16>,
}

/// A local port free for both UDP and TCP (baresip's SIP and `cons` listen on both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(udp) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", addr.port())).is_ok() {
            return addr.port();
        }
    }
    panic!("no port free for both UDP and TCP");
}

impl Phone<'_> {
    /// Writes the configuration, starts baresip and connects to its control and console
    /// ports. The account starts registering at once; see [`Baresip::registered`].
    ///
    /// Free ports are only free when looked at: baresip also binds SIP over TLS on its SIP
    /// port + 1, and another test's socket may take any of them before baresip does. Such a
    /// start is tried again on new ports (a port the test chose is not changed).
    pub async fn start(&self) -> Result<Baresip> {
        let mut tries = 0;
        loop {
            match self.start_once().await {
                Err(e)
                    if tries < 5
                        && self.sip_port.is_none()
                        && e.to_string().contains("Address already in use") =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(&self) -> Result<Baresip> {
        let dir = tempfile::tempdir()?;
        let sip_port = self.sip_port.unwrap_or_else(free_port);
        let ctrl_port = free_port();
        let cons_port = free_port();
        let modules = module_path();
        // No audio device: aubridge is both the source and the player (a call's received
        // audio is what it sends; nothing is played or recorded anywhere). `net_interface`
        // keeps the media addresses in the SDP on the loopback.
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             net_interface\t\t127.0.0.1\n\
             call_local_timeout\t120\n\
             call_max_calls\t\t4\n\
             audio_player\t\taubridge,play\n\
             audio_source\t\taubridge,play\n\
             audio_alert\t\taubridge,alert\n\
             module_path\t\t{modules}\n\
             module\t\t\tg711.so\n\
             module\t\t\taubridge.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tcontact.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tpresence.so\n\
             module_app\t\tcons.so\n\
             module_app\t\tctrl_tcp.so\n\
             cons_listen\t\t127.0.0.1:{cons_port}\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n"
        );
        std::fs::write(dir.path().join("config"), config)?;
        // The AoR is the email; the registrar (the Request-URI's domain) is reached through
        // the outbound proxy, the relay. `answermode=manual`: a call rings until `accept`.
        let transport = self.transport.name();
        let account = format!(
            "<sip:{email};transport={transport}>;auth_user={email};auth_pass={password};\
             outbound=\"sip:{relay};transport={transport}\";regint=600;answermode=manual\n",
            email = self.email,
            password = self.password,
            relay = self.relay,
        );
        std::fs::write(dir.path().join("accounts"), account)?;
        let contacts = match self.contact {
            Some((address, true)) => format!("<sip:{address}>;presence=p2p\n"),
            Some((address, false)) => format!("<sip:{address}>\n"),
            None => String::new(),
        };
        std::fs::write(dir.path().join("contacts"), contacts)?;

        let log_path = dir.path().join("baresip.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary())
            .arg("-f")
            .arg(dir.path())
            .arg("-s")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary().display()))?;
        let mut phone = Baresip {
            child,
            dir,
            log_path,
            sip_port,
            aor: format!("sip:{}", self.email),
            ctrl: None,
            ctrl_buffer: Vec::new(),
            events: VecDeque::new(),
            seen: Vec::new(),
            cons: None,
            cons_buffer: Vec::new(),
            ui: Vec::new(),
            ui_read: 0,
            token: 0,
        };
        phone.ctrl = Some(phone.connect(ctrl_port).await?);
        phone.cons = Some(phone.connect(cons_port).await?);
        Ok(phone)
    }
}

/// A running baresip.
pub struct Baresip {
    /// The process.
    child: Child,
    /// Its configuration directory (and log).
    dir: tempfile::TempDir,
    /// stdout and stderr, with the SIP trace.
    log_path: PathBuf,
    /// Its SIP port (UDP and TCP) on 127.0.0.1.
    pub sip_port: u16,
    /// `sip:{email}`.
    pub aor: String,
    /// The `ctrl_tcp` connection.
    ctrl: Option<TcpStream>,
    /// Bytes read from it, not yet a whole netstring.
    ctrl_buffer: Vec<u8>,
    /// Events read while waiting for something else, oldest first.
    events: VecDeque<Value>,
    /// Every event read (for failure messages).
    seen: Vec<String>,
    /// The `cons` connection: what the phone shows its user.
    cons: Option<TcpStream>,
    /// Bytes read from it, not yet a whole line.
    cons_buffer: Vec<u8>,
    /// The lines shown so far.
    ui: Vec<String>,
    /// How many of `ui` a wait has consumed.
    ui_read: usize,
    /// The last command token.
    token: u64,
}

impl Baresip {
    /// Connects to a port of the process, retrying while it starts.
    async fn connect(&mut self, port: u16) -> Result<TcpStream> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    if let Some(status) = self.child.try_wait()? {
                        bail!("baresip exited ({status}):\n{}", self.log_tail());
                    }
                    if tokio::time::Instant::now() >= deadline {
                        bail!(
                            "baresip's port {port} did not open ({e}):\n{}",
                            self.log_tail()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The whole log so far (baresip's output and SIP trace).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The end of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let start = log.len().saturating_sub(12_000);
        let start = (start..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(0);
        format!(
            "--- baresip log ({}) ---\n{}",
            self.dir.path().display(),
            &log[start..]
        )
    }

    /// The SIP messages of the trace (`-s`), in order.
    pub fn trace(&self) -> Vec<Traced> {
        parse_trace(&self.log())
    }

    /// Waits until the trace has a message that `matches`; returns it.
    pub async fn traced(&self, matches: impl Fn(&Traced) -> bool) -> Result<Traced> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(m) = self.trace().into_iter().find(|m| matches(m)) {
                return Ok(m);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("no such SIP message in the trace within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a command (`params` after its name, as typed in the menu) and returns its output;
    /// an error when baresip answers `ok: false`. Events that arrive meanwhile are kept.
    pub async fn command(&mut self, command: &str, params: &str) -> Result<String> {
        self.token += 1;
        let token = self.token.to_string();
        let mut frame = json!({"command": command, "token": token});
        if !params.is_empty() {
            frame["params"] = Value::String(params.to_owned());
        }
        let text = frame.to_string();
        let ctrl = self.ctrl.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        ctrl.write_all(format!("{}:{text},", text.len()).as_bytes())
            .await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = self
                .next_frame(deadline)
                .await
                .with_context(|| format!("no answer to `{command} {params}`"))?;
            if frame["response"] == true && frame["token"] == token.as_str() {
                let data = frame["data"].as_str().unwrap_or_default().to_owned();
                if frame["ok"] != true {
                    bail!("`{command} {params}` failed: {data}");
                }
                return Ok(data);
            }
            if frame["event"] == true {
                self.events.push_back(frame);
            }
        }
    }

    /// The first event of `kind` (e.g. `CALL_ESTABLISHED`) not yet waited for, within
    /// [`WAIT`]; the events before it stay for later waits.
    pub async fn event(&mut self, kind: &str) -> Result<Value> {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return Ok(self.events.remove(i).unwrap_or_default());
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = match self.next_frame(deadline).await {
                Ok(frame) => frame,
                Err(e) => bail!("no {kind} event ({e}); events: {:?}", self.seen),
            };
            if frame["event"] != true {
                continue;
            }
            if frame["type"] == kind {
                return Ok(frame);
            }
            self.events.push_back(frame);
        }
    }

    /// The next netstring frame of `ctrl_tcp`, as JSON.
    async fn next_frame(&mut self, deadline: tokio::time::Instant) -> Result<Value> {
        loop {
            if let Some(frame) = take_netstring(&mut self.ctrl_buffer)? {
                let value: Value = serde_json::from_slice(&frame)
                    .with_context(|| String::from_utf8_lossy(&frame).into_owned())?;
                if value["event"] == true {
                    self.seen.push(format!(
                        "{} {}",
                        value["type"].as_str().unwrap_or_default(),
                        value["param"].as_str().unwrap_or_default()
                    ));
                }
                return Ok(value);
            }
            let ctrl = self.ctrl.as_mut().ok_or_else(|| anyhow!("not connected"))?;
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, ctrl.read(&mut buf))
                .await
                .map_err(|_| anyhow!("nothing from ctrl_tcp within {WAIT:?}"))??;
            if n == 0 {
                bail!("ctrl_tcp closed the connection");
            }
            self.ctrl_buffer.extend_from_slice(&buf[..n]);
        }
    }

    /// Waits until the phone shows its user a line containing `text` (not one an earlier wait
    /// returned); returns the line.
    pub async fn shows(&mut self, text: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.ui[self.ui_read..]
                .iter()
                .position(|l| l.contains(text))
            {
                let line = self.ui[self.ui_read + i].clone();
                self.ui_read += i + 1;
                return Ok(line);
            }
            let cons = self.cons.as_mut().ok_or_else(|| anyhow!("not connected"))?;
            let mut buf = [0u8; 8192];
            let n = match tokio::time::timeout_at(deadline, cons.read(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => bail!(
                    "the phone did not show {text:?} within {WAIT:?}; it showed {:?}",
                    self.ui
                ),
            };
            if n == 0 {
                bail!("the cons connection closed");
            }
            self.cons_buffer.extend_from_slice(&buf[..n]);
            while let Some(pos) = self.cons_buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.cons_buffer.drain(..=pos).collect();
                let line = strip_ansi(&String::from_utf8_lossy(&line));
                let line = line.trim_matches(|c: char| c.is_whitespace()).to_owned();
                if !line.is_empty() {
                    self.ui.push(line);
                }
            }
        }
    }

    /// Waits until `reginfo` shows the account registered (`OK`); fails at once when it shows
    /// a failure (`ERR`).
    pub async fn registered(&mut self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let info = strip_ansi(&self.command("reginfo", "").await?);
            if info.contains(" OK ") {
                return Ok(());
            }
            if info.contains("ERR") || self.events.iter().any(|e| e["type"] == "REGISTER_FAIL") {
                bail!(
                    "the phone could not register: {info}\nevents: {:?}",
                    self.seen
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("not registered within {WAIT:?}: {info}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The presence status the phone shows for its contact `sip:{address}` (`Unknown`,
    /// `Offline`, `Online`, …), from the `contacts` command.
    pub async fn presence(&mut self, address: &str) -> Result<String> {
        let list = strip_ansi(&self.command("contacts", "").await?);
        let needle = format!("<sip:{address}>");
        let line = list
            .lines()
            .find(|l| l.contains(&needle))
            .ok_or_else(|| anyhow!("no contact {needle} in {list}"))?;
        // `>     Offline Bob <sip:bob@example.net>`: the first word after the marker.
        line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
            .split_whitespace()
            .next()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no status in {line:?}"))
    }

    /// Waits until the phone shows `status` for `sip:{address}`.
    pub async fn shows_presence(&mut self, address: &str, status: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.presence(address).await?;
            if now == status {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the phone shows {address} {now}, not {status}, after {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Quits as a user would (`quit`: the phone unsubscribes and unregisters first) and waits
    /// until the process has exited.
    pub async fn quit(&mut self) -> Result<()> {
        // The answer may not come before the connection closes.
        let _ = self.command("quit", "").await;
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => bail!("baresip did not quit within {WAIT:?}"),
        }
    }
}

impl Baresip {
    /// Kills the process at once (SIGKILL: it unsubscribes and unregisters nothing, as when
    /// a phone loses power) and waits until it has exited.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}\nevents: {:?}\nshown: {:?}",
                self.log_tail(),
                self.seen,
                self.ui
            );
        }
        let _ = self.child.start_kill();
    }
}

/// One SIP message of baresip's trace.
#[derive(Clone, Debug)]
pub struct Traced {
    /// `UDP` or `TCP`.
    pub transport: String,
    /// The sending address, `IP:PORT`.
    pub from: String,
    /// The receiving address.
    pub to: String,
    /// The message, start line first.
    pub text: String,
}

impl Traced {
    /// The start line.
    pub fn start_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    /// A header's value (the first; full names only).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.text
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
    }
}

/// Splits a `-s` trace: each message follows a `#` line and a `UDP a -> b` line, and ends at
/// the colour reset.
fn parse_trace(log: &str) -> Vec<Traced> {
    let mut out = Vec::new();
    for chunk in log.split("\x1b[36;1m#\n").skip(1) {
        let chunk = chunk.split("\x1b[;m").next().unwrap_or_default();
        let Some((first, text)) = chunk.split_once('\n') else {
            continue;
        };
        let words: Vec<&str> = first.split_whitespace().collect();
        let [transport, from, "->", to] = words[..] else {
            continue;
        };
        out.push(Traced {
            transport: transport.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
        });
    }
    out
}

/// Removes ANSI colour sequences (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Takes one netstring (`LEN:DATA,`) off the front of `buffer`, if it holds a whole one.
fn take_netstring(buffer: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
    let Some(colon) = buffer.iter().position(|b| *b == b':') else {
        if buffer.len() > 20 {
            bail!("not a netstring: {:?}", String::from_utf8_lossy(buffer));
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&buffer[..colon])?
        .trim()
        .parse()
        .with_context(|| format!("netstring length {:?}", &buffer[..colon]))?;
    let end = colon + 1 + len;
    if buffer.len() < end + 1 {
        return Ok(None);
    }
    if buffer[end] != b',' {
        bail!("netstring without its comma");
    }
    let data = buffer[colon + 1..end].to_vec();
    buffer.drain(..=end);
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_are_split_whole() {
        let mut buf = b"5:hello,3:ab".to_vec();
        assert_eq!(take_netstring(&mut buf).unwrap().unwrap(), b"hello");
        assert_eq!(take_netstring(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"c,");
        assert_eq!(take_netstring(&mut buf).unwrap().unwrap(), b"abc");
        assert!(buf.is_empty());
    }

    #[test]
    fn a_trace_splits_into_messages() {
        let log = "baresip is ready.\n\x1b[36;1m#\nUDP 127.0.0.1:5 -> 127.0.0.1:6\n\
                   SUBSCRIBE sip:127.0.0.1:6 SIP/2.0\nCSeq: 2 SUBSCRIBE\nExpires: 0\n\n\x1b[;m\n\
                   ua: stop\n\x1b[36;1m#\nTCP 127.0.0.1:6 -> 127.0.0.1:5\n\
                   SIP/2.0 200 OK\nCSeq: 2 SUBSCRIBE\n\n\x1b[;m\n";
        let trace = parse_trace(log);
        assert_eq!(trace.len(), 2);
        assert_eq!(trace[0].transport, "UDP");
        assert_eq!(trace[0].from, "127.0.0.1:5");
        assert_eq!(trace[0].to, "127.0.0.1:6");
        assert_eq!(trace[0].start_line(), "SUBSCRIBE sip:127.0.0.1:6 SIP/2.0");
        assert_eq!(trace[0].header("expires"), Some("0"));
        assert_eq!(trace[1].transport, "TCP");
        assert_eq!(trace[1].header("CSeq"), Some("2 SUBSCRIBE"));
        assert_eq!(trace[1].header("Expires"), None);
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi(">     \u{1b}[32mOnline\u{1b}[;m Bob <sip:bob@example.net>\r"),
            ">     Online Bob <sip:bob@example.net>"
        );
    }
}
