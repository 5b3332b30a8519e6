//! Nobody guesses passwords over HTTP Basic: wrong passwords from one address are throttled
//! (429 with Retry-After, no password checked meanwhile) without locking the account's owner
//! out of another address; an unknown account is refused exactly as a wrong password.

use std::net::IpAddr;

use restsip_e2e::Relay;

const JAN: &str = "jan@example.net";

/// A GET of Jan's logins as `email`/`password` from the local address `from`: status, the
/// Retry-After header and the body.
async fn get_from(
    relay: &Relay,
    from: &str,
    email: &str,
    password: &str,
) -> (u16, Option<String>, String) {
    let ip: IpAddr = from.parse().unwrap();
    let http = reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap();
    let res = http
        .get(relay.url(&format!("/login/{JAN}")))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, res.text().await.unwrap())
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_address_not_for_the_owner_elsewhere() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let right = format!("pw-{JAN}");
    let mut throttled = None;
    for _ in 0..20 {
        let (status, retry, body) = get_from(&relay, "127.0.0.1", JAN, "guess").await;
        match status {
            401 => continue,
            429 => {
                throttled = Some(retry);
                break;
            }
            other => panic!("{other} {body}"),
        }
    }
    let retry = throttled.expect("20 wrong passwords and no 429");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)));
    // Even the right password waits from that address...
    let (status, _, _) = get_from(&relay, "127.0.0.1", JAN, &right).await;
    assert_eq!(status, 429);
    // ...but the owner elsewhere is served.
    let (status, _, body) = get_from(&relay, "127.0.0.2", JAN, &right).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unknown_account_is_refused_as_a_wrong_password() {
    let relay = Relay::default().await.unwrap();
    relay.user(JAN).await.unwrap();
    let (wrong, _, wrong_body) = get_from(&relay, "127.0.0.3", JAN, "guess").await;
    let (unknown, _, unknown_body) =
        get_from(&relay, "127.0.0.3", "nobody@example.net", "guess").await;
    assert_eq!((wrong, unknown), (401, 401));
    assert_eq!(wrong_body, unknown_body);
}
