//! Header values and URIs on their own: Via, name-addr lists, CSeq, URIs and digest
//! credentials never panic, and a digest answer can always be computed from what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_sip::digest::{Algorithm, Credentials};
use restsip_sip::headers::{CSeq, NameAddr, Via};
use restsip_sip::uri::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Via::parse_list(text);
    let _ = NameAddr::parse_list(text);
    let _ = CSeq::parse(text);
    if let Ok(uri) = Uri::parse(text) {
        if let Some(sip) = uri.sip() {
            let _ = sip.address();
        }
    }
    if let Some(credentials) = Credentials::parse(text) {
        let _ = credentials.algorithm();
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let _ = credentials.expected(algorithm, "0123456789abcdef", "REGISTER");
        }
    }
});
