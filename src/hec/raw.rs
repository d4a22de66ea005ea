//! `/raw` bodies: one event per line (LF, one CR stripped, blank lines skipped).

/// Counts the events of a `/raw` body chunk by chunk.
#[derive(Debug, Default)]
pub struct LineCounter {
    lines: u64,
    line_has_content: bool,
}

impl LineCounter {
    /// A counter at the start of a body.
    pub fn new() -> LineCounter {
        LineCounter::default()
    }

    /// Feeds the next decoded chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            // has_content stops at the first non-blank byte: O(1) for real lines.
            if self.line_has_content || has_content(&chunk[start..nl]) {
                self.lines += 1;
            }
            self.line_has_content = false;
            start = nl + 1;
        }
        let rest = &chunk[start..];
        self.line_has_content = self.line_has_content || has_content(rest);
    }

    /// Ends the body; returns the number of non-blank lines.
    pub fn finish(self) -> u64 {
        self.lines + u64::from(self.line_has_content)
    }
}

fn has_content(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_whitespace())
}

/// The events of a complete `/raw` body: lines without their CR/LF, blank lines skipped.
pub fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| has_content(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_across_chunks() {
        let body = b"a\r\n\n  \nbb\n  c\nlast";
        for cut in 1..body.len() {
            let mut c = LineCounter::new();
            for chunk in body.chunks(cut) {
                c.feed(chunk);
            }
            assert_eq!(c.finish(), 4, "cut {cut}");
        }
        let got: Vec<&[u8]> = lines(body).collect();
        assert_eq!(got, vec![&b"a"[..], b"bb", b"  c", b"last"]);
    }

    #[test]
    fn blank_body_has_no_events() {
        let mut c = LineCounter::new();
        c.feed(b"\n\r\n   \n");
        assert_eq!(c.finish(), 0);
    }
}
