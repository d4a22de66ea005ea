//! The ground truth of generated traffic, in the shape of
//! `../shared/samples/*.truth.json`.

use super::packet::{Packet, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;

/// One attack's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttackTruth {
    /// Sum of SampleInterval.
    pub est_packets: u64,
    /// Number of samples.
    pub samples: u64,
    /// AttackVector.
    pub vector: String,
}

/// Ground truth, in the shape of `../shared/samples/*.truth.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Truth {
    /// Per AttackID.
    pub attacks: BTreeMap<String, AttackTruth>,
    /// Samples per `MitigationSystem/Outcome`.
    pub by_system_outcome: BTreeMap<String, u64>,
    /// Σ IPTotalLength × SampleInterval per `MitigationSystem/Outcome`.
    pub est_bytes_by_system_outcome: BTreeMap<String, u64>,
    /// Σ SampleInterval per `MitigationSystem/Outcome`.
    pub est_packets_by_system_outcome: BTreeMap<String, u64>,
    /// Number of lines.
    pub records: u64,
    /// Bytes that really passed: magic-firewall passes only.
    pub true_passed_bytes: u64,
    /// Packets that really passed: magic-firewall passes only.
    pub true_passed_packets: u64,
}

impl Truth {
    /// Adds another batch's truth.
    pub fn merge(&mut self, o: &Truth) {
        for (id, a) in &o.attacks {
            let t = self.attacks.entry(id.clone()).or_default();
            t.est_packets += a.est_packets;
            t.samples += a.samples;
            t.vector.clone_from(&a.vector);
        }
        let add = |m: &mut BTreeMap<String, u64>, o: &BTreeMap<String, u64>| {
            for (k, v) in o {
                *m.entry(k.clone()).or_default() += v;
            }
        };
        add(&mut self.by_system_outcome, &o.by_system_outcome);
        add(
            &mut self.est_bytes_by_system_outcome,
            &o.est_bytes_by_system_outcome,
        );
        add(
            &mut self.est_packets_by_system_outcome,
            &o.est_packets_by_system_outcome,
        );
        self.records += o.records;
        self.true_passed_bytes += o.true_passed_bytes;
        self.true_passed_packets += o.true_passed_packets;
    }

    /// Counts one generated sample.
    pub(super) fn count(&mut self, s: &Verdict, p: &Packet) {
        let key = format!("{}/{}", s.system, s.outcome);
        let bytes = u64::from(p.len) * s.interval;
        *self.by_system_outcome.entry(key.clone()).or_default() += 1;
        *self
            .est_packets_by_system_outcome
            .entry(key.clone())
            .or_default() += s.interval;
        *self.est_bytes_by_system_outcome.entry(key).or_default() += bytes;
        self.records += 1;
        if s.outcome == "pass" && s.system == "magic-firewall" {
            self.true_passed_packets += s.interval;
            self.true_passed_bytes += bytes;
        }
        if let Some((id, vector)) = &s.attack {
            let a = self.attacks.entry(id.clone()).or_default();
            a.est_packets += s.interval;
            a.samples += 1;
            a.vector = (*vector).to_string();
        }
    }
}
