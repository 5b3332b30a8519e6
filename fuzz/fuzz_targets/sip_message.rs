//! One SIP message from a datagram: parsing never panics, and a message that parses prints
//! as text that parses again to the same start line and headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_sip::parse::{parse_datagram, parse_head};

fuzz_target!(|data: &[u8]| {
    let _ = parse_head(data);
    if let Ok(msg) = parse_datagram(data) {
        let printed = msg.to_bytes();
        let again = parse_datagram(&printed).expect("a printed message parses again");
        assert_eq!(again.to_bytes(), printed, "printing is stable");
    }
});
