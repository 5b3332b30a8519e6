//! Key presses carried in SIP INFO bodies, as phones send them in a call (RFC 6086's legacy
//! INFO usage, with no Info-Package): `application/dtmf-relay` (`Signal=5` and `Duration=160`
//! lines) and `application/dtmf` (the key alone, `5`). Keys are 0–9, `*`, `#` and A–D; a
//! `Signal` may also be the key's RFC 4733 event number (10 is `*`, 11 `#`, 12–15 A–D).

/// The body types this module reads, as an Accept header lists them.
pub const TYPES: &str = "application/dtmf-relay, application/dtmf";

/// Longest body read (a real one is ~25 bytes).
const MAX_BODY: usize = 1024;

/// Longest duration taken, in milliseconds (a key held a minute is already absurd).
const MAX_DURATION: u32 = 60_000;

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtmf {
    /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
    pub key: char,
    /// How long it was pressed, in milliseconds, when the body said.
    pub duration: Option<u32>,
}

/// Which of the body types a Content-Type value is (parameters and case ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/dtmf-relay`: `Signal=` and `Duration=` lines.
    Relay,
    /// `application/dtmf`: the key alone.
    Plain,
}

/// The kind of a Content-Type value; None for other types.
pub fn kind(content_type: &str) -> Option<Kind> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/dtmf-relay") {
        Some(Kind::Relay)
    } else if media.eq_ignore_ascii_case("application/dtmf") {
        Some(Kind::Plain)
    } else {
        None
    }
}

/// The key `text` is (one character: an `application/dtmf` body).
pub fn key(text: &str) -> Option<char> {
    let mut chars = text.trim().chars();
    let key = chars.next()?.to_ascii_uppercase();
    let valid = chars.next().is_none() && matches!(key, '0'..='9' | '*' | '#' | 'A'..='D');
    valid.then_some(key)
}

/// The key of an RFC 4733 event number (0–9, 10 `*`, 11 `#`, 12–15 A–D).
pub fn event_key(event: u8) -> Option<char> {
    b"0123456789*#ABCD"
        .get(usize::from(event))
        .map(|&b| char::from(b))
}

/// The key a `Signal` value names: the key, or its RFC 4733 event number.
fn signal_key(text: &str) -> Option<char> {
    let event = || {
        let n: u8 = text.trim().parse().ok()?;
        (n >= 10).then(|| event_key(n))?
    };
    key(text).or_else(event)
}

/// The key press of an INFO body of `kind`, or why it is not one.
pub fn parse(kind: Kind, body: &[u8]) -> Result<Dtmf, String> {
    if body.len() > MAX_BODY {
        return Err(format!("the body is longer than {MAX_BODY} bytes"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    if kind == Kind::Plain && !text.contains('=') {
        let key = key(text).ok_or("the body is not one key (0-9, *, #, A-D)")?;
        return Ok(Dtmf {
            key,
            duration: None,
        });
    }
    let (mut signal, mut duration) = (None, None);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("the line {line:?} is not name=value"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Signal") {
            if signal.is_some() {
                return Err("Signal is given twice".into());
            }
            signal = Some(signal_key(value).ok_or("Signal is not a key (0-9, *, #, A-D)")?);
        } else if name.eq_ignore_ascii_case("Duration") {
            let ms: u32 = value
                .parse()
                .map_err(|_| "Duration is not a number of milliseconds".to_owned())?;
            if ms > MAX_DURATION {
                return Err(format!("Duration is over {MAX_DURATION} ms"));
            }
            duration = Some(ms);
        }
        // Other lines (some phones add their own) are not ours to refuse.
    }
    let key = signal.ok_or("no Signal line")?;
    Ok(Dtmf { key, duration })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_phones_send() {
        let relay = |b: &str| parse(Kind::Relay, b.as_bytes());
        assert_eq!(
            relay("Signal=5\r\nDuration=160\r\n"),
            Ok(Dtmf {
                key: '5',
                duration: Some(160)
            })
        );
        assert_eq!(relay("Signal= #\nDuration= 100").unwrap().key, '#');
        assert_eq!(relay("signal=11\r\n").unwrap().key, '#');
        assert_eq!(relay("Signal=d").unwrap().key, 'D');
        assert_eq!(
            relay("Signal=*\r\nDuration=250\r\nVolume=10").unwrap().key,
            '*'
        );
        assert_eq!(parse(Kind::Plain, b"7\r\n").unwrap().key, '7');
        assert_eq!(parse(Kind::Plain, b"Signal=9").unwrap().key, '9');
        assert_eq!(kind("Application/DTMF-Relay; x=1"), Some(Kind::Relay));
        assert_eq!(kind("application/dtmf"), Some(Kind::Plain));
        assert_eq!(kind("application/sdp"), None);
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        let relay = |b: &[u8]| parse(Kind::Relay, b);
        assert!(relay(b"").is_err());
        assert!(relay(b"Duration=160").is_err());
        assert!(relay(b"Signal=E").is_err());
        assert!(relay(b"Signal=16").is_err());
        assert!(relay(b"Signal=55").is_err());
        assert!(relay(b"Signal=5\nSignal=6").is_err());
        assert!(relay(b"Signal=5\nDuration=-1").is_err());
        assert!(relay(b"Signal=5\nDuration=99999999999").is_err());
        assert!(relay(b"Signal 5").is_err());
        assert!(relay(b"Signal=\xff").is_err());
        assert!(relay(&[b'\n'; 2000]).is_err());
        assert!(parse(Kind::Plain, b"12").is_err());
        assert!(parse(Kind::Plain, b"").is_err());
        assert_eq!(event_key(11), Some('#'));
        assert_eq!(event_key(16), None);
    }
}
