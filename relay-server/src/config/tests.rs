//! Settings: flags, file and defaults.

use super::*;
use restsip_sip::digest::Algorithm;

#[test]
fn flags_win_over_the_file_and_defaults_fill_the_rest() {
    let dir = std::env::temp_dir().join(format!("restsip-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        "http = \"127.0.0.1:9000\"\nmax-body-bytes = 2048\nmin-expires = 5\n",
    )
    .expect("write config");
    let cli = Settings {
        config: Some(file),
        max_body_bytes: Some(4096),
        ..Settings::default()
    };
    let config = Config::resolve(cli).expect("valid config");
    assert_eq!(config.http.port(), 9000);
    assert_eq!(config.limits.max_body_bytes, 4096);
    assert_eq!(config.limits.min_expires, 5);
    assert_eq!(config.limits.default_expires, 3600);
    assert_eq!(config.database, "sqlite:data/restsip.db");
    assert_eq!(
        config.sip.addr,
        Some(SocketAddr::from(([127, 0, 0, 1], 5060)))
    );
    assert!(config.sip.auth);
}

#[test]
fn an_upstream_is_a_sip_uri_with_both_credentials_or_none() {
    let ok = resolve_upstream(Some("sip:127.0.0.1:5070;transport=tcp".into()), None, None)
        .expect("upstream");
    assert_eq!(
        ok.map(|u| u.uri),
        Some("sip:127.0.0.1:5070;transport=tcp".into())
    );
    assert!(resolve_upstream(Some("http://x".into()), None, None).is_err());
    assert!(resolve_upstream(Some("sip:bob@x".into()), None, None).is_err());
    assert!(resolve_upstream(Some("sip:x".into()), Some("u".into()), None).is_err());
    assert!(resolve_upstream(None, Some("u".into()), Some("p".into())).is_err());
    let with = resolve_upstream(Some("sip:x".into()), Some("u".into()), Some("p".into()))
        .expect("upstream")
        .expect("some");
    assert!(
        !format!("{with:?}").contains("\"p\""),
        "the password is not shown"
    );
    let users = resolve_upstream_users(
        Some(with),
        UpstreamUsers {
            domains: vec!["PBX.example.org".into()],
            accounts: vec!["Dave@example.net=dave:s3:cret".into()],
            expires: Some(60),
        },
    )
    .expect("users")
    .expect("some");
    assert!(users.registers("carol@pbx.example.org"));
    assert!(users.registers("dave@example.net"));
    assert!(!users.registers("erin@example.net"));
    assert_eq!(
        users.credentials_of("dave@example.net"),
        Some(&("dave".to_owned(), "s3:cret".to_owned()))
    );
    assert_eq!(
        users.credentials_of("carol@pbx.example.org"),
        Some(&("u".to_owned(), "p".to_owned()))
    );
    assert!(!format!("{users:?}").contains("s3:cret"));
    let bad = |domains: Vec<String>, accounts: Vec<String>, expires| {
        resolve_upstream_users(
            resolve_upstream(Some("sip:x".into()), None, None).expect("upstream"),
            UpstreamUsers {
                domains,
                accounts,
                expires,
            },
        )
        .is_err()
    };
    assert!(bad(vec!["a b".into()], vec![], None));
    assert!(bad(vec![], vec!["dave@example.net=dave".into()], None));
    assert!(bad(vec![], vec![], Some(5)));
    assert!(resolve_upstream_users(
        None,
        UpstreamUsers {
            expires: Some(60),
            ..UpstreamUsers::default()
        }
    )
    .is_err());
}

#[test]
fn sip_can_be_moved_turned_off_and_its_auth_disabled() {
    let cli = Settings {
        sip: Some("[::1]:0".into()),
        sip_auth: Some("off".into()),
        sip_realm: Some("example.net".into()),
        sip_digest_algorithms: Some("sha-256, MD5".into()),
        ..Settings::default()
    };
    let config = Config::resolve(cli).expect("valid config");
    assert_eq!(config.sip.addr, Some("[::1]:0".parse().expect("addr")));
    assert!(!config.sip.auth);
    assert_eq!(config.sip.realm, "example.net");
    assert_eq!(config.sip.algorithms, [Algorithm::Sha256, Algorithm::Md5]);
    let off = Config::resolve(Settings {
        sip: Some("off".into()),
        ..Settings::default()
    })
    .expect("valid config");
    assert_eq!(off.sip.addr, None);
    for bad in [
        Settings {
            sip: Some("nowhere".into()),
            ..Settings::default()
        },
        Settings {
            sip_auth: Some("maybe".into()),
            ..Settings::default()
        },
        Settings {
            sip_max_message_bytes: Some(10),
            ..Settings::default()
        },
    ] {
        assert!(Config::resolve(bad).is_err());
    }
}

#[test]
fn soap_services_come_from_flags_or_the_file() {
    let cli = Settings {
        soap_service: vec![
            "urn:example:stock=http://127.0.0.1:9/soap".into(),
            "http://example.net/ns?a=b=https://soap.example.net/x".into(),
        ],
        ..Settings::default()
    };
    let config = Config::resolve(cli).expect("valid config");
    assert_eq!(config.soap.timeout, 10);
    assert_eq!(config.soap.endpoints.len(), 2);
    assert_eq!(config.soap.endpoints[0].namespace, "urn:example:stock");
    assert_eq!(config.soap.endpoints[0].url, "http://127.0.0.1:9/soap");
    assert_eq!(
        config.soap.endpoints[1].namespace,
        "http://example.net/ns?a=b"
    );
    assert_eq!(config.soap.endpoints[1].url, "https://soap.example.net/x");

    let dir = std::env::temp_dir().join(format!("restsip-config-soap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("relay.toml");
    std::fs::write(
        &file,
        "soap-service = [\"urn:x=http://127.0.0.1:1/\"]\nsoap-timeout = 3\n",
    )
    .expect("write config");
    let config = Config::resolve(Settings {
        config: Some(file),
        ..Settings::default()
    })
    .expect("valid config");
    assert_eq!(config.soap.endpoints[0].namespace, "urn:x");
    assert_eq!(config.soap.timeout, 3);

    for bad in [
        vec!["no-url".to_owned()],
        vec!["=http://x/".to_owned()],
        vec!["urn:a=http://x/".to_owned(), "urn:a=http://y/".to_owned()],
    ] {
        let cli = Settings {
            soap_service: bad,
            ..Settings::default()
        };
        assert!(Config::resolve(cli).is_err());
    }
}

#[test]
fn an_unknown_setting_in_the_file_is_an_error() {
    let dir = std::env::temp_dir().join(format!("restsip-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("relay.toml");
    std::fs::write(&file, "htp = \"127.0.0.1:9000\"\n").expect("write config");
    let err = Config::resolve(Settings {
        config: Some(file),
        ..Settings::default()
    })
    .expect_err("typo must be reported");
    assert!(err.to_string().contains("htp"), "{err}");
}

#[test]
fn inconsistent_expiry_limits_are_refused() {
    let cli = Settings {
        min_expires: Some(100),
        default_expires: Some(10),
        ..Settings::default()
    };
    assert!(Config::resolve(cli).is_err());
}
