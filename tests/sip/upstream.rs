//! The upstream SIP server (`--sip-upstream`): a real Kamailio (Debian package `kamailio`,
//! config tests/sip/kamailio-upstream.cfg) with a sipp phone registered as
//! carol@kamailio.test; a web user's `im` SEND to that address (not an account of the relay)
//! goes out as a MESSAGE through Kamailio and the phone's 200 is the delivery's status.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use restsip_e2e::{Relay, WAIT};
use serde_json::json;

use crate::sipp::{free_port, Run, UDP};

const ALICE: &str = "alice@example.net";
const CAROL: &str = "carol@kamailio.test";

/// Kamailio in the foreground on `port`, in its own process group, stopped (with its worker
/// processes) when dropped.
struct Kamailio {
    /// The main process.
    child: std::process::Child,
    /// Its pid file and config.
    _dir: tempfile::TempDir,
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

async fn kamailio(port: u16) -> Kamailio {
    let dir = tempfile::tempdir().unwrap();
    let template = include_str!("kamailio-upstream.cfg");
    let cfg = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg, template.replace("KAMAILIO_PORT", &port.to_string())).unwrap();
    let child = std::process::Command::new("kamailio")
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
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kamailio did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Kamailio { child, _dir: dir }
}

#[tokio::test]
async fn a_web_user_messages_a_phone_registered_at_the_upstream_server() {
    let kport = free_port();
    let _kamailio = kamailio(kport).await;
    let upstream: SocketAddr = ([127, 0, 0, 1], kport).into();
    let phone = free_port();
    Run {
        relay: upstream,
        scenario: "register-plain",
        mode: UDP,
        port: phone,
        keys: &[("aor", CAROL), ("expires", "120")],
        auth: None,
    }
    .pass()
    .await
    .unwrap();
    let uas = tokio::spawn(async move {
        Run {
            relay: upstream,
            scenario: "message-uas",
            mode: UDP,
            port: phone,
            keys: &[],
            auth: None,
        }
        .pass()
        .await
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::net::UdpSocket::bind(("127.0.0.1", phone)).is_ok()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let relay = Relay::start(&["--sip-upstream", &format!("sip:{upstream}")])
        .await
        .unwrap();
    let alice = relay.user(ALICE).await.unwrap();
    let r = alice
        .request(
            "SEND",
            &format!("/login/{CAROL}"),
            Some(json!({"command": "im", "text": "hello phone"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["deliveries"][0];
    assert_eq!(d["contact"], format!("sip:{CAROL}"), "{}", r.body);
    assert_eq!(d["status"], "delivered", "{}", r.body);
    assert_eq!(d["sip"]["code"], 200, "{}", r.body);
    uas.await.unwrap().unwrap();
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
