//! Nothing acknowledged is lost: kill -9 of the relay and a restart keep users, offline
//! messages, queued SENDs, logins and calls. [`Durable`] is the state written before the crash
//! and checked after it, which `postgres` reuses on PostgreSQL.

use restsip_e2e::{Client, EventStream, Relay};
use restsip_protocol::EventKind;
use serde_json::json;

/// What alice and bob had the relay acknowledge before a crash, to be found again after it.
pub(crate) struct Durable {
    /// The subject of alice's call.
    subject: &'static str,
    /// Bob's login (contact `sip:bob@10.0.0.2`).
    pub(crate) bob_login: i64,
    /// Alice's call, which bob joined (session `rtsp://s`).
    pub(crate) call: String,
    /// A token of alice's, issued before the crash (by [`Durable::mail_and_queue`]).
    token: String,
}

impl Durable {
    /// Bob logs in with a contact; alice opens a call on `subject`, which bob joins.
    pub(crate) async fn call(alice: &Client, bob: &Client, subject: &'static str) -> Durable {
        let bob_login = bob
            .login(json!({"contact": "sip:bob@10.0.0.2"}))
            .await
            .unwrap();
        let call = alice
            .request("POST", "/call", Some(json!({"subject": subject})))
            .await
            .unwrap()
            .body["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let joined = bob
            .request(
                "POST",
                &call,
                Some(json!({"url": "/login/bob@example.net", "session": "rtsp://s"})),
            )
            .await
            .unwrap();
        assert!(joined.status < 300, "{joined:?}");
        Durable {
            subject,
            bob_login,
            call,
            token: String::new(),
        }
    }

    /// Alice leaves bob offline mail, then 20 SENDs (`{"n": 0..20}`, each acknowledged 200)
    /// while nobody listens; her token is kept.
    pub(crate) async fn mail_and_queue(&mut self, alice: &Client) {
        let mail = alice
            .request(
                "POST",
                "/user/bob@example.net/message",
                Some(json!({"url": "rtsp://vm/1"})),
            )
            .await
            .unwrap();
        assert!(mail.status < 300, "{mail:?}");
        for n in 0..20 {
            let res = alice
                .request("SEND", "/login/bob@example.net", Some(json!({"n": n})))
                .await
                .unwrap();
            assert_eq!(res.status, 200);
        }
        self.token = alice.token().await.unwrap();
    }

    /// After the restart: users and passwords, the token, bob's login, the call, the mail, and
    /// every acknowledged SEND delivered, in order, once. Bob's login stream, quiet after them.
    pub(crate) async fn assert_kept(&self, relay: &Relay) -> EventStream {
        let alice = relay.client("alice@example.net", "pw-alice@example.net");
        let bob = relay.client("bob@example.net", "pw-bob@example.net");
        assert_eq!(
            alice.get("/user/bob@example.net").await.unwrap().status,
            200
        );
        let token = &self.token;
        assert_eq!(
            relay
                .anonymous()
                .get(&format!("/user/alice@example.net?access_token={token}"))
                .await
                .unwrap()
                .status,
            200,
            "a token from before the crash (the signing key is stored)"
        );
        // Logins and calls, until they expire.
        let contacts = alice.get("/login/bob@example.net").await.unwrap().body;
        assert_eq!(contacts[0]["contact"], "sip:bob@10.0.0.2");
        let call_state = alice.get(&self.call).await.unwrap().body;
        assert_eq!(call_state["subject"], self.subject);
        assert_eq!(call_state["children"][0]["session"], "rtsp://s");
        // Offline mail.
        assert_eq!(
            bob.get("/user/bob@example.net/message").await.unwrap().body[0]["url"],
            "rtsp://vm/1"
        );
        // Every acknowledged SEND is delivered, in order, once.
        let mut inbox = bob
            .sse(&format!("/login/bob@example.net/{}", self.bob_login), None)
            .await
            .unwrap();
        assert_eq!(inbox.next().await.unwrap().kind, EventKind::State);
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(
                inbox.next().await.unwrap().data["body"]["n"]
                    .as_i64()
                    .unwrap(),
            );
        }
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        inbox.assert_quiet().await;
        inbox
    }
}

#[tokio::test]
async fn kill_dash_nine_and_restart_lose_nothing_acknowledged() {
    let mut relay = Relay::default().await.unwrap();
    let alice = relay.user("alice@example.net").await.unwrap();
    let bob = relay.user("bob@example.net").await.unwrap();
    let mut durable = Durable::call(&alice, &bob, "durable").await;
    durable.mail_and_queue(&alice).await;
    let before = alice
        .sse("/login/bob@example.net", None)
        .await
        .unwrap()
        .next()
        .await
        .unwrap()
        .id;

    relay.kill_and_restart().await.unwrap();

    let mut inbox = durable.assert_kept(&relay).await;
    // Event ids after the restart are above the ones before it, so a resume is never confused.
    let alice = relay.client("alice@example.net", "pw-alice@example.net");
    alice
        .request("SEND", "/login/bob@example.net", Some(json!({"n": 99})))
        .await
        .unwrap();
    let next = inbox.next().await.unwrap();
    assert_eq!(next.data["body"]["n"], 99);
    assert!(next.id > before, "{} > {before}", next.id);
}
