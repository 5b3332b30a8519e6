//! Media settings: the rtpengine that carries media between browsers and phones, the STUN
//! and TURN servers handed to pages, and what becomes of a phone's plain offer without
//! rtpengine.

use restsip_protocol::IceServer;

/// Media settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// rtpengine's ng control address (`HOST:PORT`, UDP), if any.
    pub rtpengine: Option<String>,
    /// The ICE servers pages get from `GET /ice-servers`.
    pub ice_servers: Vec<IceServer>,
    /// Without rtpengine, whether a phone's plain RTP offer reaches web users unchanged
    /// (instead of 488).
    pub sdp_passthrough: bool,
    /// The RFC 4028 session interval offered and accepted in calls with phones (s; 0: off).
    pub session_expires: u64,
    /// The smallest session interval accepted (s): 422 below.
    pub min_se: u64,
    /// Seconds between checks that rtpengine still carries each call (0: never).
    pub rtpengine_check: u64,
    /// Where rtpengine's DTMF event log (`--dtmf-log-dest`) is taken, if anywhere.
    pub rtpengine_dtmf: Option<std::net::SocketAddr>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtpengine: None,
            ice_servers: Vec::new(),
            sdp_passthrough: false,
            session_expires: 1800,
            min_se: 90,
            rtpengine_check: 10,
            rtpengine_dtmf: None,
        }
    }
}

/// Media settings as given.
#[derive(Debug, Default)]
pub(super) struct MediaSettings {
    /// `--rtpengine`.
    pub rtpengine: Option<String>,
    /// `--ice-server` values.
    pub ice_servers: Vec<String>,
    /// `--ice-username`.
    pub ice_username: Option<String>,
    /// `--ice-credential`.
    pub ice_credential: Option<String>,
    /// `--sip-sdp-passthrough`.
    pub sdp_passthrough: Option<String>,
    /// `--sip-session-expires`.
    pub session_expires: Option<u64>,
    /// `--sip-min-se`.
    pub min_se: Option<u64>,
    /// `--rtpengine-check`.
    pub rtpengine_check: Option<u64>,
    /// `--rtpengine-dtmf`.
    pub rtpengine_dtmf: Option<String>,
}

/// Checks and fills the media settings.
pub(super) fn resolve_media(s: MediaSettings) -> anyhow::Result<MediaConfig> {
    let rtpengine = s
        .rtpengine
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty() && a != "off");
    if let Some(addr) = &rtpengine {
        let port = addr.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        anyhow::ensure!(
            matches!(port, Some(Ok(p)) if p > 0),
            "rtpengine: {addr:?} is not HOST:PORT (rtpengine's --listen-ng address)"
        );
    }
    let (mut stun, mut turn) = (Vec::new(), Vec::new());
    for url in s.ice_servers {
        let url = url.trim().to_owned();
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let host = url
            .split_once(':')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        anyhow::ensure!(
            !host.is_empty() && !url.contains(char::is_whitespace),
            "ice-server: {url:?} is not stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp]"
        );
        match scheme.as_str() {
            "stun" | "stuns" => stun.push(url),
            "turn" | "turns" => turn.push(url),
            _ => anyhow::bail!("ice-server: {url:?} is neither a stun: nor a turn: URL"),
        }
    }
    let (username, credential) = (s.ice_username, s.ice_credential);
    anyhow::ensure!(
        username.is_some() == credential.is_some(),
        "ice-username and ice-credential go together"
    );
    anyhow::ensure!(
        turn.is_empty() || username.is_some(),
        "a turn: ice-server needs ice-username and ice-credential"
    );
    anyhow::ensure!(
        username.is_none() || !turn.is_empty(),
        "ice-username and ice-credential are for a turn: ice-server"
    );
    let mut ice_servers = Vec::new();
    if !stun.is_empty() {
        ice_servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    if !turn.is_empty() {
        ice_servers.push(IceServer {
            urls: turn,
            username,
            credential,
        });
    }
    let sdp_passthrough = match s.sdp_passthrough.as_deref().map(str::trim) {
        None | Some("off" | "false") => false,
        Some("on" | "true") => true,
        Some(other) => anyhow::bail!("sip-sdp-passthrough: {other:?} must be on or off"),
    };
    let d = MediaConfig::default();
    let session_expires = s.session_expires.unwrap_or(d.session_expires);
    let min_se = s.min_se.unwrap_or(d.min_se);
    anyhow::ensure!(
        session_expires <= 86_400,
        "sip-session-expires must be from 0 (off) to 86400 seconds"
    );
    anyhow::ensure!(
        (1..=86_400).contains(&min_se),
        "sip-min-se must be from 1 to 86400 seconds"
    );
    anyhow::ensure!(
        session_expires == 0 || min_se <= session_expires,
        "sip-min-se ({min_se}) must not exceed sip-session-expires ({session_expires})"
    );
    let rtpengine_check = s.rtpengine_check.unwrap_or(d.rtpengine_check);
    anyhow::ensure!(
        rtpengine_check <= 3600,
        "rtpengine-check must be from 0 (off) to 3600 seconds"
    );
    let rtpengine_dtmf = match s.rtpengine_dtmf.as_deref().map(str::trim) {
        None | Some("" | "off") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            anyhow::anyhow!("rtpengine-dtmf: {addr:?} is not IP:PORT (rtpengine's --dtmf-log-dest)")
        })?),
    };
    Ok(MediaConfig {
        rtpengine,
        ice_servers,
        sdp_passthrough,
        session_expires,
        min_se,
        rtpengine_check,
        rtpengine_dtmf,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(ice: &[&str], user: Option<&str>) -> MediaSettings {
        MediaSettings {
            ice_servers: ice.iter().map(|s| s.to_string()).collect(),
            ice_username: user.map(str::to_owned),
            ice_credential: user.map(|u| format!("{u}-secret")),
            ..MediaSettings::default()
        }
    }

    #[test]
    fn ice_servers_are_grouped_and_checked() {
        let m = resolve_media(settings(
            &[
                "stun:stun.example.net:3478",
                "turn:turn.example.net:3478?transport=udp",
            ],
            Some("alice"),
        ))
        .unwrap();
        assert_eq!(m.ice_servers.len(), 2);
        assert_eq!(m.ice_servers[0].urls, ["stun:stun.example.net:3478"]);
        assert_eq!(m.ice_servers[0].username, None);
        assert_eq!(m.ice_servers[1].username.as_deref(), Some("alice"));
        assert_eq!(m.ice_servers[1].credential.as_deref(), Some("alice-secret"));
        assert!(resolve_media(settings(&["turn:t.example.net"], None)).is_err());
        assert!(resolve_media(settings(&["stun:s.example.net"], Some("a"))).is_err());
        assert!(resolve_media(settings(&["http://x"], None)).is_err());
        assert!(resolve_media(settings(&["stun:"], None)).is_err());
        assert_eq!(
            resolve_media(settings(&[], None)).unwrap(),
            MediaConfig::default()
        );
    }

    #[test]
    fn rtpengine_is_host_and_port() {
        let with = |a: &str| {
            resolve_media(MediaSettings {
                rtpengine: Some(a.into()),
                ..MediaSettings::default()
            })
        };
        assert_eq!(
            with("127.0.0.1:2223").unwrap().rtpengine.as_deref(),
            Some("127.0.0.1:2223")
        );
        assert_eq!(
            with("localhost:2223").unwrap().rtpengine.as_deref(),
            Some("localhost:2223")
        );
        assert_eq!(with("off").unwrap().rtpengine, None);
        assert!(with("127.0.0.1").is_err());
        assert!(with("host:0").is_err());
        let dtmf = |a: &str| {
            resolve_media(MediaSettings {
                rtpengine_dtmf: Some(a.into()),
                ..MediaSettings::default()
            })
        };
        assert_eq!(
            dtmf("127.0.0.1:2224").unwrap().rtpengine_dtmf,
            Some(([127, 0, 0, 1], 2224).into())
        );
        assert!(dtmf("localhost:2224").is_err());
        assert_eq!(dtmf("off").unwrap().rtpengine_dtmf, None);
    }
}
