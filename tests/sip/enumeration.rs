//! Nobody lists the accounts over SIP (issue 18): a REGISTER for an unknown address is
//! answered exactly as one for an account, the challenge (status, headers, realm, algorithm,
//! nonce format) and, after a wrong answer, the refusal; only tags, nonces and dates differ.
//! Over UDP and TCP. The times of both refusals are printed (figures, not assertions).

use std::collections::BTreeSet;
use std::time::Instant;

use restsip_e2e::Relay;

use crate::agent::{Agent, Request, Transport};
use crate::phones::header_lines;

const JAN: &str = "jan@example.net";
const NOBODY: &str = "nobody@example.net";

/// A response with what differs per request masked: tags, nonces, dates, Call-IDs, Via
/// branches and ports.
fn shape(resp: &str) -> (String, BTreeSet<String>, Vec<String>) {
    let head = resp.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let names = lines
        .clone()
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let challenges = header_lines(resp, "WWW-Authenticate")
        .into_iter()
        .map(|c| {
            let nonce = crate::agent::param(&c, "nonce");
            assert_eq!(nonce.len(), 43, "nonce format: {c}");
            c.replace(&nonce, "NONCE")
        })
        .collect();
    (status, names, challenges)
}

async fn known_and_unknown_alike(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let register = |aor| Request {
        extra: "Expires: 300\r\n",
        ..Request::new("REGISTER", aor, aor)
    };
    let known = Agent::new(&relay, transport).await;
    let unknown = Agent::new(&relay, transport).await;
    let challenge = known.final_response(&register(JAN), "enum-k1").await;
    let unknown_challenge = unknown.final_response(&register(NOBODY), "enum-u1").await;
    assert!(challenge.starts_with("SIP/2.0 401 "), "{challenge}");
    assert_eq!(
        shape(&challenge),
        shape(&unknown_challenge),
        "\n{challenge}\n{unknown_challenge}"
    );
    let started = Instant::now();
    let wrong = known
        .authenticated(&register(JAN), "enum-k2", JAN, "guess")
        .await;
    let wrong_time = started.elapsed();
    let started = Instant::now();
    let refused = unknown
        .authenticated(&register(NOBODY), "enum-u2", NOBODY, "guess")
        .await;
    let unknown_time = started.elapsed();
    assert!(wrong.starts_with("SIP/2.0 403 "), "{wrong}");
    assert_eq!(shape(&wrong), shape(&refused), "\n{wrong}\n{refused}");
    println!(
        "{transport:?}: wrong password for an account {wrong_time:?}, for an unknown \
         address {unknown_time:?} (challenge and answer, round trips included)"
    );
}

#[tokio::test]
async fn an_unknown_address_is_answered_as_an_account_over_udp() {
    known_and_unknown_alike(Transport::Udp).await;
}

#[tokio::test]
async fn an_unknown_address_is_answered_as_an_account_over_tcp() {
    known_and_unknown_alike(Transport::Tcp).await;
}
