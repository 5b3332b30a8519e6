//! Calls between phones and web users, by direction: [`inbound`], a phone's INVITE to a web
//! user; [`outbound`], a web user's invite SEND to phones. Both end in a dialog the relay
//! keeps alive with OPTIONS probes (see [`restsip_sip::dialog`]).

pub(crate) mod failover;
pub mod inbound;
pub mod info;
pub mod outbound;
pub mod update;

/// The methods this feature answers (gathered into the Allow header by the core).
pub const METHODS: &[&str] = &["INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "INFO"];

/// The clocks of calls between web users and phones.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallTimers {
    /// How long a phone may ring before the relay cancels the call (zero: no limit); also how
    /// long a phone's INVITE waits for a web user's answer.
    pub ring: std::time::Duration,
    /// How often an answered call is probed with an OPTIONS in its dialog (zero: never); see
    /// [`restsip_sip::dialog`].
    pub keepalive: std::time::Duration,
}

/// What calls need to know of the cluster the relay is in (a relay alone: its defaults).
#[derive(Clone)]
pub struct CallCluster {
    /// Where this relay draws invite ids from, so that no two relays hand out the same.
    pub ids: crate::bus::IdSpace,
    /// The relays of the cluster and those found gone (whose calls are ended).
    pub members: crate::members::Members,
}

/// How calls between web users and phones get their media.
#[derive(Clone, Default)]
pub struct CallMedia {
    /// rtpengine, when configured.
    pub media: crate::sipapp::media::Media,
    /// Without rtpengine, phones' plain offers reach web users unchanged (else 488).
    pub passthrough: bool,
    /// Whether SENDs to non-accounts go to an upstream server.
    pub upstream: bool,
    /// RFC 4028 session timers.
    pub session: SessionTimers,
    /// How often each call rtpengine carries is checked to be still there (zero: never).
    pub check: std::time::Duration,
    /// Where rtpengine logs DTMF events (`--rtpengine-dtmf`), and the only address taken
    /// there when known (rtpengine's).
    pub dtmf: Option<(
        std::sync::Arc<tokio::net::UdpSocket>,
        Option<std::net::IpAddr>,
    )>,
}

/// RFC 4028 session timers of calls between web users and phones.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionTimers {
    /// The session interval offered and accepted (zero: no session timers).
    pub expires: std::time::Duration,
    /// The smallest one accepted (422 below).
    pub min_se: std::time::Duration,
}
