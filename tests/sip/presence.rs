//! Presence (RFC 3856, 6665, PIDF RFC 3863), over UDP and TCP: a sipp watcher subscribes to a
//! web user and hears closed, then open when the user logs in over REST, then unsubscribes and
//! gets the last NOTIFY; another refreshes once and then lets the subscription expire.

use std::time::Duration;

use restsip_e2e::{Relay, WAIT};
use serde_json::json;

use crate::sipp::{free_port, Mode, Run, TCP, UDP};

const BOB: &str = "bob@example.net";

/// Lets everyone watch bob: the sipp watcher is of another domain, unauthenticated (by
/// default only signed-in users may watch; see disclosure.rs).
pub(crate) async fn everyone_may_watch(bob: &restsip_e2e::Client) {
    let rule = json!({"allow": "everyone"});
    let r = bob
        .request("PUT", &format!("/user/{BOB}/presence-rule"), Some(rule))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn watch_a_web_user(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    everyone_may_watch(&bob).await;
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("first-notify");
    let flag_arg = flag.to_string_lossy().into_owned();
    let sip = relay.sip.unwrap();
    let watcher = tokio::spawn(async move {
        Run {
            relay: sip,
            scenario: "subscribe",
            mode,
            port: free_port(),
            keys: &[("to", BOB), ("flag", &flag_arg)],
            auth: None,
        }
        .pass()
        .await
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while !flag.exists() {
        assert!(tokio::time::Instant::now() < deadline, "no first NOTIFY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.login(json!({})).await.unwrap();
    watcher.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_phone_watches_a_web_users_presence_over_udp() {
    watch_a_web_user(UDP).await;
}

#[tokio::test]
async fn a_phone_watches_a_web_users_presence_over_tcp() {
    watch_a_web_user(TCP).await;
}

/// Slow: the shortest subscription the relay grants is 30 s, and it must run out.
async fn refresh_then_expire(mode: Mode) {
    let relay = Relay::default().await.unwrap();
    let bob = relay.user(BOB).await.unwrap();
    everyone_may_watch(&bob).await;
    Run {
        relay: relay.sip.unwrap(),
        scenario: "subscribe-expire",
        mode,
        port: free_port(),
        keys: &[("to", BOB)],
        auth: None,
    }
    .pass_within(60)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refreshed_subscription_expires_with_a_last_notify_over_udp() {
    refresh_then_expire(UDP).await;
}

#[tokio::test]
async fn a_refreshed_subscription_expires_with_a_last_notify_over_tcp() {
    refresh_then_expire(TCP).await;
}
