//! Reading Splunk `.conf` files as Splunk does: `[stanza]` headers,
//! `key = value` lines, `#` comments, a trailing `\` continuing a value on
//! the next line; settings before any stanza belong to `default`.

use std::path::Path;

/// One file's stanzas in order, each with its settings in order.
pub struct Conf {
    pub stanzas: Vec<(String, Vec<(String, String)>)>,
}

impl Conf {
    pub fn read(path: &Path) -> Conf {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Conf::parse(&text)
    }

    pub fn parse(text: &str) -> Conf {
        let mut stanzas: Vec<(String, Vec<(String, String)>)> =
            vec![("default".to_string(), Vec::new())];
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let mut line = line.to_string();
            while line.ends_with('\\') {
                line.pop();
                line.push('\n');
                line.push_str(lines.next().unwrap_or(""));
            }
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if t.starts_with('[') && t.ends_with(']') {
                stanzas.push((t[1..t.len() - 1].to_string(), Vec::new()));
                continue;
            }
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("not a setting: {t}"));
            if let Some(last) = stanzas.last_mut() {
                last.1.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Conf { stanzas }
    }

    /// A stanza's settings (panics when it is missing: the test names it).
    pub fn stanza(&self, name: &str) -> &[(String, String)] {
        self.stanzas
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
            .unwrap_or_else(|| panic!("no [{name}] stanza"))
    }

    /// One setting of a stanza.
    pub fn get(&self, stanza: &str, key: &str) -> Option<&str> {
        self.stanza(stanza)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
