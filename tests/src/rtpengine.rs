//! A real rtpengine for the media tests (Debian's `rtpengine-daemon`, userspace only): started
//! on a free ng port with a port range of its own, killed when dropped, and an ng client of
//! its own (bencode written here again, independent of the relay's) to ask it what it saw.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};

/// Media ports per rtpengine (a call takes four on each side's pair).
const PORTS: u16 = 40;
/// Port ranges handed out so far in this process.
static NEXT: AtomicU16 = AtomicU16::new(0);

/// A running rtpengine.
pub struct Rtpengine {
    child: Child,
    /// Its ng control address (`127.0.0.1:PORT`, UDP): the relay's `--rtpengine`.
    pub ng: SocketAddr,
    /// Its media ports, inclusive.
    pub ports: (u16, u16),
}

/// A UDP port free now on 127.0.0.1.
fn free_udp_port() -> Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Rtpengine {
    /// Starts one on 127.0.0.1 and waits until it answers an ng ping.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts one with `extra` flags (such as `--dtmf-log-dest=IP:PORT`), as [`Self::start`].
    pub async fn start_with(extra: &[&str]) -> Result<Self> {
        // Ranges differ between the tests of a process and, most likely, between processes.
        let slot = (std::process::id() as u16 % 97) * 7 + NEXT.fetch_add(1, Ordering::Relaxed);
        let min = 20_000 + (slot % 900) * PORTS;
        let ports = (min, min + PORTS - 1);
        let port = free_udp_port()?;
        let ng: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
                "--interface=127.0.0.1",
                &format!("--listen-ng={ng}"),
                &format!("--port-min={}", ports.0),
                &format!("--port-max={}", ports.1),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("rtpengine is missing: apt-get install rtpengine-daemon (scripts/setup.sh)")?;
        let engine = Self { child, ng, ports };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = engine.request(json!({"command": "ping"})).await {
                if reply["result"] == "pong" {
                    return Ok(engine);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("rtpengine on {ng} did not answer a ping within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its ng address as the relay's `--rtpengine` value.
    pub fn addr(&self) -> String {
        self.ng.to_string()
    }

    /// Whether `port` is one of its media ports.
    pub fn owns_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    /// Sends an ng request (JSON objects, strings, integers and lists, bencoded) and returns
    /// the reply as JSON (byte strings as text).
    pub async fn request(&self, request: Value) -> Result<Value> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let cookie = format!("t{}", rand_cookie());
        let mut datagram = format!("{cookie} ").into_bytes();
        encode(&request, &mut datagram)?;
        socket.send_to(&datagram, self.ng).await?;
        let mut buf = vec![0u8; 65_536];
        let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
            .await
            .map_err(|_| anyhow!("no ng reply from {}", self.ng))??;
        let reply = &buf[..n];
        let space = reply
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| anyhow!("ng reply without cookie"))?;
        if &reply[..space] != cookie.as_bytes() {
            bail!("ng reply for another cookie");
        }
        let mut at = space + 1;
        decode(reply, &mut at)
    }

    /// The ng `query` of call `call_id`: its tags and stream statistics, or an error result
    /// (`Unknown call-id` once deleted).
    pub async fn query(&self, call_id: &str) -> Result<Value> {
        self.request(json!({"command": "query", "call-id": call_id}))
            .await
    }

    /// The RTP packets rtpengine received on media port `port` in call `call_id`.
    pub async fn packets_on(&self, call_id: &str, port: u16) -> Result<u64> {
        let q = self.query(call_id).await?;
        let tags = q["tags"].as_object().cloned().unwrap_or_default();
        for tag in tags.values() {
            for media in tag["medias"].as_array().into_iter().flatten() {
                for stream in media["streams"].as_array().into_iter().flatten() {
                    if stream["local port"] == port {
                        return Ok(stream["stats"]["packets"].as_u64().unwrap_or(0));
                    }
                }
            }
        }
        bail!("no stream on port {port} in {q}")
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn rand_cookie() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn encode(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    match v {
        Value::String(s) => {
            out.extend_from_slice(format!("{}:", s.len()).as_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Number(n) => {
            out.extend_from_slice(format!("i{}e", n.as_i64().unwrap_or(0)).as_bytes())
        }
        Value::Array(items) => {
            out.push(b'l');
            for i in items {
                encode(i, out)?;
            }
            out.push(b'e');
        }
        Value::Object(map) => {
            out.push(b'd');
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                encode(&json!(k), out)?;
                encode(&map[k], out)?;
            }
            out.push(b'e');
        }
        other => bail!("not encodable in bencode: {other}"),
    }
    Ok(())
}

fn decode(b: &[u8], at: &mut usize) -> Result<Value> {
    let c = *b.get(*at).ok_or_else(|| anyhow!("bencode ends early"))?;
    *at += 1;
    Ok(match c {
        b'i' => {
            let end = *at
                + b[*at..]
                    .iter()
                    .position(|&c| c == b'e')
                    .ok_or_else(|| anyhow!("bad int"))?;
            let n: i64 = std::str::from_utf8(&b[*at..end])?.parse()?;
            *at = end + 1;
            json!(n)
        }
        b'l' => {
            let mut items = Vec::new();
            while b.get(*at) != Some(&b'e') {
                items.push(decode(b, at)?);
            }
            *at += 1;
            Value::Array(items)
        }
        b'd' => {
            let mut map = Map::new();
            while b.get(*at) != Some(&b'e') {
                let k = decode(b, at)?;
                let v = decode(b, at)?;
                map.insert(k.as_str().unwrap_or_default().to_owned(), v);
            }
            *at += 1;
            Value::Object(map)
        }
        b'0'..=b'9' => {
            *at -= 1;
            let colon = *at
                + b[*at..]
                    .iter()
                    .position(|&c| c == b':')
                    .ok_or_else(|| anyhow!("bad string"))?;
            let len: usize = std::str::from_utf8(&b[*at..colon])?.parse()?;
            let s = b
                .get(colon + 1..colon + 1 + len)
                .ok_or_else(|| anyhow!("short string"))?;
            *at = colon + 1 + len;
            json!(String::from_utf8_lossy(s))
        }
        other => bail!("bad bencode byte {other}"),
    })
}
