//! Keeping an Llm's key out of everything a provider's answer reaches: the caller's answer
//! (error or not, streamed or not, its passed-on headers), the Llm's health, warmup answers and
//! log lines. A provider may echo the key in any representation, so [`Redactor`] finds it
//! written literally, JSON-escaped (`\u002d`, `\/`, escapes of escapes), percent-encoded, or
//! in any mix of those, character by character, and base64-encoded (standard and URL-safe
//! alphabets, at each of the three alignments a key can have inside a longer encoding).
//! Redacting the raw bytes before anything decodes them means no decoded form carries the key
//! either; what mcpd derives from them (messages, translations) is redacted again anyway.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// What replaces the key.
pub const REDACTED: &str = "[redacted]";

/// Finds one key in every representation named above and replaces it with [`REDACTED`].
#[derive(Debug, Clone)]
pub struct Redactor {
    key: Vec<char>,
    /// The key's base64 forms: the run of characters each alignment fixes.
    encoded: Vec<Vec<u8>>,
    /// The bytes an occurrence can start with: every other position is passed over at the cost
    /// of one look-up (a provider's answer is scanned on every call).
    starts: [bool; 256],
}

impl Redactor {
    /// The redactor of `key`; `None` for an empty key (a keyless Llm has nothing to hide).
    pub fn new(key: &str) -> Option<Redactor> {
        if key.is_empty() {
            return None;
        }
        let mut encoded = Vec::new();
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            for offset in 0..3usize {
                // `offset` bytes of something else before the key: the characters that depend
                // only on the key's bytes start after the ones those bytes share.
                let mut bytes = vec![0u8; offset];
                bytes.extend_from_slice(key.as_bytes());
                let text = engine.encode(&bytes);
                // Character i holds bits 6i..6i+6: it depends on the key alone from the first
                // whole character after the prefix's bits to the last before the key's end.
                let skip = (offset * 8).div_ceil(6);
                let end = bytes.len() * 8 / 6;
                if end > skip + 3 {
                    let form = text.as_bytes()[skip..end].to_vec();
                    if !encoded.contains(&form) {
                        encoded.push(form);
                    }
                }
            }
        }
        let mut starts = [false; 256];
        for form in &encoded {
            starts[usize::from(form[0])] = true;
        }
        starts[usize::from(key.as_bytes()[0])] = true;
        starts[usize::from(b'%')] = true;
        starts[usize::from(b'\\')] = true;
        if key.starts_with(' ') {
            starts[usize::from(b'+')] = true;
        }
        Some(Redactor { key: key.chars().collect(), encoded, starts })
    }

    /// `bytes` with every occurrence of the key replaced; borrowed when there was none.
    pub fn bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            if !self.starts[usize::from(bytes[at])] {
                at += 1;
                continue;
            }
            if let Some(len) = self.match_at(bytes, at) {
                let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                o.extend_from_slice(&bytes[copied..at]);
                o.extend_from_slice(REDACTED.as_bytes());
                at += len;
                copied = at;
            } else {
                at += 1;
            }
        }
        match out {
            None => Cow::Borrowed(bytes),
            Some(mut o) => {
                o.extend_from_slice(&bytes[copied..]);
                Cow::Owned(o)
            }
        }
    }

    /// `text` with every occurrence of the key replaced.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Replacing whole characters' encodings with ASCII keeps UTF-8 valid; lossy for
            // safety all the same.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// Whether `bytes` hold the key in any representation.
    pub fn finds(&self, bytes: &[u8]) -> bool {
        matches!(self.bytes(bytes), Cow::Owned(_))
    }

    /// The length of the key's occurrence starting at `at`, if one does.
    fn match_at(&self, bytes: &[u8], at: usize) -> Option<usize> {
        if let Some(form) = self.encoded.iter().find(|f| bytes[at..].starts_with(f)) {
            return Some(form.len());
        }
        let mut pos = at;
        for &c in &self.key {
            pos += char_at(bytes, pos, c)?;
        }
        Some(pos - at)
    }
}

/// The length of an encoding of `c` at `bytes[at..]`: literal, percent-encoded byte by byte,
/// JSON `\uXXXX` (a surrogate pair beyond the BMP; any number of backslashes, for JSON inside
/// JSON strings), `\/` for a slash, or `+` for a space (form encoding).
fn char_at(bytes: &[u8], at: usize, c: char) -> Option<usize> {
    let rest = bytes.get(at..)?;
    let mut utf8 = [0u8; 4];
    let literal = c.encode_utf8(&mut utf8).as_bytes();
    if rest.starts_with(literal) {
        return Some(literal.len());
    }
    if c == ' ' && rest.first() == Some(&b'+') {
        return Some(1);
    }
    if rest.first() == Some(&b'%') {
        let mut pos = 0;
        for &b in literal {
            if rest.get(pos) != Some(&b'%') || hex_byte(rest.get(pos + 1..pos + 3)?)? != b {
                return None;
            }
            pos += 3;
        }
        return Some(pos);
    }
    let slashes = rest.iter().take_while(|b| **b == b'\\').count();
    if slashes == 0 {
        return None;
    }
    let escaped = &rest[slashes..];
    if c == '/' && escaped.first() == Some(&b'/') {
        return Some(slashes + 1);
    }
    let mut units = [0u16; 2];
    let mut pos = slashes;
    for (i, unit) in c.encode_utf16(&mut units).iter().enumerate() {
        if i > 0 {
            // The second half of a surrogate pair, escaped as the first was.
            let more = rest.get(pos..)?.iter().take_while(|b| **b == b'\\').count();
            if more == 0 {
                return None;
            }
            pos += more;
        }
        if rest.get(pos) != Some(&b'u') {
            return None;
        }
        let hex = rest.get(pos + 1..pos + 5)?;
        let high = hex_byte(&hex[..2])?;
        let low = hex_byte(&hex[2..])?;
        if u16::from_be_bytes([high, low]) != *unit {
            return None;
        }
        pos += 5;
    }
    Some(pos)
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(text, 16).ok().filter(|_| two.len() == 2 && two.iter().all(u8::is_ascii_hexdigit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-HIDDEN-SECRET-0003";

    fn redacted(text: &str) -> String {
        Redactor::new(KEY).unwrap().text(text).into_owned()
    }

    #[test]
    fn the_key_is_found_however_it_is_written() {
        let json_escaped = r#"{"error":{"message":"invalid key sk\u002dHIDDEN\u002dSECRET\u002d0003"}}"#;
        assert_eq!(redacted(json_escaped), r#"{"error":{"message":"invalid key [redacted]"}}"#);
        let every_char: String = KEY.chars().map(|c| format!("\\u{:04X}", c as u32)).collect();
        assert_eq!(redacted(&format!("k={every_char}.")), "k=[redacted].");
        let nested = r#"{"inner":"{\"k\":\"sk\\u002dHIDDEN-SECRET-0003\"}"}"#;
        assert_eq!(redacted(nested), r#"{"inner":"{\"k\":\"[redacted]\"}"}"#);
        assert_eq!(redacted("key=sk%2DHIDDEN%2dSECRET-0003&x=1"), "key=[redacted]&x=1");
        let percent_all: String = KEY.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(redacted(&percent_all), "[redacted]");
        assert_eq!(redacted("mixed sk%2D\\u0048IDDEN-SECRET-0003!"), "mixed [redacted]!");
        assert_eq!(redacted(&format!("{KEY}{KEY} {KEY}")), "[redacted][redacted] [redacted]");
        assert_eq!(redacted("nothing here, sk-HIDDEN-SECRET-000"), "nothing here, sk-HIDDEN-SECRET-000");
    }

    /// The key written in one of the ways a provider might echo it.
    fn written(key: &str, way: u8, prefix: &str) -> String {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        match way % 7 {
            0 => key.to_owned(),
            1 => serde_json::to_string(key).unwrap(),
            2 => key.chars().map(|c| format!("\\u{:04x}", c as u32)).collect(),
            3 => key.bytes().map(|b| format!("%{b:02X}")).collect(),
            4 => STANDARD.encode(format!("{prefix}{key}")),
            5 => URL_SAFE.encode(format!("{prefix}{key}!")),
            _ => serde_json::to_string(&serde_json::to_string(key).unwrap()).unwrap(),
        }
    }

    /// Fuzzed: any key (of the characters keys are made of), written in any of the ways above
    /// inside any text, is found, and what the redactor leaves holds no form of it; a text that
    /// cannot hold the key comes back unchanged.
    #[test]
    fn any_key_written_any_way_inside_any_text_is_redacted() {
        use proptest::prelude::*;
        let key = "[A-Za-z0-9_./+=-]{12,48}";
        let around = "[ -~]{0,40}";
        let inputs = (key, around, around, 0u8..7, "[a-z:]{0,3}", proptest::collection::vec(any::<u8>(), 0..64));
        proptest::test_runner::TestRunner::new(testkit::fuzz_config("redactor"))
            .run(&inputs, |(key, before, after, way, prefix, noise)| {
                let r = Redactor::new(&key).unwrap();
                let text = format!("{before}{}{after}", written(&key, way, &prefix));
                prop_assert!(r.finds(text.as_bytes()), "{:?} not found in {:?}", key, text);
                let out = r.bytes(text.as_bytes()).into_owned();
                prop_assert!(!r.finds(&out), "a form of {:?} is left in {:?}", key, String::from_utf8_lossy(&out));
                prop_assert!(!String::from_utf8_lossy(&out).contains(&key));
                // Bytes that cannot spell any form of the key pass untouched.
                let inert: Vec<u8> = noise.iter().map(|b| if b % 2 == 0 { b' ' } else { b'~' }).collect();
                let passed = r.bytes(&inert).into_owned();
                prop_assert_eq!(passed, inert);
                // Arbitrary bytes never panic.
                let _ = r.bytes(&noise);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn base64_of_the_key_is_found_at_every_alignment() {
        let r = Redactor::new(KEY).unwrap();
        for engine in [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE] {
            for prefix in ["", "a", "ab", "abc", "user:"] {
                for suffix in ["", "x", "xy", ":pass"] {
                    let encoded = engine.encode(format!("{prefix}{KEY}{suffix}"));
                    assert!(r.finds(encoded.as_bytes()), "{prefix:?} + key + {suffix:?} as {encoded}");
                    assert!(!r.text(&encoded).contains(&encoded));
                }
            }
        }
        let other = base64::engine::general_purpose::STANDARD.encode("sk-SOMETHING-ELSE-entirely");
        assert!(!r.finds(other.as_bytes()));
    }

    #[test]
    fn keys_beyond_ascii_and_with_slashes_are_found_escaped() {
        let r = Redactor::new("k/é😀z").unwrap();
        assert!(r.finds(r#"k\/\u00e9\ud83d\ude00z"#.as_bytes()));
        assert!(r.finds("k%2F%C3%A9%F0%9F%98%80z".as_bytes()));
        assert!(r.finds("k/é😀z".as_bytes()));
        assert!(!r.finds(r#"k\/\u00e9\ud83dz"#.as_bytes()));
        assert!(Redactor::new("").is_none());
    }
}
