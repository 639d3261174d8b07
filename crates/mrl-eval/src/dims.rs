//! The JSON form of per-dim results: `{"384": {...}, "256": {...}}` in request order.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Serialises `(dim, scores)` entries as a map keyed by the dim (as a string), in order.
pub(crate) fn serialize<S: Serializer, T: Serialize>(
    dims: &[(usize, T)],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(dims.len()))?;
    for (dim, scores) in dims {
        map.serialize_entry(&dim.to_string(), scores)?;
    }
    map.end()
}

/// Reads what [`serialize`] wrote, keeping the entries' order.
pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<(usize, T)>, D::Error> {
    // Request order is kept: serde_json keeps the keys' order only with `preserve_order`, so
    // the map is read as a list of entries.
    struct Entries<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
        type Value = Vec<(usize, T)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map from dim to scores")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((dim, scores)) = map.next_entry::<String, T>()? {
                let dim = dim
                    .parse()
                    .map_err(|_| serde::de::Error::custom(format!("`{dim}` is not a dim")))?;
                out.push((dim, scores));
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Entries(std::marker::PhantomData))
}
