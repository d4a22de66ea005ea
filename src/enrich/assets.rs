//! Asset tags: a CIDR table (`cidr,<col>,…`) matched by longest prefix on a
//! sample's destination; each other column becomes `asset_<col>`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The asset table could not be used; names the file and line.
#[derive(Debug, thiserror::Error)]
#[error("asset table {path}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct AssetError {
    /// The CSV file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on one.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// Prefixes of one address family, longest first, each with its rows by masked network.
#[derive(Debug, Default)]
struct Family<T> {
    by_len: Vec<(u8, HashMap<T, usize>)>,
}

trait Bits: Copy + Eq + std::hash::Hash {
    fn mask(self, len: u8) -> Self;
}

impl Bits for u32 {
    fn mask(self, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - u32::from(len)))
        }
    }
}

impl Bits for u128 {
    fn mask(self, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - u32::from(len)))
        }
    }
}

impl<T: Bits> Family<T> {
    /// Adds a network; returns the row already holding it, if any.
    fn insert(&mut self, net: T, len: u8, row: usize) -> Option<usize> {
        let pos = match self.by_len.iter().position(|(l, _)| *l == len) {
            Some(p) => p,
            None => {
                self.by_len.push((len, HashMap::new()));
                self.by_len.sort_by_key(|e| std::cmp::Reverse(e.0));
                self.by_len.iter().position(|(l, _)| *l == len).unwrap_or(0)
            }
        };
        let map = &mut self.by_len[pos].1;
        if let Some(prev) = map.get(&net) {
            return Some(*prev);
        }
        map.insert(net, row);
        None
    }

    fn lookup(&self, addr: T) -> Option<usize> {
        self.by_len
            .iter()
            .find_map(|(len, map)| map.get(&addr.mask(*len)).copied())
    }
}

/// The loaded table.
#[derive(Debug, Default)]
pub struct AssetTable {
    /// Output field names, `asset_<col>`, in the CSV's column order.
    columns: Vec<String>,
    /// Values per row, one per column (`""`: no tag).
    rows: Vec<Vec<String>>,
    /// Line of each row, for error messages.
    lines: Vec<u64>,
    v4: Family<u32>,
    v6: Family<u128>,
}

/// An address as the table keys it: IPv4-mapped IPv6 becomes IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= width)
            .ok_or_else(|| format!("{text:?}: prefix length must be 0..={width}"))?,
        None => width,
    };
    // An IPv4-mapped network (::ffff:a.b.c.d/96+n) is the IPv4 network a.b.c.d/n.
    match (addr, canonical(addr)) {
        (IpAddr::V6(_), IpAddr::V4(v4)) if len >= 96 => Ok((IpAddr::V4(v4), len - 96)),
        _ => Ok((addr, len)),
    }
}

impl AssetTable {
    /// Reads and checks a CSV file.
    pub fn load(path: &Path) -> Result<AssetTable, AssetError> {
        let text = std::fs::read_to_string(path).map_err(|e| AssetError {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        })?;
        AssetTable::parse(&text, path)
    }

    /// Parses CSV text (`path` only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<AssetTable, AssetError> {
        let err = |line: Option<u64>, message: String| AssetError {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .flexible(false)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| err(Some(1), e.to_string()))?
            .clone();
        if !header
            .get(0)
            .is_some_and(|h| h.eq_ignore_ascii_case("cidr"))
        {
            return Err(err(Some(1), "the first column must be `cidr`".into()));
        }
        let mut table = AssetTable::default();
        for col in header.iter().skip(1) {
            let name = col.to_ascii_lowercase();
            let ok =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(err(
                    Some(1),
                    format!("column {col:?}: use letters, digits and _ only"),
                ));
            }
            let field = format!("asset_{name}");
            if table.columns.contains(&field) {
                return Err(err(Some(1), format!("column {col:?} appears twice")));
            }
            table.columns.push(field);
        }
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line());
                err(line, e.to_string())
            })?;
            let line = record.position().map_or(0, |p| p.line());
            let cidr = record.get(0).unwrap_or_default();
            let (addr, len) = parse_cidr(cidr).map_err(|m| err(Some(line), m))?;
            let row = table.rows.len();
            let previous = match addr {
                IpAddr::V4(a) => {
                    let bits = u32::from(a);
                    if bits.mask(len) != bits {
                        return Err(err(Some(line), format!("{cidr:?} has host bits set")));
                    }
                    table.v4.insert(bits, len, row)
                }
                IpAddr::V6(a) => {
                    let bits = u128::from(a);
                    if bits.mask(len) != bits {
                        return Err(err(Some(line), format!("{cidr:?} has host bits set")));
                    }
                    table.v6.insert(bits, len, row)
                }
            };
            if let Some(prev) = previous {
                return Err(err(
                    Some(line),
                    format!("{cidr:?} is already on line {}", table.lines[prev]),
                ));
            }
            table
                .rows
                .push(record.iter().skip(1).map(str::to_string).collect());
            table.lines.push(line);
        }
        Ok(table)
    }

    /// Number of networks.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no networks.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The tags of the longest prefix holding `addr`: `(asset_<col>, value)`, empty values left out.
    pub fn tags<'t>(&'t self, addr: &str) -> impl Iterator<Item = (&'t str, &'t str)> + 't {
        let row = addr
            .parse::<IpAddr>()
            .ok()
            .and_then(|a| match canonical(a) {
                IpAddr::V4(v4) => self.v4.lookup(u32::from(v4)),
                IpAddr::V6(v6) => self.v6.lookup(u128::from(v6)),
            });
        let values = row.map(|r| self.rows[r].as_slice()).unwrap_or_default();
        self.columns
            .iter()
            .zip(values)
            .filter(|(_, v)| !v.is_empty())
            .map(|(c, v)| (c.as_str(), v.as_str()))
    }

    /// Output field names, `asset_<col>`.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\
cidr,site,customer,service
# the whole customer range
203.0.113.0/24,fra,Example GmbH,
203.0.113.64/26,fra,Example GmbH,web
203.0.113.80/32,fra,Example GmbH,\"dns, primary\"
2001:db8:100::/48,ams,Example GmbH,
2001:db8:100::/64,ams,Example GmbH,v6 web
::ffff:198.51.100.0/120,lon,Other Ltd,mapped
0.0.0.0/0,,,internet
";

    fn table() -> AssetTable {
        AssetTable::parse(CSV, Path::new("assets.csv")).unwrap()
    }

    fn tags(t: &AssetTable, a: &str) -> Vec<(String, String)> {
        t.tags(a)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn longest_prefix_wins_for_ipv4_and_ipv6() {
        let t = table();
        assert_eq!(t.len(), 7);
        assert_eq!(
            t.columns(),
            ["asset_site", "asset_customer", "asset_service"]
        );
        assert_eq!(
            tags(&t, "203.0.113.5"),
            pairs(&[("asset_site", "fra"), ("asset_customer", "Example GmbH")])
        );
        assert_eq!(tags(&t, "203.0.113.70")[2].1, "web");
        assert_eq!(tags(&t, "203.0.113.80")[2].1, "dns, primary");
        assert_eq!(tags(&t, "2001:db8:100::960")[2].1, "v6 web");
        assert_eq!(
            tags(&t, "2001:db8:100:7::1"),
            pairs(&[("asset_site", "ams"), ("asset_customer", "Example GmbH")])
        );
        assert_eq!(
            tags(&t, "192.0.2.1"),
            pairs(&[("asset_service", "internet")])
        );
        assert!(tags(&t, "2001:db8:ffff::1").is_empty());
        assert!(tags(&t, "not an address").is_empty());
    }

    #[test]
    fn ipv4_mapped_addresses_and_networks_are_ipv4() {
        let t = table();
        assert_eq!(tags(&t, "198.51.100.7")[0].1, "lon");
        assert_eq!(tags(&t, "::ffff:198.51.100.7")[0].1, "lon");
        assert_eq!(tags(&t, "::ffff:203.0.113.70")[2].1, "web");
    }

    #[test]
    fn bad_tables_name_the_file_and_line() {
        let bad = |text: &str| {
            AssetTable::parse(text, Path::new("/etc/sluice/assets.csv"))
                .unwrap_err()
                .to_string()
        };
        let e = bad("cidr,site\n10.0.0.0/8,a\n10.1.0.0/8,b\n");
        assert!(
            e.contains("/etc/sluice/assets.csv line 3") && e.contains("host bits"),
            "{e}"
        );
        let e = bad("cidr,site\n10.0.0.0/8,a\n10.0.0.0/8,b\n");
        assert!(e.contains("line 3") && e.contains("line 2"), "{e}");
        assert!(bad("net,site\n").contains("first column"));
        assert!(bad("cidr,si te\n").contains("si te"));
        assert!(bad("cidr,site\n10.0.0.0/33,a\n").contains("line 2"));
        assert!(bad("cidr,site\nexample.com,a\n").contains("not an IP"));
        assert!(bad("cidr,site\n10.0.0.0/8,a,b\n").contains("line 2"));
        assert!(bad("cidr,site,Site\n").contains("twice"));
    }
}
