//! The bencode decoder of rtpengine's ng replies: any bytes decode or are refused with a
//! reason, never a panic; what decodes encodes back to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_relay::sipapp::media::bencode;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = bencode::decode(data) {
        let again = bencode::decode(&value.encode()).expect("an encoding decodes");
        assert_eq!(again, value);
    }
});
