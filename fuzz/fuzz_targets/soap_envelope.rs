//! SOAP envelopes as SERVICE requests carry them: parsing never panics, and what parses can be
//! inspected and answered with a fault.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_relay::soap::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Envelope::parse(text) {
        Ok(envelope) => {
            if let Some(call) = envelope.call() {
                let _ = call.param("x");
            }
            let _ = envelope.fault();
        }
        Err(e) => {
            let _ = e.fault().to_xml();
        }
    }
});
