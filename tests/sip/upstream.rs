//! The upstream SIP server (`--sip-upstream`): a real Kamailio (Debian package `kamailio`,
//! config tests/sip/kamailio-upstream.cfg, digest authentication on) with sipp phones
//! registered there as carol@kamailio.test. The web user alice@kamailio.test is an account of
//! the relay:
//! - her `im` and `invite` SENDs to carol (not an account of the relay) go through Kamailio,
//!   whose 407 the relay answers with the trunk or her own upstream credentials;
//! - while she has a web login, the relay registers her at Kamailio (401 answered, refreshed
//!   before it ends, removed when she logs out), so carol's MESSAGE and INVITE to her AOR there
//!   reach her web streams, and carol can watch her presence through Kamailio; a relay that
//!   shuts down unregisters her, one restarted registers her again.
//!
//! A sipp phone registered at the relay as dave@kamailio.test (an account of the relay with
//! the same password at Kamailio) messages and calls carol: the relay proxies the requests to
//! Kamailio, whose 407 goes back to the phone, which answers it itself.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use restsip_e2e::{Client, EventStream, Relay, WAIT};
use restsip_protocol::EventKind;
use serde_json::{json, Value};

use crate::sipp::{free_port, register_phone, spawn_uas, Mode, Run, TCP, UDP};

/// A web user: an account of the relay in Kamailio's domain.
const ALICE: &str = "alice@kamailio.test";
/// A sipp phone registered at Kamailio.
const CAROL: &str = "carol@kamailio.test";
/// Carol's password at Kamailio (as `register_phone` answers).
const CAROL_PW: &str = "pw-carol@kamailio.test";
/// A relay account whose phone is registered at the relay; Kamailio knows the same user.
const DAVE: &str = "dave@kamailio.test";
/// Dave's password at Kamailio and at the relay (as the harness signs users up).
const DAVE_PW: &str = "pw-dave@kamailio.test";

const OFFER: &str = "v=0\r\no=webcaller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                     t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
const ANSWER: &str = "v=0\r\no=webanswer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                      t=0 0\r\nm=audio 40002 RTP/AVP 0\r\n";

/// Kamailio in the foreground on `port`, in its own process group, stopped (with its worker
/// processes) when dropped.
struct Kamailio {
    /// The main process.
    child: std::process::Child,
    /// Its pid file and config.
    _dir: tempfile::TempDir,
    /// Where it listens (UDP and TCP).
    addr: SocketAddr,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM to the group: the main process and every worker it forked.
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

async fn kamailio() -> Kamailio {
    kamailio_with(false).await
}

/// Kamailio with carol's phone registered there over `mode`: the phone's port.
async fn carol_at_kamailio(mode: Mode) -> (Kamailio, u16) {
    let kamailio = kamailio().await;
    let phone = free_port();
    register_phone(kamailio.addr, mode, CAROL, phone).await;
    (kamailio, phone)
}

/// The db_text tables of Kamailio's presence modules, copied from the package's templates.
const PRESENCE_TABLES: &[&str] = &[
    "version",
    "presentity",
    "active_watchers",
    "watchers",
    "xcap",
];

/// Kamailio, also the presence server of its domain when `presence` (`-A WITH_PRESENCE`;
/// Debian package kamailio-presence-modules, db_text tables in its temporary directory).
async fn kamailio_with(presence: bool) -> Kamailio {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let template = include_str!("kamailio-upstream.cfg");
    let cfg = dir.path().join("kamailio.cfg");
    let db = dir.path().join("db");
    if presence {
        std::fs::create_dir(&db).unwrap();
        for table in PRESENCE_TABLES {
            std::fs::copy(
                format!("/usr/share/kamailio/dbtext/kamailio/{table}"),
                db.join(table),
            )
            .expect("kamailio's db_text tables: install kamailio with scripts/setup.sh");
        }
    }
    std::fs::write(
        &cfg,
        template
            .replace("KAMAILIO_PORT", &port.to_string())
            .replace("KAMAILIO_DBDIR", &db.display().to_string()),
    )
    .unwrap();
    let mut command = std::process::Command::new("kamailio");
    if presence {
        command.args(["-A", "WITH_PRESENCE"]);
    }
    let child = command
        .arg("-f")
        .arg(&cfg)
        .arg("-P")
        .arg(dir.path().join("kamailio.pid"))
        .args(["-DD", "-E", "-Y"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("running kamailio: install it with scripts/setup.sh (Debian package kamailio)");
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        || std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kamailio did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Kamailio {
        child,
        _dir: dir,
        addr: ([127, 0, 0, 1], port).into(),
    }
}

/// The next message's body on `inbox`, checking it is from `from`.
async fn next_body(inbox: &mut EventStream, from: &str) -> Value {
    loop {
        let e = inbox.next().await.unwrap();
        if e.kind == EventKind::Message {
            assert_eq!(e.data["from"], from, "{}", e.data);
            return e.data["body"].clone();
        }
    }
}

/// The next message on alice's `inbox`: carol's "hello web" (`carol_calls`); its body.
async fn hello_web(inbox: &mut EventStream) -> Value {
    let im = next_body(inbox, CAROL).await;
    assert_eq!(
        im["text"].as_str().map(str::trim),
        Some("hello web"),
        "{im}"
    );
    im
}

/// Alice's web login `id` logged out (asserted a success).
async fn log_out(alice: &Client, id: i64) {
    let r = alice
        .request("DELETE", &format!("/login/{ALICE}/{id}"), None)
        .await
        .unwrap();
    assert!(r.status < 300, "{} {}", r.status, r.body);
}

/// `user` logged in on the web with a live inbox stream: the login id and the stream.
async fn web_login(user: &Client) -> (i64, EventStream) {
    let email = user.email().to_owned();
    let id = user.login(json!({})).await.unwrap();
    let mut inbox = user
        .sse(&format!("/login/{email}/{id}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    (id, inbox)
}

/// Carol's phone runs `scenario` (a UAC through Kamailio) with `keys` once, from a fresh port.
async fn carol_calls(kamailio: SocketAddr, mode: Mode, scenario: &str) -> anyhow::Result<()> {
    Run {
        relay: kamailio,
        scenario,
        mode,
        port: free_port(),
        keys: &[("from", CAROL), ("to", ALICE), ("text", "hello web")],
        auth: Some((CAROL, CAROL_PW)),
    }
    .pass()
    .await
}

/// Runs `scenario` until it passes: the relay's REGISTER (or its removal) at Kamailio happens
/// a moment after the login changes.
async fn eventually(kamailio: SocketAddr, mode: Mode, scenario: &str) {
    let mut last = None;
    for _ in 0..20 {
        match carol_calls(kamailio, mode, scenario).await {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{scenario} never passed: {last:?}");
}

/// A SEND from `user` to `to`, expecting 200; the receipt.
async fn send(user: &Client, to: &str, body: Value) -> Value {
    let r = user
        .request("SEND", &format!("/login/{to}"), Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Alice calls carol's phone (running upstream-invite-uas on `phone`) through Kamailio: the
/// phone's 180 and 200 come back as `ringing` and `accept`, her `bye` is the phone's BYE.
async fn alice_calls_carol(
    alice: &Client,
    inbox: &mut EventStream,
    kamailio: SocketAddr,
    mode: Mode,
    phone: u16,
) {
    let uas = spawn_uas(kamailio, mode, phone, "upstream-invite-uas").await;
    let receipt = send(
        alice,
        CAROL,
        json!({"command": "invite", "sdp": OFFER, "id": 7}),
    )
    .await;
    let d = &receipt["deliveries"][0];
    assert_eq!(d["contact"], format!("sip:{CAROL}"), "{receipt}");
    assert_eq!(d["status"], "delivered", "{receipt}");
    let ringing = next_body(inbox, CAROL).await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    assert_eq!(ringing["code"], 180, "{ringing}");
    assert_eq!(ringing["id"], 7, "{ringing}");
    let accept = next_body(inbox, CAROL).await;
    assert_eq!(accept["command"], "accept", "{accept}");
    assert!(
        accept["sdp"].as_str().unwrap().contains("o=phoneanswer"),
        "{accept}"
    );
    let bye = send(alice, CAROL, json!({"command": "bye", "id": 7})).await;
    assert_eq!(bye["deliveries"][0]["status"], "delivered", "{bye}");
    uas.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_web_user_messages_and_calls_a_phone_registered_at_the_upstream_server() {
    let (kamailio, phone) = carol_at_kamailio(UDP).await;
    let upstream = kamailio.addr;
    let uas = spawn_uas(upstream, UDP, phone, "message-uas").await;
    let relay = trunk_relay(&upstream.to_string(), &[]).await;
    let alice = relay.user(ALICE).await.unwrap();
    // Kamailio challenges requests from its domain (407); the trunk credentials answer it.
    let r = send(
        &alice,
        CAROL,
        json!({"command": "im", "text": "hello phone"}),
    )
    .await;
    let d = &r["deliveries"][0];
    assert_eq!(d["contact"], format!("sip:{CAROL}"), "{r}");
    assert_eq!(d["status"], "delivered", "{r}");
    assert_eq!(d["sip"]["code"], 200, "{r}");
    uas.await.unwrap().unwrap();
    let (_, mut inbox) = web_login(&alice).await;
    alice_calls_carol(&alice, &mut inbox, upstream, UDP, phone).await;
    // Without an upstream, the same SEND is a 404.
    let plain = Relay::default().await.unwrap();
    let alice = plain.user(ALICE).await.unwrap();
    let r = alice
        .request(
            "SEND",
            &format!("/login/{CAROL}"),
            Some(json!({"command": "im", "text": "hello"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn without_credentials_the_upstream_challenge_is_the_delivery_status() {
    let kamailio = kamailio().await;
    let relay = Relay::start(&["--sip-upstream", &format!("sip:{}", kamailio.addr)])
        .await
        .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let r = send(&alice, CAROL, json!({"command": "im", "text": "hello"})).await;
    let d = &r["deliveries"][0];
    assert_eq!(d["status"], "failed", "{r}");
    assert_eq!(d["sip"]["code"], 407, "{r}");
}

#[tokio::test]
async fn a_phone_at_the_upstream_server_reaches_a_web_user_registered_there_over_udp() {
    let kamailio = kamailio().await;
    let upstream = kamailio.addr;
    let relay = trunk_relay(
        &upstream.to_string(),
        &[
            "--sip-upstream-domain",
            "kamailio.test",
            "--sip-upstream-expires",
            "10",
            // Alice answers with plain SDP: the phone's offer reaches her as it is.
            "--sip-sdp-passthrough",
            "on",
        ],
    )
    .await;
    let alice = relay.user(ALICE).await.unwrap();
    // Not logged in: not registered at Kamailio.
    carol_calls(upstream, UDP, "upstream-message-uac-404")
        .await
        .unwrap();
    let (id, mut inbox) = web_login(&alice).await;
    // Logged in: registered, so carol's MESSAGE to alice@kamailio.test reaches her stream.
    eventually(upstream, UDP, "upstream-message-uac").await;
    let im = hello_web(&mut inbox).await;
    assert_eq!(im["command"], "im", "{im}");
    // A call: the invite reaches her, her accept is the phone's 200 with her SDP, and the
    // phone's BYE (along Kamailio's Record-Route) a bye message.
    let call = tokio::spawn(carol_calls(upstream, UDP, "upstream-invite-uac"));
    let invite = next_body(&mut inbox, CAROL).await;
    assert_eq!(invite["command"], "invite", "{invite}");
    assert!(
        invite["sdp"].as_str().unwrap().contains("o=caller"),
        "{invite}"
    );
    let receipt = send(
        &alice,
        CAROL,
        json!({"command": "accept", "sdp": ANSWER, "id": invite["id"]}),
    )
    .await;
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 200, "{receipt}");
    // (Other call messages may come first: a "cancel" of the invite for her other logins.)
    loop {
        let body = next_body(&mut inbox, CAROL).await;
        if body["command"] == "bye" {
            break;
        }
        assert_ne!(body["command"], "reject", "{body}");
    }
    call.await.unwrap().unwrap();
    // Past the 10 s the registration was granted: the relay refreshed it.
    tokio::time::sleep(Duration::from_secs(11)).await;
    carol_calls(upstream, UDP, "upstream-message-uac")
        .await
        .unwrap();
    hello_web(&mut inbox).await;
    // Her last web login ends: the relay unregisters her there.
    log_out(&alice, id).await;
    eventually(upstream, UDP, "upstream-message-uac-404").await;
}

#[tokio::test]
async fn a_web_user_with_her_own_upstream_account_is_reached_and_calls_over_tcp() {
    let (kamailio, phone) = carol_at_kamailio(TCP).await;
    let upstream = kamailio.addr;
    let relay = Relay::start(&[
        "--sip-upstream",
        &format!("sip:{upstream};transport=tcp"),
        "--sip-upstream-account",
        &format!("{ALICE}=alice:alice-upstream-pw"),
    ])
    .await
    .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let (_, mut inbox) = web_login(&alice).await;
    // Registered over TCP with her own credentials.
    eventually(upstream, TCP, "upstream-message-uac").await;
    hello_web(&mut inbox).await;
    // Her call to carol answers Kamailio's 407 with her credentials too.
    alice_calls_carol(&alice, &mut inbox, upstream, TCP, phone).await;
}

#[tokio::test]
async fn a_phone_at_the_upstream_server_watches_a_web_users_presence() {
    let AliceUpstream {
        kamailio,
        relay: _relay,
        alice,
        id,
        inbox: _inbox,
    } = alice_registered_upstream().await;
    let upstream = kamailio.addr;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("first-notify");
    let flag_arg = flag.to_string_lossy().into_owned();
    let watcher = tokio::spawn(async move {
        Run {
            relay: upstream,
            scenario: "upstream-subscribe",
            mode: UDP,
            port: free_port(),
            keys: &[("from", CAROL), ("to", ALICE), ("flag", &flag_arg)],
            auth: Some((CAROL, CAROL_PW)),
        }
        .pass()
        .await
    });
    // The first NOTIFY (open) came along Kamailio's Record-Route; her logout makes the next.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !flag.exists() {
        assert!(tokio::time::Instant::now() < deadline, "no first NOTIFY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log_out(&alice, id).await;
    watcher.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_call_through_the_upstream_server_is_refused_or_cancelled() {
    let (kamailio, phone) = carol_at_kamailio(UDP).await;
    let upstream = kamailio.addr;
    let relay = trunk_relay(&upstream.to_string(), &[]).await;
    let alice = relay.user(ALICE).await.unwrap();
    let (_, mut inbox) = web_login(&alice).await;
    // Busy: the phone's 486 comes back through Kamailio as a reject.
    let uas = spawn_uas(upstream, UDP, phone, "invite-uas-busy").await;
    let receipt = send(
        &alice,
        CAROL,
        json!({"command": "invite", "url": "/call/x", "id": "b1"}),
    )
    .await;
    // Kamailio's 100 Trying is no delivery: the phone's 486 is the receipt, its status line.
    assert_eq!(receipt["deliveries"][0]["status"], "failed", "{receipt}");
    assert_eq!(receipt["deliveries"][0]["sip"]["code"], 486, "{receipt}");
    let reject = next_body(&mut inbox, CAROL).await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 486, "{reject}");
    assert_eq!(reject["id"], "b1", "{reject}");
    uas.await.unwrap().unwrap();
    // Cancelled while ringing: CANCEL through Kamailio, the phone's 487 a reject.
    let uas = spawn_uas(upstream, UDP, phone, "upstream-invite-uas-cancel").await;
    send(
        &alice,
        CAROL,
        json!({"command": "invite", "sdp": OFFER, "id": "c1"}),
    )
    .await;
    let ringing = next_body(&mut inbox, CAROL).await;
    assert_eq!(ringing["command"], "ringing", "{ringing}");
    let cancel = send(&alice, CAROL, json!({"command": "cancel", "id": "c1"})).await;
    assert_eq!(cancel["deliveries"][0]["status"], "delivered", "{cancel}");
    let reject = next_body(&mut inbox, CAROL).await;
    assert_eq!(reject["command"], "reject", "{reject}");
    assert_eq!(reject["code"], 487, "{reject}");
    uas.await.unwrap().unwrap();
}

/// Kamailio, and a relay serving its domain with alice logged in and so registered there:
/// carol's message reaches her.
struct AliceUpstream {
    kamailio: Kamailio,
    relay: Relay,
    alice: Client,
    /// Her login id.
    id: i64,
    /// Her login's inbox stream.
    inbox: EventStream,
}

async fn alice_registered_upstream() -> AliceUpstream {
    let kamailio = kamailio().await;
    let upstream = kamailio.addr;
    let relay = domain_relay(upstream).await;
    let alice = relay.user(ALICE).await.unwrap();
    let (id, inbox) = web_login(&alice).await;
    eventually(upstream, UDP, "upstream-message-uac").await;
    AliceUpstream {
        kamailio,
        relay,
        alice,
        id,
        inbox,
    }
}

#[tokio::test]
async fn a_relay_that_shuts_down_unregisters_its_users_upstream() {
    let AliceUpstream {
        kamailio,
        mut relay,
        inbox: _inbox,
        ..
    } = alice_registered_upstream().await;
    let upstream = kamailio.addr;
    // Still logged in (for 600 s at Kamailio) when the relay stops: it removes the binding.
    relay.terminate().await.unwrap();
    carol_calls(upstream, UDP, "upstream-message-uac-404")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restarted_relay_registers_its_logged_in_users_upstream_again() {
    let AliceUpstream {
        kamailio,
        mut relay,
        id,
        inbox: first,
        ..
    } = alice_registered_upstream().await;
    let upstream = kamailio.addr;
    drop(first);
    // Killed (no unregistration) and started again on another SIP port: her login survives,
    // and the relay registers her new Contact, so carol's message reaches her again.
    relay.kill_and_restart().await.unwrap();
    let alice = relay.client(ALICE, &format!("pw-{ALICE}"));
    let mut inbox = alice
        .sse(&format!("/login/{ALICE}/{id}"), None)
        .await
        .unwrap();
    assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
    eventually(upstream, UDP, "upstream-message-uac").await;
    hello_web(&mut inbox).await;
}

/// A relay whose upstream server is `sip:{upstream}` (host, port and URI parameters), with the
/// trunk credentials Kamailio's config knows, started with the `extra` flags too.
async fn trunk_relay(upstream: &str, extra: &[&str]) -> Relay {
    let uri = format!("sip:{upstream}");
    let mut args = vec![
        "--sip-upstream",
        uri.as_str(),
        "--sip-upstream-user",
        "relay",
        "--sip-upstream-password",
        "relay-pw",
    ];
    args.extend_from_slice(extra);
    Relay::start(&args).await.unwrap()
}

/// [`trunk_relay`] serving Kamailio's domain (`--sip-upstream-domain kamailio.test`).
async fn domain_relay(upstream: SocketAddr) -> Relay {
    trunk_relay(
        &upstream.to_string(),
        &["--sip-upstream-domain", "kamailio.test"],
    )
    .await
}

/// A [`trunk_relay`] to Kamailio (`upstream`) over `mode`, with dave's phone registered at it
/// over `mode`: the relay, its SIP address and the phone's port.
async fn dave_at_relay(upstream: SocketAddr, mode: Mode) -> (Relay, SocketAddr, u16) {
    let transport = if mode == TCP { ";transport=tcp" } else { "" };
    let relay = trunk_relay(&format!("{upstream}{transport}"), &[]).await;
    let sip = relay.sip.unwrap();
    relay.user(DAVE).await.unwrap();
    let dave = free_port();
    register_phone(sip, mode, DAVE, dave).await;
    (relay, sip, dave)
}

/// Dave's phone, registered at the relay over `mode`, runs `scenario` (a UAC through the
/// relay) to carol from its registered port.
async fn dave_calls(
    relay: SocketAddr,
    mode: Mode,
    port: u16,
    scenario: &str,
) -> anyhow::Result<()> {
    Run {
        relay,
        scenario,
        mode,
        port,
        keys: &[("from", DAVE), ("to", CAROL), ("text", "hello phone")],
        auth: Some((DAVE, DAVE_PW)),
    }
    .pass()
    .await
}

/// Dave's phone at the relay messages, calls and hangs up, then calls and cancels carol's phone
/// at Kamailio over `mode` (the relay's upstream over the same transport). The relay has trunk credentials, yet Kamailio's
/// 407 reaches the phone: the relay never answers a challenge for a phone.
async fn a_phone_at_the_relay_reaches_a_phone_upstream(mode: Mode) {
    let (kamailio, carol) = carol_at_kamailio(mode).await;
    let upstream = kamailio.addr;
    let (_relay, sip, dave) = dave_at_relay(upstream, mode).await;
    // MESSAGE: 407 from Kamailio through the relay, answered by the phone, then carol's 200.
    let uas = spawn_uas(upstream, mode, carol, "message-uas").await;
    dave_calls(sip, mode, dave, "upstream-message-uac")
        .await
        .unwrap();
    uas.await.unwrap().unwrap();
    // INVITE: the same challenge; carol rings and answers; the ACK and BYE go along the
    // relay's and Kamailio's Record-Routes.
    let uas = spawn_uas(upstream, mode, carol, "upstream-invite-uas").await;
    dave_calls(sip, mode, dave, "upstream-proxy-invite-uac")
        .await
        .unwrap();
    uas.await.unwrap().unwrap();
    // Cancelled while ringing: the relay's CANCEL goes to Kamailio, carol's 487 comes back.
    let uas = spawn_uas(upstream, mode, carol, "upstream-invite-uas-cancel").await;
    dave_calls(sip, mode, dave, "upstream-proxy-invite-cancel-uac")
        .await
        .unwrap();
    uas.await.unwrap().unwrap();
    // From a non-account: 404 at once, neither proxied nor sent as a SEND with the relay's
    // credentials (that would get Kamailio's answer for carol's phone, which no longer listens).
    let status = crate::sipp::final_status(
        sip,
        "message-status",
        mode,
        &[
            ("from", "mallory@kamailio.test"),
            ("to", CAROL),
            ("ctype", "text/plain"),
            ("text", "hello"),
        ],
    )
    .await;
    assert!(status.starts_with("SIP/2.0 404"), "{status}");
}

#[tokio::test]
async fn a_phone_at_the_relay_reaches_a_phone_upstream_over_udp() {
    a_phone_at_the_relay_reaches_a_phone_upstream(UDP).await;
}

#[tokio::test]
async fn a_phone_at_the_relay_reaches_a_phone_upstream_over_tcp() {
    a_phone_at_the_relay_reaches_a_phone_upstream(TCP).await;
}

#[tokio::test]
async fn without_an_upstream_a_phones_message_to_another_domain_is_404() {
    let relay = Relay::default().await.unwrap();
    relay.user(DAVE).await.unwrap();
    // Dave's phone, registered (a MESSAGE from dave elsewhere would be challenged first).
    let phone = crate::agent::Agent::new(&relay, crate::agent::Transport::Udp).await;
    assert!(phone.register(DAVE).await.starts_with("SIP/2.0 200"));
    let message = crate::agent::Request {
        content_type: "text/plain",
        body: "hello",
        ..crate::agent::Request::new("MESSAGE", DAVE, CAROL)
    };
    let status = phone.final_response(&message, "to-carol").await;
    assert!(status.starts_with("SIP/2.0 404"), "{status}");
}

/// Carol's phone publishes her presence at Kamailio (`upstream`) over `mode`: open, then
/// closed.
async fn carol_publishes(upstream: SocketAddr, mode: Mode) -> anyhow::Result<()> {
    Run {
        relay: upstream,
        scenario: "upstream-publish",
        mode,
        port: free_port(),
        keys: &[("from", CAROL)],
        auth: Some((CAROL, CAROL_PW)),
    }
    .pass()
    .await
}

/// The data of `e`, checked to be carol's one pseudo-contact with presence `presence`.
fn carol_is(e: &restsip_protocol::Event, kind: EventKind, presence: &str) {
    assert_eq!(e.kind, kind, "{e:?}");
    assert_eq!(e.data["contact"], format!("sip:{CAROL}"), "{e:?}");
    assert_eq!(e.data["presence"], presence, "{e:?}");
    assert_eq!(e.data["source"], "sip", "{e:?}");
}

#[tokio::test]
async fn a_web_user_watches_the_presence_of_a_phone_at_the_upstream_server() {
    let kamailio = kamailio_with(true).await;
    let upstream = kamailio.addr;
    let relay = domain_relay(upstream).await;
    let alice = relay.user(ALICE).await.unwrap();
    // Carol is no account here: watching her subscribes to her presence at Kamailio (its 407
    // answered with the trunk's credentials); nothing is known before the first NOTIFY.
    let mut watch = alice.sse(&format!("/login/{CAROL}"), None).await.unwrap();
    let first = watch.next().await.unwrap();
    assert_eq!(first.kind, EventKind::State, "{first:?}");
    // Kamailio's first NOTIFY (no publication yet: closed) comes as `added`, or is in the
    // state already when it overtook the stream's start.
    if first.data == json!([]) {
        carol_is(&watch.next().await.unwrap(), EventKind::Added, "closed");
    } else {
        assert_eq!(first.data[0]["presence"], "closed", "{first:?}");
    }
    // Carol's phone publishes open, then closed.
    let phone = tokio::spawn(carol_publishes(upstream, UDP));
    carol_is(&watch.next().await.unwrap(), EventKind::Updated, "open");
    // A second watcher (NDJSON) shares the subscription and starts from its state.
    let mut second = alice.ndjson(&format!("/login/{CAROL}")).await.unwrap();
    let state = second.next().await.unwrap();
    assert_eq!(state.kind, EventKind::State, "{state:?}");
    assert_eq!(state.data[0]["presence"], "open", "{state:?}");
    // And so does a WebSocket subscription.
    let mut ws = alice.ws().await.unwrap();
    ws.send(json!({"op": "subscribe", "path": format!("/login/{CAROL}")}))
        .await
        .unwrap();
    let state = ws.next_event().await.unwrap();
    assert_eq!(state.kind, EventKind::State, "{state:?}");
    assert_eq!(state.data[0]["presence"], "open", "{state:?}");
    carol_is(&watch.next().await.unwrap(), EventKind::Updated, "closed");
    carol_is(&second.next().await.unwrap(), EventKind::Updated, "closed");
    carol_is(
        &ws.next_event().await.unwrap(),
        EventKind::Updated,
        "closed",
    );
    phone.await.unwrap().unwrap();
    // A plain GET of a watched address is its state.
    let r = alice.get(&format!("/login/{CAROL}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[0]["presence"], "closed", "{}", r.body);
    assert!(r.body[0]["expires"].as_u64().unwrap() <= 10, "{}", r.body);
    // Past the 10 s Kamailio grants, the subscription lives on (refreshed): a new publication
    // still reaches the watchers.
    tokio::time::sleep(Duration::from_secs(12)).await;
    carol_publishes(upstream, UDP).await.unwrap();
    carol_is(&watch.next().await.unwrap(), EventKind::Updated, "open");
    carol_is(&watch.next().await.unwrap(), EventKind::Updated, "closed");
    carol_is(&ws.next_event().await.unwrap(), EventKind::Updated, "open");
    drop(watch);
    drop(second);
    drop(ws);
    // A domain the upstream does not serve stays 404.
    let r = alice
        .builder("GET", "/login/zed@elsewhere.test")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Once the last watcher left the relay unsubscribed: a plain GET is 404 again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = alice.get(&format!("/login/{CAROL}")).await.unwrap();
        if r.status == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without credentials for Kamailio's 407, the watchers are told the resource is gone.
    let bare = Relay::start(&[
        "--sip-upstream",
        &format!("sip:{upstream}"),
        "--sip-upstream-domain",
        "kamailio.test",
    ])
    .await
    .unwrap();
    let alice = bare.user(ALICE).await.unwrap();
    let mut watch = alice.sse(&format!("/login/{CAROL}"), None).await.unwrap();
    let mut last = watch.next().await.unwrap();
    if last.kind == EventKind::State {
        last = watch.next().await.unwrap();
    }
    assert_eq!(last.kind, EventKind::Gone, "{last:?}");
    // The upstream's answer when the stream was under way by then; when the refusal overtook
    // the stream's start, the subscription is already dropped and the stream finds no user.
    let reason = last.data["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("407") || reason == format!("no user {CAROL}"),
        "{last:?}"
    );
    // Without an upstream, watching carol is 404.
    let plain = Relay::default().await.unwrap();
    let alice = plain.user(ALICE).await.unwrap();
    let r = alice
        .builder("GET", &format!("/login/{CAROL}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Dave's phone at the relay watches carol at Kamailio (its presence server) over `mode`: the
/// relay proxies the SUBSCRIBE there with its Record-Route, Kamailio's 407 reaches the phone,
/// and the NOTIFYs (carol's phone publishing open, then closed) come back through the relay.
async fn a_phone_at_the_relay_watches_a_user_upstream(mode: Mode) {
    let kamailio = kamailio_with(true).await;
    let upstream = kamailio.addr;
    let (_relay, sip, dave) = dave_at_relay(upstream, mode).await;
    let watcher = tokio::spawn(async move {
        Run {
            relay: sip,
            scenario: "upstream-proxy-subscribe-uac",
            mode,
            port: dave,
            keys: &[("from", DAVE), ("to", CAROL)],
            auth: Some((DAVE, DAVE_PW)),
        }
        .pass_with(20, &["-aa"])
        .await
    });
    // Carol publishes once the subscription is in place.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    carol_publishes(upstream, mode).await.unwrap();
    watcher.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_phone_at_the_relay_watches_a_user_upstream_over_udp() {
    a_phone_at_the_relay_watches_a_user_upstream(UDP).await;
}

#[tokio::test]
async fn a_phone_at_the_relay_watches_a_user_upstream_over_tcp() {
    a_phone_at_the_relay_watches_a_user_upstream(TCP).await;
}
