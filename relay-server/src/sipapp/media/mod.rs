//! Media between browsers and phones through rtpengine (`--rtpengine HOST:PORT`), driven over
//! its ng control protocol ([`ng`], [`bencode`]). A browser speaks WebRTC (UDP/TLS/RTP/SAVPF,
//! ICE, DTLS-SRTP, rtcp-mux, mostly Opus); a phone plain RTP/AVP (no ICE, RTCP on its own
//! port, G.711). Per call leg (keyed by its SIP Call-ID) the relay sends rtpengine the `offer`
//! made by one side, rewritten for the other (see [`Toward`]), then the other side's `answer`,
//! and `delete` when the call ends, however it ends. Between two browsers nothing of this is
//! used: their media go directly.

pub mod bencode;
pub mod dtmf;
pub mod ng;

use std::time::Duration;

use bencode::Value;
pub use ng::NgError;

/// What a media operation needs and did not get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// No rtpengine is configured.
    #[error("media relay unavailable: no rtpengine is configured (--rtpengine)")]
    Unconfigured,
    /// rtpengine failed or did not answer.
    #[error("media relay unavailable: {0}")]
    Relay(#[from] NgError),
    /// rtpengine's reply had no SDP.
    #[error("media relay unavailable: rtpengine's reply has no SDP")]
    NoSdp,
    /// A dialog tag rtpengine needs is missing.
    #[error("media relay unavailable: a dialog tag is missing")]
    NoTag,
}

/// Which side an offer is rewritten for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// A browser's offer for a phone: plain RTP/AVP, no ICE, no DTLS, RTCP demuxed, G.711
    /// added by transcoding when the browser offers none.
    Phone,
    /// A phone's offer for a browser: UDP/TLS/RTP/SAVPF, ICE, DTLS (rtpengine passive),
    /// rtcp-mux, a mid per media.
    Browser,
}

/// Whether a session description is WebRTC's (DTLS-SRTP with a fingerprint): the side that
/// needs rtpengine to reach a phone.
pub fn is_webrtc(sdp: &str) -> bool {
    sdp.lines().any(|l| {
        let l = l.trim_end();
        (l.starts_with("m=") && l.contains("UDP/TLS/RTP/SAVP")) || l.starts_with("a=fingerprint:")
    })
}

/// The media relay: rtpengine when configured; cheap to clone.
#[derive(Clone, Default)]
pub struct Media {
    /// The ng client, when `--rtpengine` is set.
    ng: Option<ng::Ng>,
    /// The calls rtpengine holds for the relay (offered, not yet deleted), for `/metrics`.
    sessions: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Media {
    /// No rtpengine: every operation is [`MediaError::Unconfigured`].
    pub fn none() -> Self {
        Self::default()
    }

    /// The rtpengine at `addr` (`HOST:PORT`), each request tried for `timeout` and again
    /// [`ng::RETRIES`] times.
    pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<Self> {
        Ok(Self {
            ng: Some(ng::Ng::connect(addr, timeout).await?),
            sessions: Default::default(),
        })
    }

    /// Notes call `call_id` as held in rtpengine (`open`) or not, and counts them.
    fn note_session(&self, call_id: &str, open: bool) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if open {
            sessions.insert(call_id.to_owned());
        } else {
            sessions.remove(call_id);
        }
        crate::observe::media_sessions(sessions.len());
    }

    /// Whether an rtpengine is configured.
    pub fn enabled(&self) -> bool {
        self.ng.is_some()
    }

    fn ng(&self) -> Result<&ng::Ng, MediaError> {
        self.ng.as_ref().ok_or(MediaError::Unconfigured)
    }

    /// Whether rtpengine answers (an ng `ping`).
    pub async fn ready(&self) -> Result<(), MediaError> {
        let reply = self
            .ng()?
            .request(&Value::dict([("command", "ping".into())]))
            .await?;
        match reply.str_of("result") {
            Some("pong") => Ok(()),
            other => Err(MediaError::Relay(NgError::Socket(format!(
                "ping answered {other:?}"
            )))),
        }
    }

    /// rtpengine's rewrite of `sdp`, offered by the side tagged `from_tag` in call `call_id`
    /// (`to_tag`: the other side's, in a re-offer), for the side `toward`.
    pub async fn offer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        sdp: &str,
        toward: Toward,
    ) -> Result<String, MediaError> {
        let ng = self.ng()?;
        let mut req = Value::dict([
            ("command", "offer".into()),
            ("call-id", call_id.into()),
            ("from-tag", from_tag.into()),
            ("sdp", sdp.into()),
            ("replace", Value::strings(&["origin", "session-connection"])),
            ("SDES", Value::strings(&["off"])),
        ]);
        if let Some(tag) = to_tag {
            req.set("to-tag", tag.into());
        }
        match toward {
            Toward::Phone => {
                req.set("transport-protocol", "RTP/AVP".into());
                req.set("ICE", "remove".into());
                req.set("rtcp-mux", Value::strings(&["demux"]));
                req.set("DTLS", "off".into());
                req.set(
                    "codec",
                    Value::dict([("transcode", Value::strings(&["PCMU", "PCMA"]))]),
                );
            }
            Toward::Browser => {
                req.set("transport-protocol", "UDP/TLS/RTP/SAVPF".into());
                req.set("ICE", "force".into());
                req.set("rtcp-mux", Value::strings(&["offer", "require"]));
                req.set("DTLS", "passive".into());
                req.set("flags", Value::strings(&["generate mid"]));
            }
        }
        let sdp = sdp_of(ng.request(&req).await?)?;
        self.note_session(call_id, true);
        Ok(sdp)
    }

    /// rtpengine's rewrite of the answer `sdp` of the side tagged `to_tag` to the offer of
    /// the side tagged `from_tag` (it restores what the offer's side speaks).
    pub async fn answer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<String, MediaError> {
        let req = Value::dict([
            ("command", "answer".into()),
            ("call-id", call_id.into()),
            ("from-tag", from_tag.into()),
            ("to-tag", to_tag.into()),
            ("sdp", sdp.into()),
            ("replace", Value::strings(&["origin", "session-connection"])),
        ]);
        sdp_of(self.ng()?.request(&req).await?)
    }

    /// Whether rtpengine still carries call `call_id` (an ng `query`): false once it dropped
    /// it (`Unknown call-id`: its media timeout, or a restart).
    pub async fn known(&self, call_id: &str) -> Result<bool, MediaError> {
        let req = Value::dict([("command", "query".into()), ("call-id", call_id.into())]);
        match self.ng()?.request(&req).await {
            Ok(_) => Ok(true),
            Err(NgError::Refused { reason, .. }) if reason.contains("Unknown call-id") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends call `call_id` in rtpengine, in the background (a failure is logged: rtpengine
    /// forgets calls without media by itself after its timeout).
    pub fn delete(&self, call_id: &str) {
        let Some(ng) = self.ng.clone() else { return };
        self.note_session(call_id, false);
        let call_id = call_id.to_owned();
        tokio::spawn(async move {
            // At once: rtpengine otherwise keeps a deleted call for its delete-delay (30 s).
            let req = Value::dict([
                ("command", "delete".into()),
                ("call-id", call_id.as_str().into()),
                ("delete-delay", Value::Int(0)),
            ]);
            match ng.request(&req).await {
                Ok(_) => tracing::debug!(call_id, "rtpengine session deleted"),
                Err(e) => tracing::warn!(call_id, error = %e, "rtpengine session not deleted"),
            }
        });
    }
}

/// The `sdp` of an ng reply.
fn sdp_of(reply: Value) -> Result<String, MediaError> {
    reply
        .str_of("sdp")
        .map(str::to_owned)
        .ok_or(MediaError::NoSdp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_is_told_from_plain_rtp() {
        let chrome = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=fingerprint:sha-256 AB:CD\r\n";
        assert!(is_webrtc(chrome));
        assert!(is_webrtc(
            "v=0\nm=audio 9 RTP/AVP 0\na=fingerprint:sha-256 AB\n"
        ));
        assert!(!is_webrtc(
            "v=0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
        ));
    }
}
