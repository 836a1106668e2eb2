//! Request bodies as Consul decodes them. Go's `encoding/json` matches a
//! key to a field whatever its case, and Consul's `lib.TranslateKeys` takes
//! snake_case aliases (`deregister_critical_service_after`, `service_id`,
//! `tagged_addresses`, …) for the same fields. Clients rely on both:
//! py-consul sends `{"name": "web", "checks": [{"ttl": "10s"}]}`.
//!
//! So before serde reads a body, the keys of each object that is a struct
//! (never of a map such as `Meta` or `Header`, whose keys are data) are
//! folded onto the struct's field names: a key matches a field when they
//! are equal ignoring case and underscores. The field names come from the
//! struct's own `Deserialize` (see [`field_names`]), so the two cannot drift.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::{Map, Value};

/// Renames each key of `object` that names one of `fields` (ignoring case
/// and underscores) to that field's spelling. Later keys win over earlier
/// ones naming the same field, as in Go's decoder.
pub fn fold_keys(object: &mut Map<String, Value>, fields: &[&str]) {
    let taken = std::mem::take(object);
    for (key, value) in taken {
        let name = fields
            .iter()
            .find(|f| same_name(&key, f))
            .map_or(key, |f| (*f).to_owned());
        object.insert(name, value);
    }
}

/// The object at `value`, folded onto `T`'s fields; a no-op on anything else.
pub fn fold_as<'de, T: Deserialize<'de>>(value: &mut Value) -> Option<&mut Map<String, Value>> {
    let object = value.as_object_mut()?;
    fold_keys(object, field_names::<T>());
    Some(object)
}

/// Whether `key` names `field`, ignoring ASCII case and underscores.
fn same_name(key: &str, field: &str) -> bool {
    let mut key = key.bytes().filter(|b| *b != b'_').map(|b| b.to_ascii_lowercase());
    let mut field = field.bytes().filter(|b| *b != b'_').map(|b| b.to_ascii_lowercase());
    loop {
        match (key.next(), field.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// The field names (as renamed) of a struct that derives `Deserialize`:
/// serde hands them to `deserialize_struct`, which this deserializer
/// records and then gives up.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Names {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(&mut names);
    names.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct Check {
        #[serde(rename = "CheckID")]
        check_id: Option<String>,
        #[serde(rename = "TTL")]
        ttl: Option<String>,
        deregister_critical_service_after: Option<String>,
    }

    #[test]
    fn field_names_are_read_from_the_struct_as_renamed() {
        assert_eq!(
            field_names::<Check>(),
            &["CheckID", "TTL", "DeregisterCriticalServiceAfter"]
        );
        assert!(field_names::<String>().is_empty(), "not a struct: no fields");
    }

    #[test]
    fn keys_fold_onto_fields_whatever_their_case_or_underscores() {
        let mut body = json!({
            "ttl": "10s", "check_id": "c1", "deregister_critical_service_after": "1m",
            "unknown_key": 1,
        });
        let folded = fold_as::<Check>(&mut body).unwrap();
        assert_eq!(folded["TTL"], "10s");
        assert_eq!(folded["CheckID"], "c1");
        assert_eq!(folded["DeregisterCriticalServiceAfter"], "1m");
        assert_eq!(folded["unknown_key"], 1, "keys that name no field stay as they are");
    }

    #[test]
    fn a_later_key_naming_the_same_field_wins() {
        let mut body = json!({"TTL": "1s", "ttl": "2s"});
        // serde_json's map keeps keys sorted: "TTL" comes before "ttl".
        assert_eq!(fold_as::<Check>(&mut body).unwrap()["TTL"], "2s");
    }
}
