//! Delivery measured with the clients idle: the watchers hand their sockets over, nobody reads
//! while a change fans out, and afterwards every socket is read once and each change's arrival
//! time is the kernel's receive timestamp of its bytes (`SO_TIMESTAMPING`, software receive
//! stamps, `CLOCK_REALTIME`), not the instant a busy client got round to reading them. The
//! server has the cores to itself during the fan-out, as it would with the clients on other
//! machines: the figure is the server's own fan-out time plus loopback.

use std::io::IoSliceMut;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, TimestampingFlag, Timestamps,
};

use crate::watcher::{Transport, ROUND};

/// Bytes read at a time (everything a round leaves waiting fits).
const READ: usize = 64 * 1024;

/// A watcher's socket, handed over by its task (deregistered from tokio, non-blocking).
#[derive(Debug)]
pub(crate) struct Quiet {
    pub(crate) socket: TcpStream,
    pub(crate) transport: Transport,
}

/// When a change's bytes arrived on one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// The kernel's receive time of the last segment in the read that held the change.
    pub(crate) at: SystemTime,
    /// That read also held bytes sent after the change (a keep-alive), so `at` may be theirs:
    /// the sample is counted but may be late.
    pub(crate) trailing: bool,
}

/// Asks the kernel to stamp every segment this socket receives with its arrival time.
pub(crate) fn enable(socket: &TcpStream) -> Result<()> {
    let flags = TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE;
    setsockopt(socket, sockopt::Timestamping, &flags).context("SO_TIMESTAMPING")
}

/// One non-blocking read: the bytes and the receive time the kernel gave them (`None` when
/// nothing was waiting).
fn read_once(socket: &TcpStream, buf: &mut [u8]) -> Result<Option<(usize, Option<SystemTime>)>> {
    let mut space = nix::cmsg_space!(Timestamps);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = match recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(msg) => msg,
        Err(Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(std::io::Error::from(e)).context("recvmsg"),
    };
    if msg.bytes == 0 {
        return Err(anyhow!("the server closed the stream"));
    }
    let mut at = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampsns(stamps) = cmsg {
            let d = Duration::from(stamps.system);
            if !d.is_zero() {
                at = Some(UNIX_EPOCH + d);
            }
        }
    }
    Ok(Some((msg.bytes, at)))
}

/// Reads and drops whatever is waiting (what came before a round).
pub(crate) fn drain(socket: &TcpStream, buf: &mut [u8]) -> Result<()> {
    while read_once(socket, buf)?.is_some() {}
    Ok(())
}

/// Reads whatever is waiting and finds the change of `round` in it. `None`: not there (yet).
/// The socket must have been drained before the change was made.
pub(crate) fn arrival(quiet: &Quiet, round: u32, buf: &mut Vec<u8>) -> Result<Option<Arrival>> {
    let marker = [ROUND, round.to_string().as_bytes()].concat();
    // All the bytes waiting, and where each read ended with its stamp.
    let mut bytes = Vec::new();
    let mut reads: Vec<(usize, Option<SystemTime>)> = Vec::new();
    buf.resize(READ, 0);
    while let Some((n, at)) = read_once(&quiet.socket, buf)? {
        bytes.extend_from_slice(&buf[..n]);
        reads.push((bytes.len(), at));
    }
    let Some(end) = find_round(&bytes, &marker) else {
        return Ok(None);
    };
    let (read_end, at) = reads
        .iter()
        .find(|(read_end, _)| *read_end >= end)
        .copied()
        .ok_or_else(|| anyhow!("marker past the bytes read"))?;
    let at = at.ok_or_else(|| anyhow!("a read without a receive timestamp"))?;
    Ok(Some(Arrival {
        at,
        trailing: sent_after(quiet.transport, &bytes[end..read_end]),
    }))
}

/// What one round's read of every socket found.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) arrivals: Vec<Arrival>,
    /// Sockets where the change never came (or that failed).
    pub(crate) missed: usize,
    /// The first failure, if any.
    pub(crate) failure: Option<String>,
}

/// Reads every socket for the change of `round`, again every tenth of a second for those
/// where it has not arrived yet, for at most `max`.
pub(crate) fn collect(sockets: &[Quiet], round: u32, max: Duration) -> Collected {
    let start = std::time::Instant::now();
    let mut got = Collected::default();
    let mut buf = Vec::new();
    let mut pending: Vec<&Quiet> = sockets.iter().collect();
    loop {
        pending.retain(|quiet| match arrival(quiet, round, &mut buf) {
            Ok(Some(a)) => {
                got.arrivals.push(a);
                false
            }
            Ok(None) => true,
            Err(e) => {
                got.missed += 1;
                got.failure.get_or_insert(format!("{e:#}"));
                false
            }
        });
        if pending.is_empty() || start.elapsed() >= max {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    got.missed += pending.len();
    got
}

/// Where the marker ends (followed by a non-digit: `round-1` is not `round-12`).
fn find_round(bytes: &[u8], marker: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = bytes[from..]
        .windows(marker.len())
        .position(|w| w == marker)
    {
        let end = from + at + marker.len();
        if bytes.get(end).is_some_and(|b| !b.is_ascii_digit()) {
            return Some(end);
        }
        from = end;
    }
    None
}

/// Whether `rest` (the bytes after a change's marker, to the end of its read) holds more than
/// the rest of that change: for SSE anything after the event's blank line but the end of its
/// HTTP chunk; for the WebSocket a byte ≥ 0x80, which the rest of the JSON text cannot hold but
/// the next frame's header (FIN bit) does.
fn sent_after(transport: Transport, rest: &[u8]) -> bool {
    match transport {
        Transport::Sse => rest
            .windows(2)
            .position(|w| w == b"\n\n")
            .is_some_and(|at| !matches!(&rest[at + 2..], b"" | b"\r\n")),
        Transport::Ws => rest.iter().any(|b| *b >= 0x80),
    }
}

/// CPU time used by process `pid` so far, in clock ticks (`utime + stime` of `/proc/PID/stat`).
pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("no field {i} in /proc/{pid}/stat"))
    };
    Ok(tick(14)? + tick(15)?)
}

/// Clock ticks per second of `/proc/PID/stat`.
pub(crate) fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// Waits until the server has stopped working on the change: at least `MIN`, then until it
/// used at most one clock tick in a tenth of a second (or `max` passed).
pub(crate) async fn wait_idle(pid: u32, max: Duration) -> Result<Duration> {
    const MIN: Duration = Duration::from_millis(300);
    const STEP: Duration = Duration::from_millis(100);
    let start = tokio::time::Instant::now();
    tokio::time::sleep(MIN).await;
    let mut before = cpu_ticks(pid)?;
    while start.elapsed() < max {
        tokio::time::sleep(STEP).await;
        let now = cpu_ticks(pid)?;
        if now - before <= 1 {
            break;
        }
        before = now;
    }
    Ok(start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    /// The kernel stamps loopback TCP: the stamp of a change lies between the instants before
    /// and after it was written, however late it is read.
    #[test]
    fn stamps_the_arrival_not_the_read() -> Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        client.set_nonblocking(true)?;
        enable(&client)?;
        // The kernel turns stamping on shortly after the first socket asks (deferred work, when
        // no other socket has it on): probe until a read comes stamped.
        let mut probe = [0; 16];
        for _ in 0..1000 {
            server.write_all(b"x")?;
            std::thread::sleep(Duration::from_millis(2));
            if let Some((_, Some(_))) = read_once(&client, &mut probe)? {
                break;
            }
        }
        drain(&client, &mut probe)?;
        let quiet = Quiet {
            socket: client,
            transport: Transport::Sse,
        };
        let mut buf = Vec::new();
        assert_eq!(arrival(&quiet, 1, &mut buf)?, None, "nothing sent yet");
        let before = SystemTime::now();
        server.write_all(b"data: {\"session\":\"round-1\"}\n\n")?;
        let after = SystemTime::now();
        std::thread::sleep(Duration::from_millis(50));
        let read_at = SystemTime::now();
        let got = arrival(&quiet, 1, &mut buf)?.ok_or_else(|| anyhow!("no round 1"))?;
        assert!(
            before <= got.at && got.at <= after,
            "{got:?} not in [{before:?}, {after:?}]"
        );
        assert!(got.at < read_at);
        assert!(!got.trailing);
        // A keep-alive after the change is noticed (its stamp may be the one reported).
        server.write_all(b"data: {\"session\":\"round-2\"}\n\n:\n\n")?;
        std::thread::sleep(Duration::from_millis(20));
        let got = arrival(&quiet, 2, &mut buf)?.ok_or_else(|| anyhow!("no round 2"))?;
        assert!(got.trailing);
        Ok(())
    }

    #[test]
    fn finds_a_round_not_its_prefix() {
        assert_eq!(find_round(b"round-12\" round-1\"", b"round-1"), Some(17));
        assert_eq!(find_round(b"round-12\"", b"round-1"), None);
    }

    #[test]
    fn tells_what_came_after_a_change() {
        assert!(!sent_after(Transport::Sse, b"\"}\n\n"));
        assert!(!sent_after(Transport::Sse, b"\"}\n\n\r\n"));
        assert!(sent_after(Transport::Sse, b"\"}\n\n\r\n3\r\n:\n\n\r\n"));
        assert!(sent_after(Transport::Sse, b"\"}\n\n:\n\n"));
        assert!(!sent_after(Transport::Ws, b"\"}}"));
        assert!(sent_after(Transport::Ws, b"\"}}\x89\x00"));
    }
}
