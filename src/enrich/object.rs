//! The members of one JSON object, found in a single validating pass: names
//! unescaped (borrowed unless they held escapes), values as the exact text
//! received. A sample has about a hundred fields that enrichment mostly
//! writes back unchanged, so neither a value tree nor a generic
//! deserializer's per-value dispatch is needed (the latter was a quarter of
//! a drain's CPU). What must not change is which lines count as JSON: this
//! accepts exactly what `serde_json` accepts for an object whose values are
//! kept raw (the tests compare the two on mutated samples), so a broken line
//! still passes unchanged.

use std::borrow::Cow;

/// One member of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    /// The name, unescaped.
    pub name: Cow<'a, str>,
    /// The value's JSON text as received.
    pub value: &'a str,
    /// Where `"name":value` starts and ends in the object's text.
    pub span: (usize, usize),
    /// Whether that text still reads as `name` (it had no escapes and was
    /// not renamed since), so it can be copied as it is.
    pub verbatim: bool,
}

/// An object's members in order.
pub type Members<'a> = Vec<Member<'a>>;

/// The members of `text` when it is one JSON object (whitespace around it
/// allowed), `None` otherwise. `capacity`: members expected.
pub fn members(text: &str, capacity: usize) -> Option<Members<'_>> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    let mut out = Vec::with_capacity(capacity);
    // Open containers inside one value; kept on the heap, not the call
    // stack, so nesting depth costs a byte per level, as in serde_json.
    let mut open = Vec::new();
    c.ws();
    c.eat(b'{')?;
    c.ws();
    if c.peek()? == b'}' {
        c.i += 1;
    } else {
        loop {
            c.ws();
            let from = c.i;
            let name = c.key(text)?;
            c.ws();
            let start = c.i;
            // Scalars, nearly every value of a sample, skip the container walk.
            match c.peek()? {
                b'"' => {
                    c.string()?;
                }
                b'-' | b'0'..=b'9' => c.number()?,
                _ => c.value(&mut open)?,
            }
            out.push(Member {
                verbatim: matches!(name, Cow::Borrowed(_)),
                name,
                value: text.get(start..c.i)?,
                span: (from, c.i),
            });
            c.ws();
            match c.peek()? {
                b',' => c.i += 1,
                b'}' => {
                    c.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    c.ws();
    (c.i == c.b.len()).then_some(out)
}

/// A JSON string's value: borrowed when it holds no escapes (`None` unless
/// `raw` is one JSON string).
pub fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.bytes().any(|b| b == b'\\' || b == b'"' || b < 0x20) {
        return serde_json::from_str::<String>(raw).ok().map(Cow::Owned);
    }
    Some(Cow::Borrowed(inner))
}

/// Bytes that end a run of plain string content.
const STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit set in each byte of `word` that is `"`, `\\` or below
/// 0x20 — exact for the lowest such byte, which is the one used (bits above
/// it may be set by a borrow).
fn stop_bytes(word: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// A member's name and the colon after it.
    fn key<'t>(&mut self, text: &'t str) -> Option<Cow<'t, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i;
        let escaped = self.string()?;
        let key = if escaped {
            // Rare: unescaping (surrogate pairs included) is serde_json's job.
            Cow::Owned(serde_json::from_str::<String>(text.get(start..self.i)?).ok()?)
        } else {
            // Inside the quotes `string` stepped over.
            Cow::Borrowed(text.get(start + 1..self.i - 1)?)
        };
        self.ws();
        self.eat(b':')?;
        Some(key)
    }

    /// Moves to the next byte that ends a run of plain string content.
    fn skip_plain(&mut self) -> Option<()> {
        // Eight bytes at a time: most names and values are 5 to 30 bytes.
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let stops = stop_bytes(u64::from_le_bytes(word));
            if stops != 0 {
                self.i += (stops.trailing_zeros() / 8) as usize;
                return Some(());
            }
            self.i += 8;
        }
        let run = self
            .b
            .get(self.i..)?
            .iter()
            .position(|&c| STOPS[usize::from(c)])?;
        self.i += run;
        Some(())
    }

    /// Moves past the string whose opening quote is next; whether it held
    /// escapes.
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.skip_plain()?;
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let hex = self.b.get(self.i + 1..self.i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 5;
                        }
                        _ => return None,
                    }
                }
                // A control character.
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Moves past one value (whitespace before it skipped, none after it).
    fn value(&mut self, open: &mut Vec<u8>) -> Option<()> {
        open.clear();
        loop {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                c @ (b'[' | b'{') => {
                    self.i += 1;
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek()? == close {
                        self.i += 1;
                    } else {
                        open.push(c);
                        if c == b'{' {
                            self.key_in_value()?;
                        }
                        continue;
                    }
                }
                _ => return None,
            }
            // A value ended: close what it ended, or go on after a comma.
            loop {
                let Some(&top) = open.last() else {
                    return Some(());
                };
                self.ws();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if top == b'{' {
                            self.ws();
                            self.key_in_value()?;
                        }
                        break;
                    }
                    b']' if top == b'[' => {
                        self.i += 1;
                        open.pop();
                    }
                    b'}' if top == b'{' => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// A name inside a value: only checked, never unescaped (serde_json
    /// does not either when it keeps a value raw).
    fn key_in_value(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.ws();
        self.eat(b':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// serde_json's verdict on the same text, as the enrichment saw it before.
    fn serde_members(text: &str) -> Option<Vec<(String, String)>> {
        struct Pairs(Vec<(String, String)>);
        impl<'de> serde::Deserialize<'de> for Pairs {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Pairs;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut m: A,
                    ) -> Result<Pairs, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                            out.push((k, v.get().to_string()));
                        }
                        Ok(Pairs(out))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Pairs>(text).ok().map(|p| p.0)
    }

    fn ours(text: &str) -> Option<Vec<(String, String)>> {
        members(text, 0).map(|m| {
            m.into_iter()
                .map(|m| {
                    let (from, to) = m.span;
                    let member = &text[from..to];
                    assert!(member.ends_with(m.value) && member.starts_with('"'));
                    (m.name.into_owned(), m.value.to_string())
                })
                .collect()
        })
    }

    fn agree(text: &str) {
        assert_eq!(ours(text), serde_members(text), "on {text:?}");
    }

    #[test]
    fn members_in_order_with_values_as_received() {
        let m = members(
            r#" { "a" : 1 , "b\u00e9\n":"x\"y", "c":[1, {"d": null}] ,"a":-0.5e+3} "#,
            4,
        )
        .unwrap();
        let m: Vec<(&str, &str)> = m.iter().map(|m| (m.name.as_ref(), m.value)).collect();
        assert_eq!(
            m,
            vec![
                ("a", "1"),
                ("bé\n", r#""x\"y""#),
                ("c", r#"[1, {"d": null}]"#),
                ("a", "-0.5e+3"),
            ]
        );
        let text = r#"{"k" : 1,"\u006b":2}"#;
        let m = members(text, 2).unwrap();
        assert!(m[0].verbatim && !m[1].verbatim);
        assert_eq!(&text[m[0].span.0..m[0].span.1], r#""k" : 1"#);
        assert_eq!(m[1].name, "k");
        assert_eq!(members("{}", 0).unwrap().len(), 0);
    }

    #[test]
    fn accepts_and_refuses_what_serde_json_does() {
        for text in [
            "{}",
            " {} ",
            "{",
            "}",
            "[]",
            "1",
            "",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":1}x",
            "{\"a\":1}{}",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":-01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":1E-7}",
            "{\"a\":+1}",
            "{\"a\":0x10}",
            "{\"a\":1.5e300000}",
            "{\"a\":123456789012345678901234567890}",
            "{\"a\":tru}",
            "{\"a\":truee}",
            "{\"a\":nul}",
            "{\"a\":NaN}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u12G4\"}",
            "{\"a\":\"\\uD800\"}",
            "{\"\\uD800\":1}",
            "{\"\\uD83D\\uDE00\":1}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"nl\nhere\"}",
            "{\"a\":\"del\u{7f}\"}",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "{\"a\":[1 2]}",
            "{\"a\":[]}",
            "{\"a\":[ ]}",
            "{\"a\":{ }}",
            "{\"a\":{\"b\"}}",
            "{\"a\":{\"b\":1,}}",
            "{\"a\":{1:2}}",
            "{\"a\":[1}}",
            "{\"a\":{\"b\":[}]}}",
            "{\"a\":\"unterminated}",
            "{\"a\":1}\n",
            "{\"a\":1}\u{c}",
            "\u{c}{\"a\":1}",
            "{\"a\"\t:\r\n1}",
            "{'a':1}",
            "{a:1}",
            "{\"a\":1,\"a\":2}",
        ] {
            agree(text);
        }
    }

    #[test]
    fn nesting_has_no_depth_limit_inside_a_value_as_in_serde_json() {
        for depth in [1, 126, 127, 128, 129, 1000] {
            let text = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            agree(&text);
            let text = format!(
                "{{\"a\":{}1{}}}",
                "{\"b\":".repeat(depth),
                "}".repeat(depth)
            );
            agree(&text);
        }
    }

    /// Every sample line, and thousands of mutations of them (bytes
    /// replaced, dropped, repeated, cut), get serde_json's verdict.
    #[test]
    fn agrees_with_serde_json_on_mutated_samples() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/");
        let mut lines = Vec::new();
        for f in [
            "nal-rfc3339.ndjson",
            "nal-unixnano.ndjson",
            "nal-legacy-unix.ndjson",
        ] {
            let text = std::fs::read_to_string(format!("{dir}{f}")).unwrap();
            lines.extend(text.lines().take(40).map(str::to_string));
        }
        let specials = b"{}[]\",:\\ -+.eE0123456789tfnu\t\n\x01\x7f";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut accepted, mut refused) = (0, 0);
        for line in &lines {
            agree(line);
            for _ in 0..60 {
                let mut b = line.clone().into_bytes();
                for _ in 0..1 + next(3) {
                    if b.is_empty() {
                        break;
                    }
                    let at = next(b.len());
                    match next(4) {
                        0 => b[at] = specials[next(specials.len())],
                        1 => {
                            b.remove(at);
                        }
                        2 => b.insert(at, specials[next(specials.len())]),
                        _ => b.truncate(at),
                    }
                }
                let Ok(text) = String::from_utf8(b) else {
                    continue;
                };
                match serde_members(&text) {
                    Some(_) => accepted += 1,
                    None => refused += 1,
                }
                agree(&text);
            }
        }
        assert!(accepted > 100 && refused > 100, "{accepted} {refused}");
    }

    #[test]
    fn stop_bytes_finds_the_first_stop_in_a_word() {
        for bytes in [
            *b"abcdefgh",
            *b"abc\"efgh",
            *b"\\bcdefgh",
            *b"abcdefg\x1f",
            *b"ab\x00\"\\fgh",
            *b"\xff\xfe\x80\x7f !#~",
            *b"\x20\x21\x1f\"\\\x00\x01\x02",
        ] {
            let want = bytes.iter().position(|&c| STOPS[usize::from(c)]);
            let stops = stop_bytes(u64::from_le_bytes(bytes));
            let got = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
            assert_eq!(got, want, "{bytes:?}");
        }
    }

    #[test]
    fn string_values() {
        assert_eq!(string_value(r#""abc""#).as_deref(), Some("abc"));
        assert!(matches!(string_value(r#""abc""#), Some(Cow::Borrowed(_))));
        assert_eq!(string_value(r#""a\"b\u00e9""#).as_deref(), Some("a\"bé"));
        assert_eq!(string_value("12"), None);
        assert_eq!(string_value(r#""""#).as_deref(), Some(""));
        assert_eq!(string_value(r#""a"b""#), None);
    }
}
