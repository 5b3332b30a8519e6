//! A SIP phone over UDP for the soak: REGISTER refreshes and MESSAGEs, each a client
//! transaction matched to its final response by Call-ID and CSeq, retransmitted as RFC 3261's
//! Timer E says (500 ms doubling) until an answer or [`TIMEOUT`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest wait for a final response (Timer F is 32 s; a soak wants errors sooner).
const TIMEOUT: Duration = Duration::from_secs(8);

type Waiting = Mutex<HashMap<String, oneshot::Sender<u16>>>;

/// One phone: a UDP socket, its account, and the reader matching responses.
pub(crate) struct Phone {
    socket: Arc<UdpSocket>,
    relay: SocketAddr,
    /// The phone's account (its AOR is `sip:{email}`).
    email: String,
    /// Transactions waiting for a final response, by `Call-ID CSeq`.
    waiting: Arc<Waiting>,
    /// This phone's registration Call-ID (refreshes reuse it, with a growing CSeq).
    call_id: String,
    cseq: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Phone {
    /// A phone of `email` talking to the relay's SIP port `relay`.
    pub(crate) async fn open(email: &str, relay: SocketAddr) -> Result<Self> {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let waiting: Arc<Waiting> = Arc::default();
        let reader = tokio::spawn(read(socket.clone(), waiting.clone()));
        let local = socket.local_addr()?;
        Ok(Self {
            call_id: format!("reg-{}-{}@soak", local.port(), rand_token()),
            socket,
            relay,
            email: email.to_owned(),
            waiting,
            cseq: AtomicU64::new(1),
            reader,
        })
    }

    /// REGISTERs (or refreshes) this phone's binding for 300 s: the final status.
    pub(crate) async fn register(&self) -> Result<u16> {
        let local = self.socket.local_addr()?;
        let cseq = self.cseq.fetch_add(1, Ordering::Relaxed);
        let user = self.email.replace('@', "%40");
        let request = format!(
            "REGISTER sip:{relay} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{email}>;tag={tag}\r\n\
             To: <sip:{email}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: 300\r\n\
             Content-Length: 0\r\n\r\n",
            relay = self.relay,
            branch = rand_token(),
            email = self.email,
            tag = rand_token(),
            call_id = self.call_id,
        );
        self.transact(&self.call_id, cseq, request).await
    }

    /// A MESSAGE with `text` to `to` (an account's AOR `sip:{to}`): the final status.
    pub(crate) async fn message(&self, to: &str, text: &str) -> Result<u16> {
        let local = self.socket.local_addr()?;
        let call_id = format!("msg-{}@soak", rand_token());
        let request = format!(
            "MESSAGE sip:{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{email}>;tag={tag}\r\n\
             To: <sip:{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 MESSAGE\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: {len}\r\n\r\n{text}",
            branch = rand_token(),
            email = self.email,
            tag = rand_token(),
            len = text.len(),
        );
        self.transact(&call_id, 1, request).await
    }

    /// Sends `request` (retransmitted) until a final response to `call_id` `cseq` comes.
    async fn transact(&self, call_id: &str, cseq: u64, request: String) -> Result<u16> {
        let key = format!("{call_id} {cseq}");
        let (tx, mut rx) = oneshot::channel();
        lock(&self.waiting).insert(key.clone(), tx);
        let outcome = async {
            let mut interval = Duration::from_millis(500);
            loop {
                self.socket.send_to(request.as_bytes(), self.relay).await?;
                match tokio::time::timeout(interval, &mut rx).await {
                    Ok(Ok(code)) => return Ok(code),
                    Ok(Err(_)) => bail!("the phone's reader stopped"),
                    Err(_) => interval = (interval * 2).min(Duration::from_secs(4)),
                }
            }
        };
        let result = tokio::time::timeout(TIMEOUT, outcome)
            .await
            .map_err(|_| anyhow!("no final response within {TIMEOUT:?}"))
            .and_then(|r| r);
        lock(&self.waiting).remove(&key);
        result
    }
}

fn lock(waiting: &Waiting) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<u16>>> {
    waiting.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads responses and hands each final one to its transaction; answers requests (none are
/// expected: the phone's AOR gets no MESSAGEs) with nothing.
async fn read(socket: Arc<UdpSocket>, waiting: Arc<Waiting>) {
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        let Ok(text) = std::str::from_utf8(&buf[..n]) else {
            continue;
        };
        if let Some((key, code)) = final_response(text) {
            if let Some(tx) = lock(&waiting).remove(&key) {
                let _ = tx.send(code);
            }
        }
    }
}

/// A final response's `Call-ID CSeq-number` and status code.
fn final_response(text: &str) -> Option<(String, u16)> {
    let mut lines = text.split("\r\n");
    let code: u16 = lines
        .next()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()?;
    if code < 200 {
        return None;
    }
    let (mut call_id, mut cseq) = (None, None);
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => call_id = Some(value.trim()),
            "cseq" => cseq = value.split_whitespace().next(),
            _ => {}
        }
    }
    Some((format!("{} {}", call_id?, cseq?), code))
}

fn rand_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// The relay's SIP address, from `--sip`.
pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr> {
    s.parse().with_context(|| format!("{s:?} is not IP:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_final_responses_only() {
        let ok = "SIP/2.0 200 OK\r\nVia: x\r\nCall-ID: abc@soak\r\nCSeq: 7 REGISTER\r\n\r\n";
        assert_eq!(final_response(ok), Some(("abc@soak 7".into(), 200)));
        let trying = "SIP/2.0 100 Trying\r\nCall-ID: abc\r\nCSeq: 7 REGISTER\r\n\r\n";
        assert_eq!(final_response(trying), None);
        assert_eq!(final_response("MESSAGE sip:a SIP/2.0\r\n\r\n"), None);
    }
}
