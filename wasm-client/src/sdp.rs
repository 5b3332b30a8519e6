//! What the client reads in a session description: only whether the peer's offer puts this side
//! on hold. The page never sees SDP; the browser makes and applies it.

/// Whether an offer holds the call (RFC 3264 §8.4): every media section that is not rejected
/// (port 0) is `sendonly` or `inactive` (media level, else session level), or has the connection
/// address `0.0.0.0` (RFC 2543's hold, still sent by older phones).
pub(crate) fn holds(sdp: &str) -> bool {
    // Read as bytes: no string searcher, no slicing that could panic.
    let mut session = true;
    // The direction of the media section being read (None: still at the session level), and
    // whether it is rejected.
    let mut section: Option<bool> = None;
    let mut rejected = false;
    let mut any = false;
    let mut held = true;
    for line in sdp.as_bytes().split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(media) = line.strip_prefix(b"m=") {
            if let Some(on_hold) = section {
                held &= rejected || on_hold;
            }
            // `m=audio 0 ...`: a rejected (or removed) stream says nothing.
            let port = media.iter().position(|&b| b == b' ').map(|i| i + 1);
            rejected = port
                .and_then(|i| media.get(i..))
                .is_some_and(|p| p.starts_with(b"0 "));
            any |= !rejected;
            section = Some(session);
            continue;
        }
        let direction = match line {
            b"a=sendonly" | b"a=inactive" => true,
            b"a=sendrecv" | b"a=recvonly" => false,
            _ if line.starts_with(b"c=") && line.ends_with(b" 0.0.0.0") => true,
            _ => continue,
        };
        match section.as_mut() {
            Some(on_hold) => *on_hold = direction,
            None => session = direction,
        }
    }
    if let Some(on_hold) = section {
        held &= rejected || on_hold;
    }
    any && held
}

#[cfg(test)]
mod tests {
    use super::holds;

    const AUDIO: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n";

    #[test]
    fn a_sendonly_or_inactive_offer_holds() {
        assert!(holds(&[AUDIO, "a=sendonly\r\n"].concat()));
        assert!(holds(&[AUDIO, "a=inactive\r\n"].concat()));
        assert!(!holds(&[AUDIO, "a=sendrecv\r\n"].concat()));
        assert!(!holds(&[AUDIO, "a=recvonly\r\n"].concat()));
    }

    #[test]
    fn every_live_section_must_hold() {
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n";
        let offer = [AUDIO, "a=sendonly\r\n", video, "a=sendrecv\r\n"].concat();
        assert!(!holds(&offer));
        let offer = [AUDIO, "a=sendonly\r\n", video, "a=inactive\r\n"].concat();
        assert!(holds(&offer));
        // A rejected video stream does not count.
        let offer = [
            AUDIO,
            "a=sendonly\r\nm=video 0 RTP/AVP 96\r\na=sendrecv\r\n",
        ]
        .concat();
        assert!(holds(&offer));
    }

    #[test]
    fn session_level_direction_and_the_old_zero_address() {
        let phone = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\na=sendonly\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n";
        assert!(holds(phone));
        let old = "v=0\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n";
        assert!(holds(old));
        // WebRTC's placeholder `c=IN IP4 0.0.0.0` followed by a sendrecv attribute is no hold.
        assert!(!holds(&[AUDIO, "a=rtcp-mux\r\na=sendrecv\r\n"].concat()));
        assert!(!holds(""));
    }
}
