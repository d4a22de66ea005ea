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

/// The rollup interval the truth is cut into (`[rollup] interval` default).
pub const ROLLUP_INTERVAL_S: u64 = 60;

/// One rollup interval's totals over all samples in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IntervalTruth {
    /// Samples.
    pub samples: u64,
    /// Σ SampleInterval.
    pub est_packets: u64,
    /// Σ IPTotalLength × SampleInterval.
    pub est_bytes: u64,
    /// Σ SampleInterval of counted samples (drops, and magic-firewall passes).
    pub counted_est_packets: u64,
}

/// What Sluice's rollups of the traffic must add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollupTruth {
    /// Interval width, seconds.
    pub interval_s: u64,
    /// Interval start (epoch seconds, `Datetime` floored) → totals.
    pub intervals: BTreeMap<u64, IntervalTruth>,
}

impl Default for RollupTruth {
    fn default() -> RollupTruth {
        RollupTruth {
            interval_s: ROLLUP_INTERVAL_S,
            intervals: BTreeMap::new(),
        }
    }
}

/// Ground truth, in the shape of `../shared/samples/*.truth.json`, plus
/// `rollups`.
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
    /// Totals per rollup interval.
    pub rollups: RollupTruth,
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
        for (start, t) in &o.rollups.intervals {
            let m = self.rollups.intervals.entry(*start).or_default();
            m.samples += t.samples;
            m.est_packets += t.est_packets;
            m.est_bytes += t.est_bytes;
            m.counted_est_packets += t.counted_est_packets;
        }
        self.records += o.records;
        self.true_passed_bytes += o.true_passed_bytes;
        self.true_passed_packets += o.true_passed_packets;
    }

    /// Counts one generated sample, taken at `at` (epoch seconds).
    pub(super) fn count(&mut self, s: &Verdict, p: &Packet, at: i64) {
        let key = format!("{}/{}", s.system, s.outcome);
        let bytes = u64::from(p.len) * s.interval;
        *self.by_system_outcome.entry(key.clone()).or_default() += 1;
        *self
            .est_packets_by_system_outcome
            .entry(key.clone())
            .or_default() += s.interval;
        *self.est_bytes_by_system_outcome.entry(key).or_default() += bytes;
        self.records += 1;
        let final_pass = s.outcome == "pass" && s.system == "magic-firewall";
        if final_pass {
            self.true_passed_packets += s.interval;
            self.true_passed_bytes += bytes;
        }
        let at = u64::try_from(at).unwrap_or(0);
        let i = self
            .rollups
            .intervals
            .entry(at - at % self.rollups.interval_s)
            .or_default();
        i.samples += 1;
        i.est_packets += s.interval;
        i.est_bytes += bytes;
        if final_pass || s.outcome == "drop" {
            i.counted_est_packets += s.interval;
        }
        if let Some((id, vector)) = &s.attack {
            let a = self.attacks.entry(id.clone()).or_default();
            a.est_packets += s.interval;
            a.samples += 1;
            a.vector = (*vector).to_string();
        }
    }
}
