//! The DTMF bodies of SIP INFO (`application/dtmf-relay`, `application/dtmf`) and rtpengine's
//! DTMF event datagrams: any bytes give a key press or a reason, never a panic; a key press
//! read is one of the sixteen keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_sip::dtmf::{parse, Kind};

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Relay, Kind::Plain] {
        if let Ok(press) = parse(kind, data) {
            assert!("0123456789*#ABCD".contains(press.key), "{press:?}");
            assert!(press.duration.is_none_or(|ms| ms <= 60_000), "{press:?}");
        }
    }
    if let Some(e) = restsip_relay::sipapp::media::dtmf::event(data) {
        assert!("0123456789*#ABCD".contains(e.press.key), "{e:?}");
    }
});
