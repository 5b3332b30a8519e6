use serde::{Deserialize, Serialize};

/// One STUN or TURN server for a page's `RTCPeerConnection` (WebRTC's `RTCIceServer`), as
/// `GET /ice-servers` lists them from the relay's `--ice-server` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port[?transport=udp|tcp]` (or `stuns:`/`turns:`).
    pub urls: Vec<String>,
    /// The TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
