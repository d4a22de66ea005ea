//! What an output takes of each record (`events`, `rollups`; public
//! config): all its events, only the samples that were dropped (lines that
//! are not samples always go), or none; and whether the record's rollups
//! go too, as metric events after its last event.

use crate::enrich::sample::Sample;
use crate::rollup::config::RollupSettings;
use crate::setting::Invalid;
use serde::Deserialize;
use std::sync::Arc;

/// `events` of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventsRoute {
    /// Every event (default).
    #[default]
    All,
    /// Samples whose `Outcome` is `drop`, and every event that is not a sample.
    Drops,
    /// No event (rollups only).
    None,
}

/// What an output takes of each record, resolved.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Which events.
    pub events: EventsRoute,
    /// The rollup settings, when the output takes rollups.
    pub rollups: Option<Arc<RollupSettings>>,
}

impl Routing {
    /// `events` and `rollups` of the output at `key`; an output that would
    /// send nothing is refused.
    pub fn resolve(
        key: &str,
        events: EventsRoute,
        rollups: bool,
        settings: &Arc<RollupSettings>,
    ) -> Result<Routing, Invalid> {
        if events == EventsRoute::None && !rollups {
            return Err(Invalid::new(
                format!("{key}.events"),
                "\"none\" without `rollups = true` would send nothing",
            ));
        }
        Ok(Routing {
            events,
            rollups: rollups.then(|| Arc::clone(settings)),
        })
    }

    /// Whether events must be parsed as samples (to filter or to roll up).
    pub fn reads_samples(&self) -> bool {
        self.events != EventsRoute::All || self.rollups.is_some()
    }

    /// Whether an event goes out; `sample` is `None` when it is not a
    /// network analytics sample.
    pub fn sends(&self, sample: Option<&Sample<'_>>) -> bool {
        match self.events {
            EventsRoute::All => true,
            EventsRoute::None => false,
            EventsRoute::Drops => {
                sample.is_none_or(|s| s.str("Outcome").as_deref() == Some("drop"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(events: EventsRoute, rollups: bool) -> Result<Routing, Invalid> {
        Routing::resolve(
            "outputs[0]",
            events,
            rollups,
            &Arc::new(RollupSettings::default()),
        )
    }

    #[test]
    fn each_route_sends_what_it_says() {
        let drop =
            Sample::parse(br#"{"MitigationSystem":"dosd","Datetime":1,"Outcome":"drop"}"#).unwrap();
        let pass =
            Sample::parse(br#"{"MitigationSystem":"dosd","Datetime":1,"Outcome":"pass"}"#).unwrap();
        let cases = [
            (EventsRoute::All, [true, true, true]),
            (EventsRoute::Drops, [true, false, true]),
            (EventsRoute::None, [false, false, false]),
        ];
        for (events, want) in cases {
            let r = routing(events, true).unwrap();
            let got = [r.sends(Some(&drop)), r.sends(Some(&pass)), r.sends(None)];
            assert_eq!(got, want, "{events:?}");
        }
        assert!(!routing(EventsRoute::All, false).unwrap().reads_samples());
        assert!(routing(EventsRoute::All, true).unwrap().reads_samples());
        assert!(routing(EventsRoute::Drops, false).unwrap().reads_samples());
    }

    #[test]
    fn an_output_that_sends_nothing_is_refused() {
        let e = routing(EventsRoute::None, false).unwrap_err();
        assert_eq!(e.key, "outputs[0].events");
        assert!(routing(EventsRoute::None, true).unwrap().rollups.is_some());
    }
}
