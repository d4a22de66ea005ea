//! Packets and verdicts of generated traffic, and how a sample of them is
//! written: every field Cloudflare documents, 0 or "" where it does not apply.

use super::scenario::{ScenarioOptions, Timestamps};
use crate::enrich::trim::{protocol_name, subnet_of_ip, tcp_flags_string};
use std::io::Write;
use std::net::IpAddr;

/// A Cloudflare data center.
pub(super) struct Colo {
    pub(super) code: &'static str,
    pub(super) city: &'static str,
    pub(super) country: &'static str,
    pub(super) geohash: &'static str,
    pub(super) name: &'static str,
}

/// Data centers samples come from.
pub(super) const COLOS: &[Colo] = &[
    Colo {
        code: "FRA",
        city: "Frankfurt",
        country: "DE",
        geohash: "u0yjjd6jk0",
        name: "fra08",
    },
    Colo {
        code: "AMS",
        city: "Amsterdam",
        country: "NL",
        geohash: "u173zq37x",
        name: "ams01",
    },
    Colo {
        code: "IAD",
        city: "Ashburn",
        country: "US",
        geohash: "dqbyhex4",
        name: "iad02",
    },
    Colo {
        code: "SIN",
        city: "Singapore",
        country: "SG",
        geohash: "w21z74nz",
        name: "sin03",
    },
    Colo {
        code: "GRU",
        city: "Sao Paulo",
        country: "BR",
        geohash: "6gyf4bf8m",
        name: "gru01",
    },
    Colo {
        code: "LHR",
        city: "London",
        country: "GB",
        geohash: "gcpvj0duq",
        name: "lhr01",
    },
    Colo {
        code: "NRT",
        city: "Tokyo",
        country: "JP",
        geohash: "xn77h2q4u",
        name: "nrt02",
    },
];

/// Source networks: ASN, name, country.
pub(super) const CLIENTS: &[(u32, &str, &str)] = &[
    (7922, "COMCAST-7922", "US"),
    (3320, "DTAG", "DE"),
    (2856, "BT-UK-AS", "GB"),
    (16509, "AMAZON-02", "US"),
    (9009, "M247", "GB"),
    (64511, "EXAMPLE-TRANSIT", "US"),
];
/// Open DNS resolvers abused for reflection: ASN, name, country.
pub(super) const RESOLVERS: &[(u32, &str, &str)] = &[
    (14061, "DIGITALOCEAN-ASN", "US"),
    (45090, "TENCENT-NET-AP", "CN"),
    (4134, "CHINANET-BACKBONE", "CN"),
    (16276, "OVH", "FR"),
];

/// RulesetID of the DDoS managed ruleset.
pub(super) const DOSD_RULESET: &str = "3b64149bfa6e4220bbbc2bd6db589552";
/// RulesetID of the customer's Magic Firewall ruleset.
pub(super) const MFW_RULESET: &str = "6f1a0c3e9d2b4a7c8e5f1d2c3b4a5968";

/// A packet as Cloudflare saw it.
#[derive(Clone)]
pub(super) struct Packet {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) proto: u8,
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    pub(super) ttl: u8,
    pub(super) len: u16,
    pub(super) tcp_flags: u8,
    pub(super) syn_options: bool,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) window: u16,
    pub(super) icmp_type: u8,
    pub(super) ident: u16,
    pub(super) flow_label: u32,
    pub(super) checksum: [u16; 2],
    pub(super) asn: (u32, &'static str, &'static str),
    pub(super) colo: usize,
}

/// What one mitigation system did with it.
pub(super) struct Verdict {
    pub(super) system: &'static str,
    pub(super) outcome: &'static str,
    pub(super) interval: u64,
    pub(super) attack: Option<(String, &'static str)>,
    pub(super) rule: Option<(&'static str, &'static str)>,
    pub(super) ruleset: &'static str,
    pub(super) reason: &'static str,
    pub(super) scope: &'static str,
    pub(super) state: &'static str,
}

enum Val<'a> {
    /// A string, escaped when written.
    S(&'a str),
    /// A number.
    N(u64),
    /// JSON text written as is.
    Raw(&'a str),
}

/// Appends one sample as Cloudflare writes it: every field, in order.
pub(super) fn write_sample(
    p: &Packet,
    v: &Verdict,
    at: time::OffsetDateTime,
    o: ScenarioOptions,
    out: &mut Vec<u8>,
) {
    let colo = &COLOS[p.colo];
    let (v6, tcp, udp, icmp) = (
        p.dst.is_ipv6(),
        p.proto == 6,
        p.proto == 17,
        p.proto == 1 || p.proto == 58,
    );
    let on = |b: bool, n: u64| if b { n } else { 0 };
    let proto_name = protocol_name(p.proto).unwrap_or_default();
    let flags = tcp_flags_string(u64::from(p.tcp_flags));
    let (src, dst) = (p.src.to_string(), p.dst.to_string());
    let (src_net, dst_net) = (subnet_of_ip(p.src), subnet_of_ip(p.dst));
    let options = if !tcp {
        ""
    } else if p.syn_options {
        "2,4,8,1,3"
    } else {
        "1,1,8"
    };
    let header = if v6 { 40 } else { 20 };
    let datetime = match o.timestamps {
        Timestamps::Rfc3339 => at
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        Timestamps::Unix => at.unix_timestamp().to_string(),
        Timestamps::Unixnano => at.unix_timestamp_nanos().to_string(),
    };
    let (rule_id, rule_name) = v.rule.unwrap_or(("", ""));
    let (attack_id, vector) = v
        .attack
        .as_ref()
        .map_or(("", ""), |(id, vec)| (id.as_str(), *vec));
    let fields: [(&str, Val); 84] = [
        ("AttackCampaignID", Val::S("")),
        ("AttackID", Val::S(attack_id)),
        ("AttackVector", Val::S(vector)),
        ("ColoCity", Val::S(colo.city)),
        ("ColoCode", Val::S(colo.code)),
        ("ColoCountry", Val::S(colo.country)),
        ("ColoGeoHash", Val::S(colo.geohash)),
        ("ColoName", Val::S(colo.name)),
        ("DNSQueryName", Val::S("")),
        ("DNSQueryType", Val::S("")),
        (
            "Datetime",
            match o.timestamps {
                Timestamps::Rfc3339 => Val::S(&datetime),
                _ => Val::Raw(&datetime),
            },
        ),
        ("DestinationASN", Val::N(64500)),
        ("DestinationASNName", Val::S("EXAMPLE-CUSTOMER")),
        ("DestinationCountry", Val::S("DE")),
        ("DestinationGeoHash", Val::S("u0yhd7hbvm")),
        ("DestinationPort", Val::N(u64::from(p.dst_port))),
        ("Direction", Val::S("ingress")),
        ("GREChecksum", Val::N(0)),
        ("GREEtherType", Val::N(0)),
        ("GREHeaderLength", Val::N(0)),
        ("GREKey", Val::N(0)),
        ("GRESequenceNumber", Val::N(0)),
        ("GREVersion", Val::N(0)),
        ("ICMPChecksum", Val::N(on(icmp, u64::from(p.checksum[1])))),
        ("ICMPCode", Val::N(0)),
        ("ICMPType", Val::N(on(icmp, u64::from(p.icmp_type)))),
        ("IPDestinationAddress", Val::S(&dst)),
        ("IPDestinationSubnet", Val::S(&dst_net)),
        ("IPFragmentOffset", Val::N(0)),
        ("IPHeaderLength", Val::N(header)),
        ("IPMoreFragments", Val::N(0)),
        ("IPProtocol", Val::N(u64::from(p.proto))),
        ("IPProtocolName", Val::S(proto_name)),
        ("IPSourceAddress", Val::S(&src)),
        ("IPSourceSubnet", Val::S(&src_net)),
        ("IPTTL", Val::N(u64::from(p.ttl))),
        ("IPTTLBuckets", Val::N(u64::from(p.ttl) / 10 * 10)),
        ("IPTotalLength", Val::N(u64::from(p.len))),
        ("IPTotalLengthBuckets", Val::N(u64::from(p.len) / 100 * 100)),
        ("IPv4Checksum", Val::N(on(!v6, u64::from(p.checksum[0])))),
        ("IPv4DSCP", Val::N(0)),
        ("IPv4DontFragment", Val::N(on(!v6, 1))),
        ("IPv4ECN", Val::N(0)),
        ("IPv4Identification", Val::N(u64::from(p.ident))),
        ("IPv4Options", Val::S("")),
        ("IPv6DSCP", Val::N(0)),
        ("IPv6ECN", Val::N(0)),
        ("IPv6ExtensionHeaders", Val::S("")),
        ("IPv6FlowLabel", Val::N(u64::from(p.flow_label))),
        ("IPv6Identification", Val::N(0)),
        ("MitigationReason", Val::S(v.reason)),
        ("MitigationScope", Val::S(v.scope)),
        ("MitigationSystem", Val::S(v.system)),
        ("Outcome", Val::S(v.outcome)),
        ("PFPCustomTag", Val::N(0)),
        ("ProtocolState", Val::S(v.state)),
        ("RuleID", Val::S(rule_id)),
        ("RuleName", Val::S(rule_name)),
        ("RulesetID", Val::S(v.ruleset)),
        ("RulesetOverrideID", Val::S("")),
        ("SampleInterval", Val::N(v.interval)),
        ("SourceASN", Val::N(u64::from(p.asn.0))),
        ("SourceASNName", Val::S(p.asn.1)),
        ("SourceCountry", Val::S(p.asn.2)),
        ("SourceGeoHash", Val::S("")),
        ("SourcePort", Val::N(u64::from(p.src_port))),
        (
            "TCPAcknowledgementNumber",
            Val::N(on(tcp, u64::from(p.ack))),
        ),
        ("TCPChecksum", Val::N(on(tcp, u64::from(p.checksum[1])))),
        (
            "TCPDataOffset",
            Val::N(on(tcp, if p.syn_options { 40 } else { 32 })),
        ),
        ("TCPFlags", Val::N(on(tcp, u64::from(p.tcp_flags)))),
        ("TCPFlagsString", Val::S(if tcp { &flags } else { "" })),
        ("TCPMSS", Val::N(on(tcp && p.syn_options, 1460))),
        ("TCPOptions", Val::S(options)),
        ("TCPSACKBlocks", Val::S("")),
        ("TCPSACKPermitted", Val::N(on(tcp && p.syn_options, 1))),
        ("TCPSequenceNumber", Val::N(on(tcp, u64::from(p.seq)))),
        ("TCPTimestampECR", Val::N(0)),
        ("TCPTimestampValue", Val::N(on(tcp, u64::from(p.seq >> 8)))),
        ("TCPUrgentPointer", Val::N(0)),
        ("TCPWindowScale", Val::N(on(tcp && p.syn_options, 7))),
        ("TCPWindowSize", Val::N(on(tcp, u64::from(p.window)))),
        ("UDPChecksum", Val::N(on(udp, u64::from(p.checksum[1])))),
        (
            "UDPPayloadLength",
            Val::N(on(udp, u64::from(p.len).saturating_sub(header + 8))),
        ),
        ("Verdict", Val::S(v.outcome)),
    ];
    out.push(b'{');
    for (i, (key, val)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let key = if o.legacy_names {
            legacy_name(key)
        } else {
            key
        };
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        // Writing into a Vec cannot fail.
        match val {
            Val::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Val::S(s) => {
                let _ = serde_json::to_writer(&mut *out, s);
            }
            Val::N(n) => {
                let _ = write!(out, "{n}");
            }
        }
    }
    out.push(b'}');
}

fn legacy_name(current: &str) -> &str {
    crate::enrich::sample::LEGACY_NAMES
        .iter()
        .find(|(_, new)| *new == current)
        .map_or(current, |(old, _)| old)
}
