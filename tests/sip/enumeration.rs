//! Nobody lists the accounts over SIP (issue 18): a REGISTER for an unknown address is
//! answered exactly as one for an account, the challenge (status, headers, realm, algorithm,
//! nonce format) and, after a wrong answer, the refusal; only tags, nonces and dates differ.
//! Over UDP and TCP. So are an INVITE, OPTIONS, MESSAGE and SUBSCRIBE an unauthenticated
//! sender sends from an address to itself, and the real scanner, svwar, finds no extension
//! with any of its methods. The times of the answers are printed (figures, not assertions).

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
    let mut challenges = header_lines(resp, "WWW-Authenticate");
    challenges.extend(header_lines(resp, "Proxy-Authenticate"));
    let challenges = challenges
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

/// A request of `method` from `from` to `to`, with what the method needs.
fn request<'a>(method: &'a str, from: &'a str, to: &'a str) -> Request<'a> {
    let base = Request::new(method, from, to);
    match method {
        "MESSAGE" => Request {
            content_type: "text/plain",
            body: "hello",
            ..base
        },
        "SUBSCRIBE" => Request {
            extra: "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 60\r\n",
            ..base
        },
        _ => base,
    }
}

/// An unauthenticated sender asks about an account (online: logged in over REST) and about an
/// address that is none, with INVITE, OPTIONS, MESSAGE and SUBSCRIBE, claiming as its From
/// the address it asks about (as svwar does): each answer for the unknown address is the
/// account's, status and headers (tags, nonces, Call-IDs and branches apart), and so is the
/// refusal of a wrong answer to the challenge. Over UDP and TCP. The times are printed
/// (figures, not assertions).
async fn requests_to_themselves_alike(transport: Transport) {
    let relay = Relay::default().await.unwrap();
    let jan = relay.user(JAN).await.unwrap();
    jan.login(serde_json::json!({})).await.unwrap();
    let agent = Agent::new(&relay, transport).await;
    for method in ["INVITE", "OPTIONS", "MESSAGE", "SUBSCRIBE"] {
        let known = request(method, JAN, JAN);
        let unknown = request(method, NOBODY, NOBODY);
        let (kid, uid) = (format!("{method}-k"), format!("{method}-u"));
        let started = Instant::now();
        let answer = agent.final_response(&known, &kid).await;
        let known_time = started.elapsed();
        let started = Instant::now();
        let unknown_answer = agent.final_response(&unknown, &uid).await;
        let unknown_time = started.elapsed();
        assert_eq!(
            shape(&answer),
            shape(&unknown_answer),
            "{method}:\n{answer}\n{unknown_answer}"
        );
        println!(
            "{transport:?} {method}: {} for the account in {known_time:?}, for nobody in \
             {unknown_time:?}",
            crate::agent::status(&answer)
        );
        if method == "OPTIONS" {
            // Not challenged: the relay's own capabilities, whoever is asked about.
            assert!(answer.starts_with("SIP/2.0 200 "), "{answer}");
            continue;
        }
        assert!(answer.starts_with("SIP/2.0 407 "), "{method}: {answer}");
        let (kid, uid) = (format!("{kid}-auth"), format!("{uid}-auth"));
        let started = Instant::now();
        let wrong = agent.authenticated(&known, &kid, JAN, "guess").await;
        let wrong_time = started.elapsed();
        let started = Instant::now();
        let refused = agent.authenticated(&unknown, &uid, NOBODY, "guess").await;
        let refused_time = started.elapsed();
        assert!(wrong.starts_with("SIP/2.0 403 "), "{method}: {wrong}");
        assert_eq!(shape(&wrong), shape(&refused), "\n{wrong}\n{refused}");
        println!(
            "{transport:?} {method} with a wrong password: for the account {wrong_time:?}, \
             for nobody {refused_time:?} (challenge and answer)"
        );
    }
}

#[tokio::test]
async fn requests_about_an_account_and_nobody_are_answered_alike_over_udp() {
    requests_to_themselves_alike(Transport::Udp).await;
}

#[tokio::test]
async fn requests_about_an_account_and_nobody_are_answered_alike_over_tcp() {
    requests_to_themselves_alike(Transport::Tcp).await;
}

/// The accounts of the svwar runs besides `jan@example.net`, who is logged in (online).
const ACCOUNTS: &[&str] = &["100", "eva"];
/// svwar's word list after the account it starts with: addresses that are none.
const UNKNOWN: &[&str] = &["nobody", "101", "admin", "999"];

/// What one svwar run printed (stdout and stderr, with `--debug` the answers it read), or
/// None when svwar is not installed.
async fn svwar(relay: &Relay, method: &str, words: &std::path::Path) -> Option<String> {
    let relay_addr = relay.sip.unwrap();
    let port = crate::sipp::free_port();
    let run = tokio::process::Command::new("svwar")
        .args([
            "-m",
            method,
            "--domain",
            "example.net",
            "--force",
            "--debug",
        ])
        .arg("-d")
        .arg(words)
        .args(["-P", &port.to_string(), "-x", "127.0.0.1"])
        .args(["--maximumtime", "3", "-t", "0.05"])
        .arg(format!("udp://{relay_addr}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(std::time::Duration::from_secs(60), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Ok(Err(e)) => panic!("svwar: {e}"),
        Err(_) => panic!("svwar -m {method} ran for over 60 s"),
    };
    Some(format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// svwar (Debian's sipvicious; it speaks UDP only) scans a relay holding accounts (one of
/// them online) with `method` and finds no extension. It first asks for a made-up "bad
/// user" and reports any extension answered otherwise; with `--force` it goes on after a
/// bad user that is challenged, and stops at the first extension answered exactly like it
/// (an "unknown response"). So each account is put first in a word list of its own: the
/// run must have read the relay's answer for it (else it proves nothing) and report nothing.
async fn svwar_finds_nothing(method: &str) {
    let relay = Relay::default().await.unwrap();
    for account in ACCOUNTS {
        relay.user(&format!("{account}@example.net")).await.unwrap();
    }
    let online = relay.user(JAN).await.unwrap();
    online.login(serde_json::json!({})).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for first in ["jan"].iter().chain(ACCOUNTS) {
        let words = dir.path().join(format!("{first}.txt"));
        let list: Vec<&str> = [*first].iter().chain(UNKNOWN).copied().collect();
        std::fs::write(&words, list.join("\n") + "\n").unwrap();
        let Some(out) = svwar(&relay, method, &words).await else {
            println!(
                "SKIPPED: svwar is not installed (Debian package sipvicious: scripts/setup.sh)"
            );
            return;
        };
        assert!(
            out.contains(&format!("To: \"{first}\"<sip:{first}@example.net>;tag=")),
            "svwar -m {method} read no answer for {first}:\n{out}"
        );
        assert!(
            out.contains("found nothing") && !out.contains(" exists"),
            "svwar -m {method} told accounts from other addresses:\n{out}"
        );
    }
}

#[tokio::test]
async fn svwar_register_finds_no_extension() {
    svwar_finds_nothing("REGISTER").await;
}

#[tokio::test]
async fn svwar_invite_finds_no_extension() {
    svwar_finds_nothing("INVITE").await;
}

#[tokio::test]
async fn svwar_options_finds_no_extension() {
    svwar_finds_nothing("OPTIONS").await;
}
