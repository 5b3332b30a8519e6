//! Finding message boundaries on a stream transport (RFC 3261 §18.3): each message ends
//! Content-Length bytes after its empty line, a read may hold several messages or part of one,
//! and CRLFs between messages are keep-alives (a double CRLF is a ping, RFC 5626 §4.4.1).

use bytes::{Buf, BytesMut};

use super::message::SipMessage;
use super::parse::{head_end, parse_framed, parse_head, Rejected};

/// What the framer found in the bytes received so far.
#[derive(Debug)]
pub enum Frame {
    /// A whole message, parsed or refused.
    Message(Box<Result<SipMessage, Rejected>>),
    /// A double-CRLF ping: answer with a single CRLF.
    Ping,
}

/// Why the stream cannot go on: the connection is answered (if possible) and closed.
#[derive(Debug)]
pub enum FramingError {
    /// The message is larger than the limit (answer 513).
    TooLarge(Option<Box<SipMessage>>),
    /// Content-Length is missing a valid value, so the next message cannot be found (answer 400).
    BadLength(Option<Box<SipMessage>>),
}

/// Bytes read from one connection, waiting to become messages.
#[derive(Debug)]
pub struct StreamFramer {
    /// Unconsumed bytes.
    buf: BytesMut,
    /// Largest message accepted.
    max: usize,
    /// The buffer ended inside a run of CR and LF bytes that began with no ping: the rest of
    /// the run is skipped too, so a ping is found (or not) whatever the reads' sizes.
    in_run: bool,
}

impl StreamFramer {
    /// A framer accepting messages of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
            max,
            in_run: false,
        }
    }

    /// Adds bytes read from the connection.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (avoids a copy).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Whether part of a message has been received (bytes other than CRLF keep-alives wait).
    pub fn mid_message(&self) -> bool {
        self.buf.iter().any(|b| !matches!(b, b'\r' | b'\n'))
    }

    /// The next frame, None when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let crlfs = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if !self.in_run {
            // A ping is a double CRLF at the start of a run of line ends between messages.
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                return Ok(Some(Frame::Ping));
            }
            if crlfs == self.buf.len() && crlfs < 4 {
                // Maybe the start of a ping: wait (keep at most what a ping needs).
                return Ok(None);
            }
        }
        self.buf.advance(crlfs);
        self.in_run = self.buf.is_empty() && crlfs > 0;
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some((end, body_start)) = head_end(&self.buf[..self.buf.len().min(self.max + 4)])
        else {
            if self.buf.len() > self.max {
                return Err(FramingError::TooLarge(
                    parse_head(&self.buf).ok().map(Box::new),
                ));
            }
            return Ok(None);
        };
        let length = match content_length(&self.buf[..end]) {
            Ok(n) => n,
            Err(()) => {
                return Err(FramingError::BadLength(
                    parse_head(&self.buf[..end]).ok().map(Box::new),
                ))
            }
        };
        let total = body_start.saturating_add(length);
        if total > self.max {
            return Err(FramingError::TooLarge(
                parse_head(&self.buf[..end]).ok().map(Box::new),
            ));
        }
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let message = self.buf.split_to(total);
        let parsed = parse_framed(&message[..end], &message[body_start..]);
        Ok(Some(Frame::Message(Box::new(parsed))))
    }
}

/// The Content-Length of a header block (0 when absent, as lenient stream peers expect).
fn content_length(head: &[u8]) -> Result<usize, ()> {
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let value = line[colon + 1..].trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            return std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or(());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> String {
        format!(
            "MESSAGE sip:b@example.net SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{}\r\n\
             To: <sip:b@example.net>\r\nFrom: <sip:a@example.net>;tag=1\r\nCall-ID: c\r\n\
             CSeq: 1 MESSAGE\r\nl: {}\r\n\r\n{body}",
            body.len(),
            body.len()
        )
    }

    fn bodies(framer: &mut StreamFramer) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(frame) = framer.next_frame().expect("frame") {
            match frame {
                Frame::Message(m) => {
                    out.push(String::from_utf8((*m).expect("parsed").body).expect("utf8"))
                }
                Frame::Ping => out.push("PING".into()),
            }
        }
        out
    }

    #[test]
    fn several_messages_in_one_read() {
        let mut f = StreamFramer::new(65535);
        f.extend(format!("{}{}\r\n{}", msg("one"), msg("two!"), msg("")).as_bytes());
        assert_eq!(bodies(&mut f), ["one", "two!", ""]);
    }

    #[test]
    fn one_message_across_reads_byte_by_byte() {
        let mut f = StreamFramer::new(65535);
        let text = msg("split body");
        let mut got = Vec::new();
        for b in text.as_bytes() {
            f.extend(&[*b]);
            got.extend(bodies(&mut f));
        }
        assert_eq!(got, ["split body"]);
    }

    #[test]
    fn crlf_keep_alives_between_messages() {
        let mut f = StreamFramer::new(65535);
        f.extend(b"\r\n\r\n");
        f.extend(msg("x").as_bytes());
        f.extend(b"\r\n");
        assert_eq!(bodies(&mut f), ["PING", "x"]);
        f.extend(b"\r\n\r\n");
        assert_eq!(bodies(&mut f), ["PING"]);
    }

    #[test]
    fn oversize_and_bad_lengths_end_the_stream() {
        let mut f = StreamFramer::new(200);
        f.extend(msg(&"x".repeat(300)).as_bytes());
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::TooLarge(Some(_)))
        ));
        let mut f = StreamFramer::new(200);
        f.extend(&[b'a'; 300]);
        assert!(matches!(f.next_frame(), Err(FramingError::TooLarge(None))));
        let mut f = StreamFramer::new(65535);
        f.extend(msg("abc").replace("l: 3", "l: -3").as_bytes());
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::BadLength(Some(_)))
        ));
    }

    #[test]
    fn a_malformed_message_is_framed_and_refused_without_losing_the_next() {
        let mut f = StreamFramer::new(65535);
        let bad = msg("a").replace("CSeq: 1 MESSAGE", "CSeq: x");
        f.extend(format!("{bad}{}", msg("b")).as_bytes());
        let first = f.next_frame().expect("frame").expect("some");
        assert!(matches!(first, Frame::Message(m) if m.is_err()));
        assert_eq!(bodies(&mut f), ["b"]);
    }

    /// Found by the sip_stream fuzz target: bare line ends followed by a double CRLF were a
    /// ping when read in pieces and not when read at once.
    #[test]
    fn line_ends_between_messages_frame_the_same_however_they_are_read() {
        let stream = b"\n\n\n\n\n\r\n\r\nOPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n\r\n\r\n\n";
        let kinds = |step: usize| {
            let mut framer = StreamFramer::new(4096);
            let mut out = Vec::new();
            for chunk in stream.chunks(step) {
                framer.extend(chunk);
                while let Some(frame) = framer.next_frame().expect("frames") {
                    out.push(matches!(frame, Frame::Ping));
                }
            }
            out
        };
        let whole = kinds(stream.len());
        assert_eq!(whole, [false, true], "a message, then the ping after it");
        for step in 1..stream.len() {
            assert_eq!(kinds(step), whole, "read {step} bytes at a time");
        }
    }
}
