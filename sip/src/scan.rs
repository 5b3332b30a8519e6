//! A cursor over a header value, for the small grammars of SIP headers: tokens, quoted strings,
//! separators with optional linear white space around them (folding is already undone).

/// True for the characters of an RFC 3261 `token`.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True if `s` is a non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// A position in a header value.
#[derive(Debug, Clone)]
pub(crate) struct Scanner<'a> {
    /// The value.
    text: &'a str,
    /// Bytes consumed.
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// True when everything (but white space) is consumed.
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.text.len()
    }

    /// The next byte, not consumed.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips spaces and tabs.
    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `c` (after optional white space, and white space after it); false if absent.
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// A token, or None (nothing consumed).
    pub(crate) fn token(&mut self) -> Option<&'a str> {
        self.take_while(is_token_char)
    }

    /// The longest run of bytes accepted by `f`, or None if empty.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Every predicate used stops only at ASCII bytes, so `pos` is a char boundary.
        (self.pos > start).then(|| &self.text[start..self.pos])
    }

    /// Everything up to (not including) the first byte accepted by `stop`, outside quotes.
    pub(crate) fn until(&mut self, stop: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut quoted = false;
        while let Some(&b) = bytes.get(self.pos) {
            if quoted {
                if b == b'\\' {
                    self.pos += 1;
                } else if b == b'"' {
                    quoted = false;
                }
            } else if b == b'"' {
                quoted = true;
            } else if stop(b) {
                break;
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.text.len());
        self.pos = end;
        &self.text[start..end]
    }

    /// A quoted string (the scanner is at `"`), unescaped; Err when it is not terminated.
    pub(crate) fn quoted(&mut self) -> Result<String, &'static str> {
        if self.peek() != Some(b'"') {
            return Err("expected a quoted string");
        }
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated quoted string")
    }
}

/// `;name[=value]` parameters after a header value or URI, each name a token; the value a
/// token, a quoted string or (for hosts and IPv6 references) a run of host characters.
pub(crate) fn params(s: &mut Scanner<'_>) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let mut out = Vec::new();
    while s.eat(b';') {
        let name = s.token().ok_or("empty or malformed parameter")?;
        let value = if s.eat(b'=') {
            Some(if s.peek() == Some(b'"') {
                s.quoted()?
            } else {
                s.take_while(|b| is_token_char(b) || b"[]:".contains(&b))
                    .ok_or("parameter without a value after =")?
                    .to_owned()
            })
        } else {
            None
        };
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_quotes_and_separators_with_white_space() {
        let mut s = Scanner::new("  abc ; x = \"q \\\" d\" ;lr");
        s.skip_ws();
        assert_eq!(s.token(), Some("abc"));
        let p = params(&mut s).expect("params");
        assert_eq!(
            p,
            vec![
                ("x".to_owned(), Some("q \" d".to_owned())),
                ("lr".to_owned(), None)
            ]
        );
        assert!(s.at_end());
    }

    #[test]
    fn unterminated_quotes_and_empty_parameters_are_errors() {
        assert!(Scanner::new("\"abc").quoted().is_err());
        assert!(params(&mut Scanner::new(";;")).is_err());
        assert!(params(&mut Scanner::new(";a=")).is_err());
    }

    #[test]
    fn until_skips_separators_inside_quotes() {
        let mut s = Scanner::new("\"a,b\" <x>, y");
        assert_eq!(s.until(|b| b == b','), "\"a,b\" <x>");
    }
}
