//! The DTMF events rtpengine logs to a UDP socket (its `--dtmf-log-dest=IP:PORT`): one JSON
//! object per datagram for each RFC 4733 telephone-event it forwards, such as
//! `{"callid": "…", "source_tag": "…", "tags": […], "type": "DTMF", "event": 5,
//! "duration": 160, "volume": 10, …}`. The relay listens there (`--rtpengine-dtmf`) and tells
//! the web user of the call (see [`crate::sipapp::invite::info`]).

use restsip_sip::dtmf::{event_key, Dtmf};
use serde::Deserialize;

/// Longest datagram read.
pub const MAX_DATAGRAM: usize = 4096;

/// The fields of rtpengine's event the relay uses.
#[derive(Deserialize)]
struct Logged {
    callid: String,
    source_tag: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    event: u8,
    #[serde(default)]
    duration: Option<u32>,
}

/// One key press rtpengine saw: in which call, from which side (its tag), which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The call's Call-ID (rtpengine's call id).
    pub call_id: String,
    /// The dialog tag of the side that sent the tones.
    pub source_tag: String,
    /// The key and how long it was held (ms).
    pub press: Dtmf,
}

/// The event in one of rtpengine's datagrams; None for anything else (logged at debug).
pub fn event(datagram: &[u8]) -> Option<Event> {
    let logged: Logged = match serde_json::from_slice(datagram) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "not an rtpengine DTMF event");
            return None;
        }
    };
    if logged.kind.as_deref().is_some_and(|k| k != "DTMF") {
        return None;
    }
    Some(Event {
        call_id: logged.callid,
        source_tag: logged.source_tag,
        press: Dtmf {
            key: event_key(logged.event)?,
            duration: logged.duration,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_rtpengine_events() {
        let e = event(
            br#"{"callid":"c1@h","source_tag":"p1","source_label":"","tags":["p1","r1"],"type":"DTMF","timestamp":1,"source_ip":"127.0.0.1","event":11,"duration":160,"volume":10}"#,
        )
        .unwrap();
        assert_eq!(e.call_id, "c1@h");
        assert_eq!(e.source_tag, "p1");
        assert_eq!(e.press.key, '#');
        assert_eq!(e.press.duration, Some(160));
        assert!(event(br#"{"callid":"c","source_tag":"t","event":16}"#).is_none());
        assert!(event(br#"{"callid":"c","source_tag":"t","type":"X","event":1}"#).is_none());
        assert!(event(b"not json").is_none());
    }
}
