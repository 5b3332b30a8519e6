//! Digest vectors from RFC 7616 §3.9.1, nonces, staleness and replays.

use super::*;

const BOTH: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// The example of RFC 7616 §3.9.1 (an HTTP GET; the computation is the same for SIP).
fn rfc7616_example(algorithm: &str, response: &str) -> Credentials {
    Credentials {
        username: "Mufasa".into(),
        realm: "http-auth@example.org".into(),
        nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
        uri: "/dir/index.html".into(),
        response: response.into(),
        algorithm: Some(algorithm.into()),
        cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
        nc: Some("00000001".into()),
        qop: Some("auth".into()),
    }
}

#[test]
fn rfc7616_vectors_for_md5_and_sha256() {
    for (alg, algorithm, response) in [
        ("MD5", Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let c = rfc7616_example(alg, response);
        let h = ha1(
            algorithm,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(c.expected(algorithm, &h, "GET"), response, "{alg}");
    }
}

#[test]
fn an_authorization_header_parses() {
    let c = Credentials::parse(
        "Digest username=\"alice@example.net\", realm=\"restsip\", nonce=\"abc\", \
         uri=\"sip:example.net\", response=\"0A1B\", algorithm=SHA-256, cnonce=\"x,y\", \
         nc=00000001, qop=auth",
    )
    .expect("digest");
    assert_eq!(c.username, "alice@example.net");
    assert_eq!(c.cnonce.as_deref(), Some("x,y"));
    assert_eq!(c.response, "0a1b");
    assert_eq!(c.algorithm(), Some(Algorithm::Sha256));
    assert!(Credentials::parse("Basic YWxpY2U6cHc=").is_none());
}

fn answer(
    auth: &DigestAuth,
    nonce: &str,
    algorithm: Algorithm,
    password: &str,
    nc: u32,
) -> Credentials {
    let mut c = Credentials {
        username: "alice@example.net".into(),
        realm: auth.realm().into(),
        nonce: nonce.into(),
        uri: "sip:example.net".into(),
        algorithm: Some(algorithm.name().into()),
        cnonce: Some("c0ffee".into()),
        nc: Some(format!("{nc:08x}")),
        qop: Some("auth".into()),
        ..Credentials::default()
    };
    let h = ha1(algorithm, &c.username, auth.realm(), password);
    c.response = c.expected(algorithm, &h, "REGISTER");
    c
}

fn stored(auth: &DigestAuth) -> impl Fn(Algorithm) -> Option<String> + '_ {
    |a| Some(ha1(a, "alice@example.net", auth.realm(), "secret"))
}

#[test]
fn right_wrong_stale_and_replayed_responses() {
    let auth = DigestAuth::new("restsip", &BOTH, b"key", 300);
    let nonce = auth.nonce(1000);
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let n = auth.nonce(1000);
        let ok = answer(&auth, &n, alg, "secret", 1);
        assert_eq!(
            auth.verify(&ok, "REGISTER", stored(&auth), 1010),
            Verdict::Valid
        );
        // The same nonce count again is a replay; a higher one is fine.
        assert!(matches!(
            auth.verify(&ok, "REGISTER", stored(&auth), 1010),
            Verdict::Invalid(_)
        ));
        let next = answer(&auth, &n, alg, "secret", 2);
        assert_eq!(
            auth.verify(&next, "REGISTER", stored(&auth), 1011),
            Verdict::Valid
        );
    }
    let wrong = answer(&auth, &nonce, Algorithm::Md5, "guess", 1);
    assert_eq!(
        auth.verify(&wrong, "REGISTER", stored(&auth), 1010),
        Verdict::Invalid("wrong password")
    );
    let late = answer(&auth, &nonce, Algorithm::Sha256, "secret", 1);
    assert_eq!(
        auth.verify(&late, "REGISTER", stored(&auth), 1301),
        Verdict::Stale
    );
    let other_method = answer(&auth, &nonce, Algorithm::Md5, "secret", 1);
    assert!(matches!(
        auth.verify(&other_method, "INVITE", stored(&auth), 1010),
        Verdict::Invalid(_)
    ));
}

#[test]
fn nonces_of_another_key_or_tampered_ones_are_refused() {
    let auth = DigestAuth::new("restsip", &BOTH, b"key", 300);
    let other = DigestAuth::new("restsip", &BOTH, b"other key", 300);
    let forged = answer(&auth, &other.nonce(1000), Algorithm::Md5, "secret", 1);
    assert_eq!(
        auth.verify(&forged, "REGISTER", stored(&auth), 1000),
        Verdict::Invalid("unknown nonce")
    );
    let mut n = auth.nonce(1000).into_bytes();
    n[3] = if n[3] == b'A' { b'B' } else { b'A' };
    let tampered = answer(
        &auth,
        &String::from_utf8(n).expect("ascii"),
        Algorithm::Md5,
        "secret",
        1,
    );
    assert!(matches!(
        auth.verify(&tampered, "REGISTER", stored(&auth), 1000),
        Verdict::Invalid(_)
    ));
}

#[test]
fn challenges_offer_sha256_before_md5() {
    let auth = DigestAuth::new("restsip", &BOTH, b"key", 300);
    let c = auth.challenges(5, true);
    assert!(c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"));
    assert!(c
        .iter()
        .all(|v| v.contains("stale=true") && v.contains("qop=\"auth\"")));
}

#[test]
fn the_same_request_may_use_its_nonce_count_again_another_may_not() {
    let auth = DigestAuth::new("restsip", &BOTH, b"key", 300);
    let n = auth.nonce(1000);
    let ok = answer(&auth, &n, Algorithm::Sha256, "secret", 1);
    let verify = |request| auth.verify_request(&ok, "REGISTER", stored(&auth), 1010, request);
    assert_eq!(verify(Some(7)), Verdict::Valid);
    // Its retransmission (the same fingerprint) is not a replay.
    assert_eq!(verify(Some(7)), Verdict::Valid);
    // Another request, or one without a fingerprint, with that count is.
    assert!(matches!(verify(Some(8)), Verdict::Invalid(_)));
    assert!(matches!(verify(None), Verdict::Invalid(_)));
}
