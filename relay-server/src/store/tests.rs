//! The store's behaviour, checked on both engines (each test runs on SQLite and on PostgreSQL).

use restsip_protocol::{ContactSource, DeliveryStatus};
use serde_json::Map;

use super::test_db::on_both_engines;
use super::{
    ContactRecord, DigestRecord, MailCaps, MailRecord, SendRecord, StoreError, UserRecord,
};

pub(super) fn user(email: &str) -> UserRecord {
    UserRecord {
        email: email.to_owned(),
        password_hash: "x".to_owned(),
        name: None,
        data: Map::new(),
        created: 1,
    }
}

pub(super) fn contact(email: &str, expires_at: i64) -> ContactRecord {
    ContactRecord {
        email: email.to_owned(),
        id: 0,
        contact: None,
        expires_at,
        presence: None,
        source: ContactSource::Web,
        sip: None,
    }
}

fn mail(owner: &str, sender: &str, body: &str) -> MailRecord {
    MailRecord {
        id: 0,
        owner: owner.to_owned(),
        sender: sender.to_owned(),
        url: None,
        body: Some(serde_json::Value::String(body.to_owned())),
        subject: None,
        created: 1,
    }
}

on_both_engines! {
    async fn a_taken_email_is_a_conflict(s) {
        s.create_user(&user("a@x")).await.expect("first");
        assert!(matches!(
            s.create_user(&user("a@x")).await,
            Err(StoreError::Conflict)
        ));
    }

    async fn contact_ids_are_per_user_and_never_reused(s) {
        s.create_user(&user("a@x")).await.expect("user");
        let c1 = s
            .add_contact(&contact("a@x", 100))
            .await
            .expect("add")
            .expect("user exists");
        assert_eq!(c1.id, 1);
        s.remove_contact("a@x", 1).await.expect("remove");
        let c2 = s
            .add_contact(&contact("a@x", 100))
            .await
            .expect("add")
            .expect("user exists");
        assert_eq!(c2.id, 2);
        assert!(s
            .add_contact(&contact("nobody@x", 100))
            .await
            .expect("add")
            .is_none());
    }

    async fn expired_contacts_are_taken_once(s) {
        s.create_user(&user("a@x")).await.expect("user");
        s.add_contact(&contact("a@x", 10)).await.expect("add");
        s.add_contact(&contact("a@x", 50)).await.expect("add");
        assert_eq!(s.next_expiry().await.expect("expiry"), Some(10));
        assert_eq!(s.contacts("a@x", 20).await.expect("list").len(), 1);
        let gone = s.take_expired_contacts(20).await.expect("take");
        assert_eq!(gone.len(), 1);
        assert!(s.take_expired_contacts(20).await.expect("take").is_empty());
    }

    async fn a_cancelled_send_cannot_be_claimed_and_a_delivered_one_cannot_be_cancelled(s) {
        s.create_user(&user("a@x")).await.expect("user");
        let c = s
            .add_contact(&contact("a@x", i64::MAX))
            .await
            .expect("add")
            .expect("user");
        let send = |seq: i64, msg: &str| SendRecord {
            seq,
            msg_id: msg.to_owned(),
            sender: "b@x".to_owned(),
            to_email: "a@x".to_owned(),
            to_contact: c.id,
            target: "/login/a@x".to_owned(),
            body: serde_json::json!({"command": "invite"}),
            sent: 1,
            status: DeliveryStatus::Queued,
        };
        s.queue_sends(&[send(1, "m1"), send(2, "m2")])
            .await
            .expect("queue");
        assert_eq!(s.queued_count("a@x", c.id).await.expect("count"), 2);
        assert!(s.claim_send(1).await.expect("claim"));
        let out = s
            .cancel_send("b@x", "m1", "a@x", None)
            .await
            .expect("cancel");
        assert_eq!(out, vec![(c.id, DeliveryStatus::Delivered)]);
        let out = s
            .cancel_send("b@x", "m2", "a@x", Some(c.id))
            .await
            .expect("cancel");
        assert_eq!(out, vec![(c.id, DeliveryStatus::Cancelled)]);
        assert!(!s.claim_send(2).await.expect("claim"));
        assert!(s
            .cancel_send("someone-else@x", "m2", "a@x", None)
            .await
            .expect("cancel")
            .is_empty());
        let after = s
            .pending_sends("a@x", c.id, Some(0))
            .await
            .expect("pending");
        assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.max_send_seq().await.expect("max"), 2);
    }

    async fn digest_secrets_are_kept_per_user(s) {
        s.create_user(&user("a@x")).await.expect("user");
        assert_eq!(s.digest("a@x").await.expect("digest"), None);
        let d = DigestRecord {
            realm: "restsip".into(),
            md5: "m".into(),
            sha256: "s".into(),
            aliases: vec![crate::store::DigestAlias {
                username: "a".into(),
                md5: "am".into(),
                sha256: "as".into(),
            }],
        };
        assert!(s.set_digest("a@x", &d).await.expect("set"));
        assert!(!s.set_digest("nobody@x", &d).await.expect("set"));
        assert_eq!(s.digest("a@x").await.expect("digest"), Some(d));
    }

    async fn the_secret_is_created_once(s) {
        let a = s.secret().await.expect("secret");
        assert_eq!(a.len(), 32);
        assert_eq!(s.secret().await.expect("secret"), a);
    }

    async fn a_mailbox_takes_messages_until_a_cap_and_says_which(s) {
        s.create_user(&user("o@x")).await.expect("user");
        let caps = MailCaps {
            messages: 3,
            bytes: 100,
            per_sender: 2,
        };
        let add = |m: MailRecord| {
            let s = s.clone();
            async move { s.add_mail_within(&m, &caps).await.expect("store") }
        };
        let first = add(mail("o@x", "a@x", "1")).await.expect("fits");
        let second = add(mail("o@x", "a@x", "2")).await.expect("fits");
        assert!(second.id > first.id, "ids increase");
        let full = add(mail("o@x", "a@x", "3")).await.expect_err("a's share");
        assert_eq!((full.messages, full.from_sender), (2, 2));
        assert_eq!(full.bytes, 2 * crate::store::rows::mail_size(&mail("o@x", "a@x", "1")));
        let big = add(mail("o@x", "b@x", &"x".repeat(90)))
            .await
            .expect_err("bytes");
        assert_eq!(big.from_sender, 0);
        assert!(big.bytes + big.size > caps.bytes);
        assert!(add(mail("o@x", "b@x", "4")).await.is_ok(), "b's first fits");
        let full = add(mail("o@x", "c@x", "5")).await.expect_err("3 messages");
        assert_eq!(full.messages, 3);
        assert_eq!(s.mail("o@x").await.expect("mail").len(), 3);
        // Unlimited, the store's plain add still adds; the owner deletes one.
        let extra = s.add_mail(&mail("o@x", "c@x", "6")).await.expect("add");
        assert!(s.delete_mail("o@x", extra.id).await.expect("delete"));
        assert!(!s.delete_mail("o@x", extra.id).await.expect("delete"));
        assert!(!s.delete_mail("p@x", first.id).await.expect("not p's"));
    }

    async fn users_calls_and_participants_round_trip(s) {
        let mut u = user("a@x");
        u.name = Some("A".into());
        u.data.insert("k".into(), serde_json::json!([1, "two"]));
        s.create_user(&u).await.expect("user");
        assert_eq!(s.user("a@x").await.expect("read"), Some(u.clone()));
        u.name = None;
        assert!(s.update_user(&u).await.expect("update"));
        assert!(!s.update_user(&user("nobody@x")).await.expect("update"));
        assert_eq!(s.user("a@x").await.expect("read"), Some(u));
        assert!(s.set_presence_rule("a@x", "{}").await.expect("rule"));
        assert_eq!(s.presence_rule("a@x").await.expect("rule").as_deref(), Some("{}"));
        let call = crate::store::CallRecord {
            id: "c1".into(),
            owner: "a@x".into(),
            subject: Some("s".into()),
            data: Map::new(),
            created: 2,
        };
        s.create_call(&call).await.expect("call");
        assert!(matches!(s.create_call(&call).await, Err(StoreError::Conflict)));
        assert_eq!(s.call("c1").await.expect("read"), Some(call));
        let p = crate::store::ParticipantRecord {
            call_id: "c1".into(),
            id: 0,
            login: "/login/a@x/1".into(),
            user: "a@x".into(),
            session: Some(serde_json::json!({"sdp": "v=0"})),
            data: Map::new(),
        };
        let p1 = s.add_participant(&p).await.expect("join").expect("call");
        let p2 = s.add_participant(&p).await.expect("join").expect("call");
        assert_eq!((p1.id, p2.id), (1, 2));
        assert_eq!(s.participant("c1", 1).await.expect("read"), Some(p1.clone()));
        assert!(s.update_participant(&crate::store::ParticipantRecord { session: None, ..p1 })
            .await
            .expect("update"));
        assert_eq!(s.gauges(0).await.expect("gauges").calls, 1);
        let gone = s
            .remove_participants_of(&["/login/a@x/1".to_owned()])
            .await
            .expect("remove");
        assert_eq!(gone.len(), 2);
        assert!(s.participants("c1").await.expect("list").is_empty());
        let mut other = p.clone();
        other.call_id = "none".into();
        assert!(s.add_participant(&other).await.expect("join").is_none());
        assert!(s.delete_call("c1").await.expect("delete"));
        assert!(s.delete_user("a@x").await.expect("delete"));
        assert!(!s.delete_user("a@x").await.expect("delete"));
        assert_eq!(s.user("a@x").await.expect("read"), None);
    }

    async fn revoked_tokens_are_kept_until_they_expire(s) {
        s.revoke_token("t1", 100).await.expect("revoke");
        s.revoke_token("t1", 100).await.expect("again");
        s.revoke_token("t2", 10).await.expect("revoke");
        assert_eq!(
            s.revoked_tokens(50).await.expect("list"),
            vec![("t1".to_owned(), 100)]
        );
        assert!(s.writable().await.is_ok());
    }

    async fn the_dialogs_of_a_node_are_taken_once_and_an_ended_one_not_at_all(s) {
        let record = serde_json::json!({"sender": "w@x", "cseq": 1});
        s.keep_dialog("c1", "a", &record).await.expect("keep");
        s.keep_dialog("c2", "a", &record).await.expect("keep");
        s.keep_dialog("c3", "b", &record).await.expect("keep");
        s.drop_dialog("c2").await.expect("ended");
        let taken = s.take_dialogs("a").await.expect("take");
        assert_eq!(taken, vec![("c1".to_owned(), record.clone())]);
        assert!(s.take_dialogs("a").await.expect("again").is_empty());
        assert_eq!(s.take_dialogs("b").await.expect("b").len(), 1);
    }
}
