//! Nobody guesses passwords or lists accounts over SIP: an unknown address of record is
//! challenged like an account and refused like a wrong password; wrong digest answers from one
//! address are throttled (403 with Retry-After) without locking the account out elsewhere; a
//! digest answer made for another Request-URI is refused.

use restsip_e2e::Relay;

use crate::phones::Phone;

const JAN: &str = "jan@example.net";

#[tokio::test]
async fn an_unknown_user_is_answered_as_an_account_with_a_wrong_password() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let known = Phone::new(&relay).await;
    known.send(&known.register(JAN, 1, None)).await;
    let challenge = known.next("SIP/2.0 ").await;
    let nobody = Phone::new(&relay).await;
    nobody
        .send(&nobody.register("nobody@example.net", 1, None))
        .await;
    let unknown_challenge = nobody.next("SIP/2.0 ").await;
    let status = |m: &str| m.lines().next().unwrap_or_default().to_owned();
    assert_eq!(status(&challenge), status(&unknown_challenge));
    assert!(
        status(&unknown_challenge).starts_with("SIP/2.0 401"),
        "{unknown_challenge}"
    );
    let wrong = known.register_as(JAN, JAN, "wrong").await;
    let unknown = nobody
        .register_as("nobody@example.net", "nobody@example.net", "anything")
        .await;
    assert!(wrong.starts_with("SIP/2.0 403"), "{wrong}");
    assert_eq!(wrong, unknown, "the same refusal for both");
}

#[tokio::test]
async fn wrong_digest_answers_are_throttled_per_address_not_for_the_owner_elsewhere() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let attacker = Phone::new(&relay).await;
    let mut throttled = None;
    for _ in 0..20 {
        let status = attacker.register_as(JAN, JAN, "guess").await;
        assert!(status.starts_with("SIP/2.0 403"), "{status}");
        if status.contains("try later") {
            throttled = Some(status);
            break;
        }
    }
    assert!(throttled.is_some(), "20 wrong answers and no throttling");
    // Even the right password waits from that address...
    let blocked = attacker.register_as(JAN, JAN, &format!("pw-{JAN}")).await;
    assert!(blocked.contains("try later"), "{blocked}");
    // ...but the owner's phone at another address registers.
    let owner = Phone::on(&relay, "127.0.0.2").await;
    let ok = owner.register_as(JAN, JAN, &format!("pw-{JAN}")).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
}

#[tokio::test]
async fn a_digest_answer_for_another_request_uri_is_refused() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let phone = Phone::new(&relay).await;
    phone.send(&phone.register(JAN, 1, None)).await;
    let challenge = phone.next("SIP/2.0 401").await;
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let authorization = format!(
        "Authorization: Digest username=\"{JAN}\", realm=\"restsip\", nonce=\"{nonce}\", \
         uri=\"sip:elsewhere.example\", response=\"00000000000000000000000000000000\", \
         algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\""
    );
    phone
        .send(&phone.register(JAN, 2, Some(&authorization)))
        .await;
    let answer = phone.next("SIP/2.0 ").await;
    assert!(answer.starts_with("SIP/2.0 400"), "{answer}");
    assert!(
        answer.lines().next().unwrap().contains("digest uri"),
        "{answer}"
    );
}
