//! The TCP framer over bytes arriving in pieces: no panic, and the messages it finds do not
//! depend on where the reads were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restsip_sip::framing::{Frame, StreamFramer};

/// What a framer finds in `data` read in pieces of `step` bytes: each frame as text, and
/// whether the stream was given up.
fn frames(data: &[u8], step: usize) -> (Vec<String>, bool) {
    let mut framer = StreamFramer::new(4096);
    let mut out = Vec::new();
    for chunk in data.chunks(step.max(1)) {
        framer.extend(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Ping)) => out.push("ping".to_owned()),
                Ok(Some(Frame::Message(parsed))) => out.push(match *parsed {
                    Ok(msg) => String::from_utf8_lossy(&msg.to_bytes()).into_owned(),
                    Err(rejected) => format!("rejected {}", rejected.reason),
                }),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let whole = frames(data, data.len());
    let pieces = frames(data, usize::from(step % 64) + 1);
    if whole.1 || pieces.1 {
        return; // given up: where depends on how much had arrived
    }
    assert_eq!(whole, pieces, "frames depend on how reads were split");
});
