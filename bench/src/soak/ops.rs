//! The soak's operations: each does one user-visible thing against the relay and says how
//! long it took or why it failed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyper::header::HeaderValue;
use hyper::Method;
use restsip_protocol::{CallCreated, LoginCreated, ParticipantCreated};
use serde_json::{json, Value};

use crate::http::{basic, Api, REQUEST_TIMEOUT};
use crate::inbox::{Arrivals, Listener};
use crate::sip::Phone;
use crate::sse::Sse;

/// Every operation, in the order of the report's columns.
pub(crate) const NAMES: [&str; 9] = [
    "get_login",
    "send_ws",
    "send_sse",
    "call",
    "mail",
    "streams",
    "newcomer",
    "sip_register",
    "sip_message",
];

/// How many of every 200 operations are of each kind (same order as [`NAMES`]).
pub(crate) const WEIGHTS: [u32; 9] = [60, 30, 20, 10, 10, 8, 1, 41, 20];

/// An account: its email and Basic credentials.
pub(crate) struct Account {
    pub(crate) email: String,
    pub(crate) auth: HeaderValue,
}

/// The users, logins, streams and phones the operations use.
pub(crate) struct World {
    pub(crate) api: Api,
    addr: SocketAddr,
    /// Reads, sends, calls and leaves mail.
    alice: Account,
    /// Alice's contact (joins calls with it).
    alice_contact: String,
    /// Bob's contact path and the WebSocket on it.
    bob_contact: String,
    bob_ws: Listener,
    /// Carol's contact path and the SSE stream on it.
    carol_contact: String,
    carol_sse: Sse,
    /// Dave reads and deletes his offline mail.
    dave: Account,
    /// Erin's streams open and close.
    erin: Account,
    erin_contact: String,
    /// SIP phones, used in turn.
    phones: Vec<Phone>,
    next: AtomicU64,
}

async fn sign_up(api: &Api, email: &str) -> Result<Account> {
    let password = format!("soak-{email}-password");
    api.call(
        Method::POST,
        "/user",
        None,
        Some(&json!({ "email": email, "password": password })),
    )
    .await?;
    Ok(Account {
        email: email.to_owned(),
        auth: basic(email, &password)?,
    })
}

async fn log_in(api: &Api, who: &Account) -> Result<String> {
    let created = api
        .call(
            Method::POST,
            &format!("/login/{}", who.email),
            Some(&who.auth),
            Some(&json!({ "expires": 86400 })),
        )
        .await?;
    let created: LoginCreated = serde_json::from_value(created).context("not a login")?;
    Ok(created.url)
}

impl World {
    /// Signs up and logs in the fixed users, opens Bob's WebSocket and Carol's SSE stream,
    /// signs up `phones` phone users and registers each once.
    pub(crate) async fn setup(http: SocketAddr, sip: SocketAddr, phones: usize) -> Result<Self> {
        let api = Api::new(http);
        let alice = sign_up(&api, "alice@soak.invalid").await?;
        let bob = sign_up(&api, "bob@soak.invalid").await?;
        let carol = sign_up(&api, "carol@soak.invalid").await?;
        let dave = sign_up(&api, "dave@soak.invalid").await?;
        let erin = sign_up(&api, "erin@soak.invalid").await?;
        let alice_contact = log_in(&api, &alice).await?;
        let bob_contact = log_in(&api, &bob).await?;
        let carol_contact = log_in(&api, &carol).await?;
        let erin_contact = log_in(&api, &erin).await?;
        let bob_ws = Listener::connect(
            &format!("ws://{http}/ws"),
            Some(&bob.auth),
            Some(&bob_contact),
        )
        .await
        .context("Bob's WebSocket")?;
        let carol_sse = Sse::open(http, &carol_contact, &carol.auth)
            .await
            .context("Carol's SSE stream")?;
        let mut list = Vec::with_capacity(phones);
        for i in 0..phones {
            let email = format!("phone{i}@soak.invalid");
            sign_up(&api, &email).await?;
            let phone = crate::sip::Phone::open(&email, sip).await?;
            let code = phone.register().await?;
            if code != 200 {
                bail!("REGISTER of {email}: {code}");
            }
            list.push(phone);
        }
        Ok(Self {
            api,
            addr: http,
            alice,
            alice_contact,
            bob_contact,
            bob_ws,
            carol_contact,
            carol_sse,
            dave,
            erin,
            erin_contact,
            phones: list,
            next: AtomicU64::new(1),
        })
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs operation `index` of [`NAMES`]: its latency.
    pub(crate) async fn run(&self, index: usize) -> Result<Duration> {
        let started = Instant::now();
        match index {
            0 => {
                let path = format!("/login/{}", "bob@soak.invalid");
                self.api
                    .call(Method::GET, &path, Some(&self.alice.auth), None)
                    .await?;
            }
            1 => {
                let arrivals = self.bob_ws.arrivals.clone();
                return self.send(&self.bob_contact, &arrivals).await;
            }
            2 => {
                let arrivals = self.carol_sse.arrivals.clone();
                return self.send(&self.carol_contact, &arrivals).await;
            }
            3 => self.call().await?,
            4 => self.mail().await?,
            5 => self.streams().await?,
            6 => self.newcomer().await?,
            7 => {
                let code = self.phone().register().await?;
                if code != 200 {
                    bail!("REGISTER: {code}");
                }
            }
            8 => {
                let n = self.next();
                let code = self
                    .phone()
                    .message("bob@soak.invalid", &format!("soak {n}"))
                    .await?;
                if !(200..300).contains(&code) {
                    bail!("MESSAGE: {code}");
                }
            }
            _ => bail!("no operation {index}"),
        }
        Ok(started.elapsed())
    }

    fn phone(&self) -> &Phone {
        let i = self.next() as usize % self.phones.len().max(1);
        &self.phones[i]
    }

    /// Alice SENDs `{"command":"im","seq":N}` to `contact`; until its stream has it.
    async fn send(&self, contact: &str, arrivals: &Arc<Arrivals>) -> Result<Duration> {
        let seq = self.next();
        let arrived = arrivals.expect(seq);
        let started = Instant::now();
        let body = json!({ "command": "im", "text": "soak", "seq": seq });
        let sent = self
            .api
            .call(
                Method::from_bytes(b"SEND")?,
                contact,
                Some(&self.alice.auth),
                Some(&body),
            )
            .await;
        if let Err(e) = sent {
            arrivals.forget(seq);
            return Err(e);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, arrived).await {
            Ok(Ok(at)) => Ok(at.saturating_duration_since(started)),
            _ => {
                arrivals.forget(seq);
                Err(anyhow!("SENT but not on the stream within 10 s"))
            }
        }
    }

    /// Alice creates a call, joins it, leaves, and ends it.
    async fn call(&self) -> Result<()> {
        let auth = Some(&self.alice.auth);
        let created = self
            .api
            .call(
                Method::POST,
                "/call",
                auth,
                Some(&json!({ "subject": "soak" })),
            )
            .await?;
        let call: CallCreated = serde_json::from_value(created).context("not a call")?;
        let join = json!({ "url": self.alice_contact, "session": "rtsp://soak.invalid/1" });
        let joined = self
            .api
            .call(Method::POST, &call.url, auth, Some(&join))
            .await?;
        let me: ParticipantCreated = serde_json::from_value(joined).context("not a participant")?;
        self.api.call(Method::GET, &call.url, auth, None).await?;
        self.api.call(Method::DELETE, &me.url, auth, None).await?;
        self.api.call(Method::DELETE, &call.url, auth, None).await?;
        Ok(())
    }

    /// Alice leaves Dave an offline message; Dave lists his mail and deletes it.
    async fn mail(&self) -> Result<()> {
        let mailbox = format!("/user/{}/message", self.dave.email);
        let body = json!({ "subject": "soak", "body": "while you were out" });
        let left = self
            .api
            .call(Method::POST, &mailbox, Some(&self.alice.auth), Some(&body))
            .await?;
        let id = match left.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => bail!("POST {mailbox}: no id in {left}"),
        };
        let dave = Some(&self.dave.auth);
        self.api.call(Method::GET, &mailbox, dave, None).await?;
        self.api
            .call(Method::DELETE, &format!("{mailbox}/{id}"), dave, None)
            .await?;
        Ok(())
    }

    /// Erin opens a stream of her contact (WebSocket or SSE in turn), waits for its first
    /// event, and closes it.
    async fn streams(&self) -> Result<()> {
        if self.next().is_multiple_of(2) {
            let listener = Listener::connect(
                &format!("ws://{}/ws", self.addr),
                Some(&self.erin.auth),
                Some(&self.erin_contact),
            )
            .await?;
            drop(listener);
        } else {
            let sse = Sse::open(self.addr, &self.erin_contact, &self.erin.auth).await?;
            drop(sse);
        }
        Ok(())
    }

    /// A new user signs up, logs in, reads who is online, logs out and deletes the account.
    async fn newcomer(&self) -> Result<()> {
        let n = self.next();
        let who = sign_up(&self.api, &format!("new{n}@soak.invalid")).await?;
        let contact = log_in(&self.api, &who).await?;
        let me = Some(&who.auth);
        let path = format!("/login/{}", who.email);
        self.api.call(Method::GET, &path, me, None).await?;
        self.api.call(Method::DELETE, &contact, me, None).await?;
        self.api
            .call(Method::DELETE, &format!("/user/{}", who.email), me, None)
            .await?;
        Ok(())
    }
}
