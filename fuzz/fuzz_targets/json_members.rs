//! The enrichment's own JSON object scanner against serde_json: for any
//! text, both accept it or both refuse it, and when accepted they find the
//! same names and the same raw value text, member by member.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

struct Pairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v.get().to_string()));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = sluice::enrich::object::members(text, 0).map(|m| {
        m.into_iter()
            .map(|m| (m.name.into_owned(), m.value.to_string()))
            .collect::<Vec<_>>()
    });
    let theirs = serde_json::from_str::<Pairs>(text).ok().map(|p| p.0);
    assert_eq!(ours, theirs);
});
