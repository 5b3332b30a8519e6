//! Bencode, the encoding of rtpengine's ng control protocol: integers (`i42e`), byte strings
//! (`4:spam`), lists (`l…e`) and dictionaries (`d…e`, keys sorted).
//!
//! Written by hand rather than taken from a crate: the format is four rules and the ng protocol
//! needs nothing else, while the crates on offer either come with serde glue this code has no
//! use for (ng dictionaries are built and read field by field) or have seen no release in years.
//! A hundred lines here are easier to keep bounded (depth, sizes) and to fuzz
//! (`fuzz/fuzz_targets/bencode.rs`) than a dependency.

use std::collections::BTreeMap;

/// Deepest nesting of lists and dictionaries decoded (ng replies nest three or four deep).
const MAX_DEPTH: usize = 32;

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A byte string (ng strings are text, but bencode does not say so).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A dictionary, its keys sorted as bencode wants them.
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Bytes(s.into_bytes())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<Vec<Value>> for Value {
    fn from(list: Vec<Value>) -> Self {
        Value::List(list)
    }
}

impl Value {
    /// A dictionary of `pairs`.
    pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Self {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// A list of strings.
    pub fn strings(items: &[&str]) -> Self {
        Value::List(items.iter().map(|s| Value::from(*s)).collect())
    }

    /// Sets `key` of a dictionary (nothing for other values).
    pub fn set(&mut self, key: &str, value: Value) {
        if let Value::Dict(d) = self {
            d.insert(key.as_bytes().to_vec(), value);
        }
    }

    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    /// A byte string that is UTF-8, as text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The text of `key` in a dictionary.
    pub fn str_of(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// The bencoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
            Value::Bytes(b) => bytes_into(b, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    bytes_into(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn bytes_into(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decodes exactly one value filling `input`; why not, with the offset where it went wrong.
pub fn decode(input: &[u8]) -> Result<Value, String> {
    let mut at = 0;
    let value = value(input, &mut at, 0)?;
    if at != input.len() {
        return Err(format!("bencode: trailing bytes at {at}"));
    }
    Ok(value)
}

fn value(input: &[u8], at: &mut usize, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("bencode: nested deeper than {MAX_DEPTH} at {at}"));
    }
    match input.get(*at) {
        Some(b'i') => {
            *at += 1;
            let text = until(input, at, b'e')?;
            // No empty, bare-sign, negative-zero or zero-padded integers.
            let bad = text.is_empty()
                || text == "-"
                || text.starts_with("-0")
                || (text.starts_with('0') && text.len() > 1);
            let n = text
                .parse::<i64>()
                .ok()
                .filter(|_| !bad)
                .ok_or_else(|| format!("bencode: bad integer {text:?} at {at}"))?;
            Ok(Value::Int(n))
        }
        Some(b'l') => {
            *at += 1;
            let mut items = Vec::new();
            while input.get(*at) != Some(&b'e') {
                items.push(value(input, at, depth + 1)?);
            }
            *at += 1;
            Ok(Value::List(items))
        }
        Some(b'd') => {
            *at += 1;
            let mut dict = BTreeMap::new();
            while input.get(*at) != Some(&b'e') {
                let key = bytes(input, at)?;
                let v = value(input, at, depth + 1)?;
                dict.insert(key, v);
            }
            *at += 1;
            Ok(Value::Dict(dict))
        }
        Some(b'0'..=b'9') => Ok(Value::Bytes(bytes(input, at)?)),
        Some(c) => Err(format!("bencode: unexpected byte {c:#04x} at {at}")),
        None => Err(format!("bencode: input ends at {at}")),
    }
}

/// The text up to `end` (excluded), which is consumed.
fn until<'a>(input: &'a [u8], at: &mut usize, end: u8) -> Result<&'a str, String> {
    let rest = input.get(*at..).unwrap_or_default();
    let len = rest
        .iter()
        .take(20)
        .position(|&c| c == end)
        .ok_or_else(|| format!("bencode: unterminated number at {at}"))?;
    let text =
        std::str::from_utf8(&rest[..len]).map_err(|_| format!("bencode: bad number at {at}"))?;
    *at += len + 1;
    Ok(text)
}

/// A byte string `LEN:BYTES`.
fn bytes(input: &[u8], at: &mut usize) -> Result<Vec<u8>, String> {
    let text = until(input, at, b':')?;
    let len: usize = text
        .parse()
        .ok()
        .filter(|_| text.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("bencode: bad length {text:?} at {at}"))?;
    let end = at
        .checked_add(len)
        .filter(|&e| e <= input.len())
        .ok_or_else(|| format!("bencode: string of {len} bytes past the end at {at}"))?;
    let b = input[*at..end].to_vec();
    *at = end;
    Ok(b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts_keys() {
        let mut v = Value::dict([
            ("command", "offer".into()),
            ("ICE", "remove".into()),
            ("rtcp-mux", Value::strings(&["demux"])),
            ("n", Value::Int(-12)),
        ]);
        v.set(
            "codec",
            Value::dict([("transcode", Value::strings(&["PCMU"]))]),
        );
        let e = v.encode();
        assert_eq!(
            String::from_utf8(e.clone()).unwrap(),
            "d3:ICE6:remove5:codecd9:transcodel4:PCMUee7:command5:offer1:ni-12e8:rtcp-muxl5:demuxee"
        );
        assert_eq!(decode(&e).unwrap(), v);
        assert_eq!(v.str_of("command"), Some("offer"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b""[..],
            b"i",
            b"ie",
            b"i-0e",
            b"i01e",
            b"i99999999999999999999e",
            b"5:abc",
            b"d3:abc",
            b"l",
            b"x",
            b"i1ei2e",
            b"-1:a",
            b"18446744073709551615:a",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert!(decode(deep.as_bytes()).is_err());
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(Vec::new()));
    }
}
