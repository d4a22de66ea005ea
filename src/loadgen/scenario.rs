//! `loadgen --scenario ddos`: realistic network_analytics_logs for a Magic
//! Transit customer (203.0.113.0/24, 2001:db8:100::/64), with the ground truth
//! of what was generated.
//!
//! Traffic comes in epochs of a few thousand samples. Every epoch has
//! baseline traffic that passes all three mitigation systems (one packet,
//! three samples: dosd, flowtrackd, magic-firewall, same SampleInterval),
//! out-of-state TCP dropped by Advanced TCP Protection and Magic Firewall
//! rule drops; some epochs add a SYN flood and/or a DNS reflection attack
//! dropped by dosd, each with a fresh AttackID. SampleInterval changes per
//! epoch, as Cloudflare's sampling adapts to volume.

use super::packet::{
    write_sample, Packet, Verdict, CLIENTS, COLOS, DOSD_RULESET, MFW_RULESET, RESOLVERS,
};
pub use super::truth::{AttackTruth, Truth};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How `Datetime` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Timestamps {
    /// `"2026-11-20T10:00:04Z"`.
    #[default]
    Rfc3339,
    /// Epoch seconds, a number.
    Unix,
    /// Epoch nanoseconds, a number.
    Unixnano,
}

/// Scenario settings.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioOptions {
    /// `Datetime` form.
    pub timestamps: Timestamps,
    /// Use Cloudflare's legacy field names (`IPTtl`, `TCPMss`, …).
    pub legacy_names: bool,
    /// Random seed: the same seed gives the same traffic (times aside).
    pub seed: u64,
}

/// Epoch settings.
struct Epoch {
    number: u64,
    left: u64,
    baseline_interval: u64,
    attack_interval: u64,
    syn_flood: Option<String>,
    dns_reflection: Option<String>,
    colo: usize,
}

/// The generator; `next_batch` appends NDJSON lines and their truth.
pub struct Scenario {
    opts: ScenarioOptions,
    rng: StdRng,
    epoch: Epoch,
    /// Samples of the current baseline packet still to write (passes through all three systems).
    pending: Vec<(Packet, Verdict)>,
}

impl Scenario {
    /// A generator seeded from `opts.seed`.
    pub fn new(opts: ScenarioOptions) -> Scenario {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let epoch = Scenario::new_epoch(&mut rng, 0);
        Scenario {
            opts,
            rng,
            epoch,
            pending: Vec::new(),
        }
    }

    /// Epoch `n`: the first two always carry an attack (a SYN flood, then
    /// DNS reflection), so even a short run shows both; later ones are drawn.
    fn new_epoch(rng: &mut StdRng, n: u64) -> Epoch {
        let id = |rng: &mut StdRng| format!("{:032x}", rng.random::<u128>());
        let kind = match n {
            0 => 50,
            1 => 80,
            _ => rng.random_range(0..100),
        };
        let syn = (40..75).contains(&kind) || kind >= 90;
        let dns = kind >= 75;
        Epoch {
            number: n,
            left: rng.random_range(1_000..4_000),
            baseline_interval: [100, 100, 1_000][rng.random_range(0..3)],
            attack_interval: [1_000, 10_000, 100_000][rng.random_range(0..3)],
            syn_flood: syn.then(|| id(rng)),
            dns_reflection: dns.then(|| id(rng)),
            colo: rng.random_range(0..COLOS.len()),
        }
    }

    /// Appends `lines` samples (NDJSON, one per line) to `out`; returns their truth.
    pub fn next_batch(&mut self, lines: usize, out: &mut Vec<u8>) -> Truth {
        self.next_batch_at(lines, time::OffsetDateTime::now_utc(), out)
    }

    /// [`Scenario::next_batch`] as if sent at `now` (a benchmark lays an
    /// hour of traffic out in time).
    pub fn next_batch_at(
        &mut self,
        lines: usize,
        now: time::OffsetDateTime,
        out: &mut Vec<u8>,
    ) -> Truth {
        let mut truth = Truth::default();
        for _ in 0..lines {
            let (p, v) = self.next_sample();
            // Logpush delivers samples some seconds after they were taken.
            let at = now - time::Duration::milliseconds(self.rng.random_range(1_000..30_000));
            write_sample(&p, &v, at, self.opts, out);
            out.push(b'\n');
            truth.count(&v, &p, at.unix_timestamp());
        }
        truth
    }

    fn next_sample(&mut self) -> (Packet, Verdict) {
        if let Some(s) = self.pending.pop() {
            return s;
        }
        if self.epoch.left == 0 {
            self.epoch = Scenario::new_epoch(&mut self.rng, self.epoch.number + 1);
        }
        self.epoch.left -= 1;
        let roll = self.rng.random_range(0..100);
        let attacking = self.epoch.syn_flood.is_some() || self.epoch.dns_reflection.is_some();
        if attacking && roll < 55 {
            let syn = match (&self.epoch.syn_flood, &self.epoch.dns_reflection) {
                (Some(_), Some(_)) => self.rng.random_bool(0.5),
                (Some(_), None) => true,
                _ => false,
            };
            return if syn {
                self.syn_flood()
            } else {
                self.dns_reflection()
            };
        }
        match roll % 20 {
            0 => self.out_of_state(),
            1 => self.firewall_drop(),
            _ => {
                let p = self.client_packet();
                let i = self.epoch.baseline_interval;
                let pass = |system: &'static str, ruleset, state| Verdict {
                    system,
                    outcome: "pass",
                    interval: i,
                    attack: None,
                    rule: None,
                    ruleset,
                    reason: "",
                    scope: "",
                    state,
                };
                let state = if p.proto == 6 {
                    ["NEW", "OPEN", "CLOSING"][usize::from(p.tcp_flags) % 3]
                } else {
                    ""
                };
                // Popped from the back: dosd first, then flowtrackd, then magic-firewall.
                self.pending
                    .push((p.clone(), pass("magic-firewall", MFW_RULESET, "")));
                self.pending
                    .push((p.clone(), pass("flowtrackd", "", state)));
                (p, pass("dosd", "", ""))
            }
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.rng.random_range(0..from.len())]
    }

    fn customer(&mut self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x100,
                0,
                0,
                0,
                0,
                self.rng.random_range(1..0x1000),
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, self.rng.random_range(1..255)))
        }
    }

    fn internet(&mut self, v6: bool) -> IpAddr {
        if v6 {
            let mut segs = [0u16; 8];
            segs[0] = 0x2001;
            segs[1] = 0xdb8;
            for s in segs.iter_mut().skip(2) {
                *s = self.rng.random();
            }
            IpAddr::V6(Ipv6Addr::from(segs))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.rng.random_range(1..224),
                self.rng.random(),
                self.rng.random(),
                self.rng.random_range(1..255),
            ))
        }
    }

    fn packet(&mut self, proto: u8, v6: bool, asn: (u32, &'static str, &'static str)) -> Packet {
        Packet {
            src: self.internet(v6),
            dst: self.customer(v6),
            proto,
            src_port: self.rng.random_range(1024..65535),
            dst_port: 443,
            ttl: [52, 56, 57, 60, 113, 117, 243, 244][self.rng.random_range(0..8)],
            len: 60,
            tcp_flags: 0,
            syn_options: false,
            seq: self.rng.random(),
            ack: 0,
            window: [502, 29_200, 64_240, 65_535][self.rng.random_range(0..4)],
            icmp_type: 0,
            ident: if v6 { 0 } else { self.rng.random() },
            flow_label: if v6 {
                self.rng.random_range(1..0xfffff)
            } else {
                0
            },
            checksum: [self.rng.random(), self.rng.random()],
            asn,
            colo: if self.rng.random_bool(0.7) {
                self.epoch.colo
            } else {
                self.rng.random_range(0..COLOS.len())
            },
        }
    }

    fn client_packet(&mut self) -> Packet {
        let v6 = self.rng.random_bool(0.15);
        let asn = self.pick(CLIENTS);
        let kind = self.rng.random_range(0..100);
        let proto = match kind {
            0..80 => 6,
            80..95 => 17,
            _ => {
                if v6 {
                    58
                } else {
                    1
                }
            }
        };
        let mut p = self.packet(proto, v6, asn);
        match proto {
            6 => {
                p.dst_port = [443, 443, 80, 22, 8443][self.rng.random_range(0..5)];
                p.tcp_flags = [2, 16, 24, 24, 17][self.rng.random_range(0..5)];
                p.syn_options = p.tcp_flags == 2;
                p.ack = if p.tcp_flags & 0x10 != 0 {
                    self.rng.random()
                } else {
                    0
                };
                p.len = match p.tcp_flags {
                    2 => 60,
                    24 => [576, 1400, 1500][self.rng.random_range(0..3)],
                    _ => 52,
                };
            }
            17 => {
                p.dst_port = if self.rng.random_bool(0.7) { 443 } else { 53 };
                p.len = self.rng.random_range(80..1350);
            }
            _ => {
                // Echo request in, or the reply to our own ping (type 0).
                p.icmp_type = if self.rng.random_bool(0.5) { 8 } else { 0 };
                p.dst_port = 0;
                p.src_port = 0;
                p.len = 84;
            }
        }
        if v6 {
            p.len = p.len.saturating_add(20);
        }
        p
    }

    fn syn_flood(&mut self) -> (Packet, Verdict) {
        let id = self.epoch.syn_flood.clone().unwrap_or_default();
        let asn = self.pick(CLIENTS);
        let mut p = self.packet(6, false, asn);
        p.dst_port = if self.rng.random_bool(0.5) { 80 } else { 443 };
        p.tcp_flags = 2;
        p.syn_options = true;
        let v = Verdict {
            system: "dosd",
            outcome: "drop",
            interval: self.epoch.attack_interval,
            attack: Some((id, "SYN Flood")),
            rule: Some(("a8c2b6e1f0d94c7e9b3a5d6f7e8c9b0a", "SYN flood protection")),
            ruleset: DOSD_RULESET,
            reason: "BLOCKED",
            scope: "global",
            state: "",
        };
        (p, v)
    }

    fn dns_reflection(&mut self) -> (Packet, Verdict) {
        let id = self.epoch.dns_reflection.clone().unwrap_or_default();
        let v6 = self.rng.random_bool(0.1);
        let asn = self.pick(RESOLVERS);
        let mut p = self.packet(17, v6, asn);
        p.src_port = 53;
        p.dst_port = self.rng.random_range(1024..65535);
        p.len = [512, 1232, 1472, 1500][self.rng.random_range(0..4)];
        let v = Verdict {
            system: "dosd",
            outcome: "drop",
            interval: self.epoch.attack_interval,
            attack: Some((id, "DNS Amplification")),
            rule: Some((
                "5d1fe2e9c8a34e0a9f0c1b2d3e4f5a6b",
                "DNS amplification attack",
            )),
            ruleset: DOSD_RULESET,
            reason: "BLOCKED",
            scope: "local",
            state: "",
        };
        (p, v)
    }

    fn out_of_state(&mut self) -> (Packet, Verdict) {
        let (v6, asn) = (self.rng.random_bool(0.1), self.pick(CLIENTS));
        let mut p = self.packet(6, v6, asn);
        p.tcp_flags = [16, 4, 17][self.rng.random_range(0..3)];
        p.ack = if p.tcp_flags & 0x10 != 0 {
            self.rng.random()
        } else {
            0
        };
        p.len = 52;
        let (reason, state) = [
            ("NOT_FOUND", "OPEN"),
            ("ALREADY_CLOSED", "CLOSED"),
            ("OUT_OF_SEQUENCE", "OPEN"),
        ][self.rng.random_range(0..3)];
        let v = Verdict {
            system: "flowtrackd",
            outcome: "drop",
            interval: self.epoch.baseline_interval,
            attack: None,
            rule: None,
            ruleset: "",
            reason,
            scope: "",
            state,
        };
        (p, v)
    }

    fn firewall_drop(&mut self) -> (Packet, Verdict) {
        let (v6, asn) = (self.rng.random_bool(0.1), self.pick(CLIENTS));
        let mut p = self.packet(6, v6, asn);
        let telnet = self.rng.random_bool(0.6);
        p.dst_port = if telnet { 23 } else { 445 };
        p.tcp_flags = 2;
        p.syn_options = true;
        let v = Verdict {
            system: "magic-firewall",
            outcome: "drop",
            interval: self.epoch.baseline_interval,
            attack: None,
            rule: Some(if telnet {
                ("0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "Block telnet")
            } else {
                ("1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60", "Block SMB")
            }),
            ruleset: MFW_RULESET,
            reason: "",
            scope: "",
            state: "",
        };
        (p, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::sample::Sample;

    fn generate(opts: ScenarioOptions, lines: usize) -> (Vec<u8>, Truth) {
        let mut s = Scenario::new(opts);
        let mut out = Vec::new();
        let mut truth = Truth::default();
        for _ in 0..lines / 1000 {
            truth.merge(&s.next_batch(1000, &mut out));
        }
        (out, truth)
    }

    #[test]
    fn the_scenario_has_every_kind_of_traffic_and_its_truth_adds_up() {
        let opts = ScenarioOptions {
            timestamps: Timestamps::Unixnano,
            legacy_names: true,
            seed: 7,
        };
        let (out, truth) = generate(opts, 40_000);
        assert_eq!(truth.records, 40_000);
        for k in [
            "dosd/drop",
            "dosd/pass",
            "flowtrackd/drop",
            "flowtrackd/pass",
            "magic-firewall/drop",
            "magic-firewall/pass",
        ] {
            assert!(
                truth.by_system_outcome.get(k).copied().unwrap_or(0) > 100,
                "{k}: {truth:?}"
            );
        }
        let vectors: std::collections::HashSet<&str> =
            truth.attacks.values().map(|a| a.vector.as_str()).collect();
        assert!(
            vectors.contains("SYN Flood") && vectors.contains("DNS Amplification"),
            "{vectors:?}"
        );
        // Recount from the lines themselves, as the enrichment reads them.
        let mut recount = Truth::default();
        let mut intervals = std::collections::HashSet::new();
        let mut v6 = 0;
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = std::str::from_utf8(line).unwrap();
            assert!(text.contains("\"IPTtl\":") && !text.contains("\"IPTTL\":"));
            assert!(
                text.contains("\"Datetime\":17") || text.contains("\"Datetime\":18"),
                "{text}"
            );
            let s = Sample::parse(line).unwrap();
            let d = s.derived("magic-firewall");
            let key = format!(
                "{}/{}",
                s.str("MitigationSystem").unwrap(),
                s.str("Outcome").unwrap()
            );
            *recount.by_system_outcome.entry(key).or_default() += 1;
            if d.counted && s.str("Outcome").as_deref() == Some("pass") {
                recount.true_passed_packets += d.est_packets;
                recount.true_passed_bytes += d.est_bytes;
            }
            intervals.insert(d.est_packets);
            v6 += usize::from(d.ip_version == Some(6));
        }
        assert_eq!(recount.by_system_outcome, truth.by_system_outcome);
        assert_eq!(recount.true_passed_packets, truth.true_passed_packets);
        assert_eq!(recount.true_passed_bytes, truth.true_passed_bytes);
        assert!(intervals.len() >= 3, "SampleInterval varies: {intervals:?}");
        assert!(v6 > 1000, "IPv6 present");
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let opts = ScenarioOptions {
            timestamps: Timestamps::Rfc3339,
            legacy_names: false,
            seed: 42,
        };
        let strip = |b: Vec<u8>| -> Vec<String> {
            String::from_utf8(b)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["Datetime"].take();
                    v.to_string()
                })
                .collect()
        };
        // Times differ from run to run, so which interval a sample falls in may too.
        let timeless = |mut t: Truth| {
            let samples: u64 = t.rollups.intervals.values().map(|i| i.samples).sum();
            assert_eq!(samples, t.records);
            t.rollups.intervals.clear();
            t
        };
        let (a, ta) = generate(opts, 3_000);
        let (b, tb) = generate(opts, 3_000);
        assert_eq!(timeless(ta), timeless(tb));
        assert_eq!(strip(a), strip(b));
        let (c, _) = generate(ScenarioOptions { seed: 43, ..opts }, 3_000);
        assert_ne!(strip(c), strip(generate(opts, 3_000).0));
    }
}
