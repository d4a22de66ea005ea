//! Protocol-aware trimming: which of a sample's fields stay in `_raw`.
//!
//! `empty` drops `""`/null values and the header groups that cannot apply
//! to the packet (TCP fields on a UDP packet, IPv4 fields on IPv6…); every
//! zero in a group that applies stays, since zero is often an answer (ICMP
//! type 0 is an echo reply). `compact` also drops fields the Splunk app
//! recomputes exactly from what stays — each only when it equals that
//! recomputed value, so nothing is lost — plus the checksums, which carry
//! no analytic value. README.md lists the compact set and how each returns.

use super::config::TrimMode;
use super::sample::Sample;
use std::borrow::Cow;
use std::net::IpAddr;

/// What trimming needs to know about a sample, read once.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    /// `IPProtocol`.
    pub protocol: Option<u8>,
    /// 4 or 6, from the source (else destination) address.
    pub ip_version: Option<u8>,
    tcp_flags: Option<u64>,
    tcp_options: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    destination: Option<Cow<'a, str>>,
    ttl: Option<f64>,
    total_length: Option<f64>,
    outcome: Option<Cow<'a, str>>,
}

/// IANA protocol numbers and the names Cloudflare gives them in `IPProtocolName`.
pub const PROTOCOL_NAMES: &[(u8, &str)] = &[
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipip"),
    (6, "tcp"),
    (17, "udp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "icmpv6"),
    (132, "sctp"),
];

/// TCP flag names from bit 0 up, the order of `TCPFlagsString`.
pub const TCP_FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

/// `TCPFlagsString` for a `TCPFlags` value (`24` → `PSH,ACK`).
pub fn tcp_flags_string(flags: u64) -> String {
    let names: Vec<&str> = TCP_FLAG_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags >> bit & 1 == 1)
        .map(|(_, n)| *n)
        .collect();
    names.join(",")
}

/// The /24 (IPv4) or /64 (IPv6) network Cloudflare reports as the address's subnet.
pub fn subnet_of(addr: &str) -> Option<String> {
    addr.parse::<IpAddr>().ok().map(subnet_of_ip)
}

/// [`subnet_of`] for a parsed address.
pub fn subnet_of_ip(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            format!("{x}.{y}.{z}.0/24")
        }
        IpAddr::V6(a) => {
            let net = u128::from(a) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
    }
}

/// [`subnet_of`] an address written in canonical form (RFC 5952 for IPv6),
/// the only form the Splunk app's text expressions rebuild the subnet from.
fn canonical_subnet(addr: &str) -> Option<String> {
    let ip = addr.parse::<IpAddr>().ok()?;
    (ip.to_string() == addr).then(|| subnet_of_ip(ip))
}

/// Cloudflare's `IPProtocolName` for an IANA protocol number, when known.
pub fn protocol_name(number: u8) -> Option<&'static str> {
    PROTOCOL_NAMES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

impl<'a> Facts<'a> {
    /// Reads the facts from a sample (after name normalization).
    pub fn of(s: &Sample<'a>) -> Facts<'a> {
        let source = s.str("IPSourceAddress");
        let destination = s.str("IPDestinationAddress");
        let version = |a: &Option<Cow<'_, str>>| {
            a.as_deref()
                .filter(|a| !a.is_empty())
                .map(|a| if a.contains(':') { 6 } else { 4 })
        };
        Facts {
            protocol: s
                .num("IPProtocol")
                .filter(|p| (0.0..=255.0).contains(p))
                .map(|p| p as u8),
            ip_version: version(&source).or_else(|| version(&destination)),
            tcp_flags: s.num("TCPFlags").map(|f| f as u64),
            tcp_options: s.str("TCPOptions"),
            source,
            destination,
            ttl: s.num("IPTTL"),
            total_length: s.num("IPTotalLength"),
            outcome: s.str("Outcome"),
        }
    }

    /// `IPDestinationAddress`, which asset tags match on.
    pub fn destination(&self) -> Option<&str> {
        self.destination.as_deref()
    }

    /// Whether a field's header group applies (fields outside any group always do).
    fn group_applies(&self, key: &str) -> bool {
        let wanted: &[u8] = if key.starts_with("TCP") {
            &[6]
        } else if key.starts_with("UDP") {
            &[17]
        } else if key.starts_with("ICMP") {
            &[1, 58]
        } else if key.starts_with("GRE") {
            &[47]
        } else if key.starts_with("IPv4") {
            return self.ip_version != Some(6);
        } else if key.starts_with("IPv6") {
            return self.ip_version != Some(4);
        } else {
            return true;
        };
        // Without a protocol number nothing can be said: keep the group.
        self.protocol.is_none_or(|p| wanted.contains(&p))
    }

    /// Whether the Splunk app recomputes this field's exact value from what stays.
    fn restorable(&self, key: &str, value: &str) -> bool {
        let text = value.trim_matches('"');
        let zero = text == "0";
        let flag = |bit: u64| self.tcp_flags.map(|f| f & bit != 0);
        // A TCP option field is 0 when its option kind is absent from TCPOptions.
        let option_absent = |kind: &str| {
            self.tcp_options
                .as_deref()
                .filter(|o| !o.is_empty())
                .is_some_and(|o| !o.split(',').any(|k| k.trim() == kind))
        };
        match key {
            _ if key.ends_with("Checksum") => true,
            "IPSourceSubnet" => {
                self.source.as_deref().and_then(canonical_subnet).as_deref() == Some(text)
            }
            "IPDestinationSubnet" => {
                self.destination
                    .as_deref()
                    .and_then(canonical_subnet)
                    .as_deref()
                    == Some(text)
            }
            "IPTTLBuckets" => {
                self.ttl
                    .map(|t| (t as u64 / 10 * 10).to_string())
                    .as_deref()
                    == Some(text)
            }
            "IPTotalLengthBuckets" => {
                self.total_length
                    .map(|l| (l as u64 / 100 * 100).to_string())
                    .as_deref()
                    == Some(text)
            }
            "IPProtocolName" => self.protocol.and_then(protocol_name) == Some(text),
            "TCPFlagsString" => self.tcp_flags.map(tcp_flags_string).as_deref() == Some(text),
            "Verdict" => self.outcome.as_deref() == Some(text),
            "IPHeaderLength" => self.ip_version == Some(6) && text == "40",
            "TCPMSS" => zero && option_absent("2"),
            "TCPWindowScale" => zero && option_absent("3"),
            "TCPSACKPermitted" => zero && option_absent("4"),
            "TCPTimestampValue" | "TCPTimestampECR" => zero && option_absent("8"),
            "TCPAcknowledgementNumber" => zero && flag(0x10) == Some(false),
            "TCPUrgentPointer" => zero && flag(0x20) == Some(false),
            _ => false,
        }
    }
}

/// Whether a field stays in the enriched sample.
pub fn keep(mode: TrimMode, key: &str, value: &str, facts: &Facts<'_>) -> bool {
    if mode == TrimMode::None {
        return true;
    }
    // What makes a line a sample always stays, so it stays one.
    if key == "MitigationSystem" || key == "Datetime" {
        return true;
    }
    if value == "\"\"" || value == "null" || !facts.group_applies(key) {
        return false;
    }
    mode != TrimMode::Compact || !facts.restorable(key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(mode: TrimMode, line: &str) -> Vec<String> {
        let s = Sample::parse(line.as_bytes()).unwrap();
        let f = Facts::of(&s);
        s.pairs()
            .filter(|(k, v)| keep(mode, k, v, &f))
            .map(|(k, _)| k.to_string())
            .collect()
    }

    const BASE: &str = r#""MitigationSystem":"dosd","Datetime":"2026-11-20T10:00:04Z","Outcome":"pass","Verdict":"pass""#;

    #[test]
    fn icmp_echo_reply_keeps_its_zeros() {
        let line = format!(
            r#"{{{BASE},"IPProtocol":1,"IPSourceAddress":"192.0.2.1","ICMPType":0,"ICMPCode":0,"ICMPChecksum":0,"TCPFlags":0,"UDPChecksum":0,"GREKey":0,"IPv6FlowLabel":0,"IPv4DSCP":0,"IPFragmentOffset":0,"DNSQueryName":"","PFPCustomTag":0}}"#
        );
        let k = kept(TrimMode::Empty, &line);
        for f in [
            "ICMPType",
            "ICMPCode",
            "ICMPChecksum",
            "IPv4DSCP",
            "IPFragmentOffset",
            "PFPCustomTag",
        ] {
            assert!(k.contains(&f.to_string()), "{f} dropped: {k:?}");
        }
        for f in [
            "TCPFlags",
            "UDPChecksum",
            "GREKey",
            "IPv6FlowLabel",
            "DNSQueryName",
        ] {
            assert!(!k.contains(&f.to_string()), "{f} kept");
        }
        let c = kept(TrimMode::Compact, &line);
        assert!(c.contains(&"ICMPType".to_string()) && !c.contains(&"ICMPChecksum".to_string()));
        assert!(!c.contains(&"Verdict".to_string()));
        assert_eq!(kept(TrimMode::None, &line).len(), 17);
    }

    #[test]
    fn ipv6_and_gre_groups() {
        let line = format!(
            r#"{{{BASE},"IPProtocol":47,"IPSourceAddress":"2001:db8::1","GREKey":0,"GREEtherType":0,"IPv4Checksum":0,"IPv6FlowLabel":0,"IPHeaderLength":40,"TCPMSS":0}}"#
        );
        let k = kept(TrimMode::Empty, &line);
        assert!(k.contains(&"GREKey".to_string()) && k.contains(&"IPv6FlowLabel".to_string()));
        assert!(!k.contains(&"IPv4Checksum".to_string()) && !k.contains(&"TCPMSS".to_string()));
        assert!(!kept(TrimMode::Compact, &line).contains(&"IPHeaderLength".to_string()));
        // Unknown protocol: no group can be ruled out.
        let k = kept(
            TrimMode::Empty,
            &format!(r#"{{{BASE},"TCPFlags":0,"UDPChecksum":0}}"#),
        );
        assert!(k.contains(&"TCPFlags".to_string()) && k.contains(&"UDPChecksum".to_string()));
    }

    #[test]
    fn compact_drops_only_what_recomputes_exactly() {
        let line = format!(
            r#"{{{BASE},"IPProtocol":6,"IPProtocolName":"tcp","IPSourceAddress":"198.51.100.7","IPSourceSubnet":"198.51.100.0/24","IPDestinationAddress":"203.0.113.9","IPDestinationSubnet":"203.0.113.0/23","IPTTL":57,"IPTTLBuckets":50,"IPTotalLength":576,"IPTotalLengthBuckets":500,"TCPFlags":2,"TCPFlagsString":"SYN","TCPOptions":"2,4,8,1,3","TCPMSS":1460,"TCPWindowScale":0,"TCPTimestampECR":0,"TCPAcknowledgementNumber":0,"TCPUrgentPointer":0,"TCPSACKPermitted":0}}"#
        );
        let c = kept(TrimMode::Compact, &line);
        for gone in [
            "IPProtocolName",
            "IPSourceSubnet",
            "IPTTLBuckets",
            "IPTotalLengthBuckets",
            "TCPFlagsString",
            "TCPAcknowledgementNumber",
            "TCPUrgentPointer",
        ] {
            assert!(!c.contains(&gone.to_string()), "{gone} kept");
        }
        // Not what the app would recompute, or the option is present: kept.
        for stays in [
            "IPDestinationSubnet",
            "TCPMSS",
            "TCPWindowScale",
            "TCPTimestampECR",
            "TCPSACKPermitted",
            "IPTTL",
            "TCPFlags",
        ] {
            assert!(c.contains(&stays.to_string()), "{stays} dropped");
        }
        let no_opts = format!(
            r#"{{{BASE},"IPProtocol":6,"TCPFlags":16,"TCPOptions":"1,1","TCPMSS":0,"TCPWindowScale":0,"TCPAcknowledgementNumber":0}}"#
        );
        let c = kept(TrimMode::Compact, &no_opts);
        assert!(!c.contains(&"TCPMSS".to_string()) && !c.contains(&"TCPWindowScale".to_string()));
        assert!(
            c.contains(&"TCPAcknowledgementNumber".to_string()),
            "ACK set: 0 is a value"
        );
    }

    /// The app derives a subnet from the address's text, which it can do
    /// for the canonical form Cloudflare writes only: a subnet beside an
    /// address written any other way stays.
    #[test]
    fn compact_keeps_the_subnet_of_an_address_not_in_canonical_form() {
        for (addr, subnet) in [
            ("2001:DB8::1", "2001:db8::/64"),
            ("2001:db8:0:0:1::1", "2001:db8::/64"),
            ("2001:0db8::1", "2001:db8::/64"),
        ] {
            let line =
                format!(r#"{{{BASE},"IPSourceAddress":"{addr}","IPSourceSubnet":"{subnet}"}}"#);
            let c = kept(TrimMode::Compact, &line);
            assert!(c.contains(&"IPSourceSubnet".to_string()), "{addr}: dropped");
        }
        let line = format!(
            r#"{{{BASE},"IPSourceAddress":"2001:db8::1","IPSourceSubnet":"2001:db8::/64"}}"#
        );
        assert!(!kept(TrimMode::Compact, &line).contains(&"IPSourceSubnet".to_string()));
    }

    #[test]
    fn helpers() {
        assert_eq!(tcp_flags_string(24), "PSH,ACK");
        assert_eq!(tcp_flags_string(17), "FIN,ACK");
        assert_eq!(tcp_flags_string(0), "");
        assert_eq!(subnet_of("203.0.113.35").unwrap(), "203.0.113.0/24");
        assert_eq!(
            subnet_of("2001:db8:dead::c5c1:c59f").unwrap(),
            "2001:db8:dead::/64"
        );
        assert!(subnet_of("x").is_none());
    }
}
