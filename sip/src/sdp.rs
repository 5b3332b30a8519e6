//! A structural check of session descriptions (SDP, RFC 4566 §5) the relay carries between
//! phones and web users: it does not negotiate media, but it refuses what neither side could
//! use, so that a broken offer or answer is refused where it enters instead of half-making a
//! call.

/// Why `text` is not a usable session description, or Ok.
///
/// Checked: the first line is `v=0`; every line is `<letter>=<value>`; `o=` (six fields), `s=`
/// and `t=` are there; every `m=` has a media type, a numeric port, a protocol and a format;
/// every media section has a connection line (`c=`), or the session has one. Line ends may
/// be CRLF or LF, and blank lines are ignored.
pub fn check(text: &str) -> Result<(), String> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    if lines.next().map(str::trim_end) != Some("v=0") {
        return Err("the first line is not v=0".into());
    }
    let (mut origin, mut name, mut time) = (false, false, false);
    let mut session_c = false;
    // Per media section: whether it has a connection line.
    let mut media: Vec<bool> = Vec::new();
    for (n, line) in lines.enumerate() {
        let n = n + 2;
        let bytes = line.as_bytes();
        if bytes.len() < 2 || !bytes[0].is_ascii_lowercase() || bytes[1] != b'=' {
            return Err(format!("line {n} is not <letter>=<value>"));
        }
        let value = &line[2..];
        let fields: Vec<&str> = value.split_ascii_whitespace().collect();
        match bytes[0] {
            b'o' if fields.len() != 6 => return Err("o= needs six fields".into()),
            b'o' => origin = true,
            b's' => name = true,
            b't' => time = true,
            b'c' if fields.len() < 3 => return Err(format!("c= on line {n} needs three fields")),
            b'c' => match media.last_mut() {
                Some(has_c) => *has_c = true,
                None => session_c = true,
            },
            b'm' => {
                let port = fields.get(1).and_then(|p| p.split('/').next());
                if fields.len() < 4 || port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                    return Err(format!(
                        "m= on line {n} needs a media type, a port, a protocol and a format"
                    ));
                }
                media.push(false);
            }
            _ => {}
        }
    }
    if !origin || !name || !time {
        return Err("o=, s= and t= are required".into());
    }
    if !session_c && media.iter().any(|has_c| !has_c) {
        return Err("a media section has no connection line (c=)".into());
    }
    Ok(())
}

/// An answer (RFC 3264 §6) that declines every media stream of `offer`: each `m=` line again
/// with port 0 and its first format. What the relay answers a phone's offer with when the
/// web user's invitation carried no session description: the call is signalling only, media
/// can be added by a later offer.
pub fn decline(offer: &str) -> String {
    let mut answer =
        String::from("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n");
    for line in offer.split('\n').map(|l| l.trim_end_matches('\r')) {
        let Some(m) = line.strip_prefix("m=") else {
            continue;
        };
        let fields: Vec<&str> = m.split_ascii_whitespace().collect();
        if let [media, _port, proto, format, ..] = fields[..] {
            answer.push_str(&format!("m={media} 0 {proto} {format}\r\n"));
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::check;

    const GOOD: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                        t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn a_plain_offer_passes_with_crlf_or_lf() {
        assert_eq!(check(GOOD), Ok(()));
        assert_eq!(check(&GOOD.replace("\r\n", "\n")), Ok(()));
        let per_media = "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n\
                         c=IN IP4 10.0.0.1\nm=video 0 RTP/AVP 31\nc=IN IP4 10.0.0.1\n";
        assert_eq!(check(per_media), Ok(()));
    }

    /// Why `text` is refused ("" when it passes).
    fn why(text: &str) -> String {
        check(text).err().unwrap_or_default()
    }

    #[test]
    fn broken_descriptions_say_what_is_wrong() {
        assert!(why("").contains("v=0"));
        assert!(why("hello world").contains("v=0"));
        assert!(why(&GOOD.replace("s=-", "s-")).contains("line 3"));
        assert!(why(&GOOD.replace("o=- 1 1 IN IP4 127.0.0.1", "o=x")).contains("o="));
        assert!(why(&GOOD.replace("t=0 0\r\n", "")).contains("t="));
        assert!(why(&GOOD.replace("40000", "port")).contains("m="));
        assert!(why(&GOOD.replace("c=IN IP4 127.0.0.1\r\n", "")).contains("c="));
    }

    #[test]
    fn a_declining_answer_has_each_stream_at_port_zero() {
        let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                     m=audio 4000 RTP/AVP 0 8\r\nm=video 4002 RTP/AVP 96\r\n";
        let answer = super::decline(offer);
        assert!(super::check(&answer).is_ok(), "{answer}");
        assert!(answer.contains("m=audio 0 RTP/AVP 0\r\n"), "{answer}");
        assert!(answer.contains("m=video 0 RTP/AVP 96\r\n"), "{answer}");
    }
}
