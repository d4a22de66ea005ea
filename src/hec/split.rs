//! Incremental splitting of a HEC `/event` body into its JSON objects.
//!
//! A body is JSON objects concatenated (any whitespace between them), or a
//! top-level array of objects. The splitter only finds object boundaries
//! (strings, escapes and nesting); each object is then parsed on its own, so
//! one bad object can be numbered and the objects before it kept.

use std::ops::Range;

/// The body is not a sequence of JSON objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    /// Outside any array: expects `{`, `[` or whitespace.
    Stream,
    /// Just after `[` : expects `{` or `]`.
    ArrayStart,
    /// After an element: expects `,` or `]`.
    ArrayAfterElement,
    /// After `,` : expects `{`.
    ArrayAfterComma,
}

/// Finds complete top-level objects in a growing buffer.
#[derive(Debug)]
pub struct ObjectSplitter {
    top: Top,
    /// Inside an object: its start offset and scan state.
    object: Option<ObjectScan>,
    pos: usize,
}

#[derive(Debug, Clone, Copy)]
struct ObjectScan {
    start: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Default for ObjectSplitter {
    fn default() -> Self {
        ObjectSplitter {
            top: Top::Stream,
            object: None,
            pos: 0,
        }
    }
}

impl ObjectSplitter {
    /// A splitter at the start of a body.
    pub fn new() -> ObjectSplitter {
        ObjectSplitter::default()
    }

    /// Returns the byte range of the next complete object in `buf`, or `None`
    /// when more input is needed. `buf` must keep every byte from
    /// [`ObjectSplitter::keep_from`] on between calls.
    pub fn next_object(&mut self, buf: &[u8]) -> Result<Option<Range<usize>>, SplitError> {
        while self.pos < buf.len() {
            if let Some(scan) = self.object.as_mut() {
                if let Some(end) = scan_object(scan, buf, &mut self.pos) {
                    let start = scan.start;
                    self.object = None;
                    if self.top != Top::Stream {
                        self.top = Top::ArrayAfterElement;
                    }
                    return Ok(Some(start..end));
                }
                continue;
            }
            let b = buf[self.pos];
            if b.is_ascii_whitespace() {
                self.pos += 1;
                continue;
            }
            match (self.top, b) {
                (Top::Stream | Top::ArrayStart | Top::ArrayAfterComma, b'{') => {
                    self.object = Some(ObjectScan {
                        start: self.pos,
                        depth: 1,
                        in_string: false,
                        escaped: false,
                    });
                }
                (Top::Stream, b'[') => self.top = Top::ArrayStart,
                (Top::ArrayStart | Top::ArrayAfterElement, b']') => self.top = Top::Stream,
                (Top::ArrayAfterElement, b',') => self.top = Top::ArrayAfterComma,
                _ => return Err(SplitError),
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// Checks that the body ended between objects.
    pub fn finish(&self) -> Result<(), SplitError> {
        if self.object.is_some() || self.top != Top::Stream {
            Err(SplitError)
        } else {
            Ok(())
        }
    }

    /// The first offset the caller must still keep (the start of a partly
    /// scanned object, else the scan position).
    pub fn keep_from(&self) -> usize {
        self.object.map_or(self.pos, |o| o.start)
    }

    /// Forgets everything scanned so far, including the head of an object
    /// still open (its scan state is kept, so its end is still found): the
    /// caller drops that many bytes from the front of its buffer. For
    /// objects too large to hold; the range later returned for such an
    /// object no longer covers its start.
    pub fn drop_scanned(&mut self) -> usize {
        let n = self.pos;
        self.pos = 0;
        if let Some(o) = self.object.as_mut() {
            o.start = 0;
        }
        n
    }

    /// Whether an object is open (started, not yet closed).
    pub fn in_object(&self) -> bool {
        self.object.is_some()
    }

    /// Tells the splitter that the caller dropped the first `n` bytes of its buffer.
    pub fn shift(&mut self, n: usize) {
        self.pos -= n;
        if let Some(o) = self.object.as_mut() {
            o.start -= n;
        }
    }
}

/// Advances through an object; returns its end offset once its closing brace is seen.
fn scan_object(scan: &mut ObjectScan, buf: &[u8], pos: &mut usize) -> Option<usize> {
    let mut i = *pos;
    while i < buf.len() {
        let b = buf[i];
        i += 1;
        if scan.in_string {
            if scan.escaped {
                scan.escaped = false;
            } else if b == b'\\' {
                scan.escaped = true;
            } else if b == b'"' {
                scan.in_string = false;
            }
            continue;
        }
        match b {
            b'"' => scan.in_string = true,
            b'{' | b'[' => scan.depth += 1,
            b'}' | b']' => {
                scan.depth -= 1;
                if scan.depth == 0 {
                    *pos = i;
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    *pos = i;
    None
}

/// Splits a complete body into its objects (used on the way out, where the
/// body was validated at ingest). `limit` stops at a partially accepted prefix.
pub fn objects(body: &[u8]) -> impl Iterator<Item = Result<&[u8], SplitError>> {
    let mut splitter = ObjectSplitter::new();
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match splitter.next_object(body) {
            Ok(Some(r)) => Some(Ok(&body[r])),
            Ok(None) => {
                done = true;
                splitter.finish().err().map(Err)
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str) -> Result<Vec<String>, SplitError> {
        objects(body.as_bytes())
            .map(|r| r.map(|o| String::from_utf8(o.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn concatenated_and_arrays() {
        assert_eq!(
            split(r#"{"a":1}{"b":"}"}"#).unwrap(),
            vec![r#"{"a":1}"#, r#"{"b":"}"}"#]
        );
        assert_eq!(split("{\"a\":1}\n\n {\"b\":2}\r\n").unwrap().len(), 2);
        assert_eq!(split(r#"[{"a":1}, {"b":[1,{"c":2}]}]"#).unwrap().len(), 2);
        assert_eq!(split(r#"[]"#).unwrap().len(), 0);
        assert_eq!(split(r#"{"s":"q\"}{"}"#).unwrap(), vec![r#"{"s":"q\"}{"}"#]);
    }

    #[test]
    fn rejects_non_objects() {
        for bad in [
            r#""x""#,
            "1",
            r#"{"a":1"#,
            r#"[{"a":1}"#,
            r#"[{"a":1},]"#,
            "]",
            "[[{}]]",
        ] {
            assert!(split(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn incremental_feeding_matches_whole() {
        let body = br#"{"event":"a\"b"} [ {"event":{"x":[1,2]}} , {"event":3} ] {"event":"z"}"#;
        for cut in 1..body.len() {
            let mut s = ObjectSplitter::new();
            let mut buf = Vec::new();
            let mut found = Vec::new();
            for chunk in body.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(r) = s.next_object(&buf).unwrap() {
                    found.push(buf[r].to_vec());
                }
                let keep = s.keep_from();
                buf.drain(..keep);
                s.shift(keep);
            }
            s.finish().unwrap();
            assert_eq!(found.len(), 4, "cut {cut}");
            assert_eq!(found[3], br#"{"event":"z"}"#);
        }
    }
}
