//! Deserializers that take what Okta sends without failing the whole event over one odd field.
//!
//! Okta documents `debugContext.debugData` as unstable and many fields as nullable; fixtures and
//! exports add their own drift. An MFA change with one malformed side field must still reach the
//! user, so side fields fall back to "absent" instead of rejecting the event.
//!
//! None of them builds a `serde_json::Value`: a side object is taken as its raw JSON text (a
//! borrowed slice of the event) and parsed into its type from there, and a scalar is read by a
//! visitor. Going through `Value` allocated a tree per field and parsed nested objects once per
//! level; it was a third of the cost of reading an event (scripts/bench/end-to-end.sh). Events are
//! parsed with `serde_json::from_str`, whose deserializer lends the raw text.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

thread_local! {
    /// Set while [`parse`] makes its first, direct attempt.
    static DIRECT: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`DIRECT`] however the attempt ends.
struct Direct;

impl Direct {
    fn begin() -> Direct {
        DIRECT.with(|d| d.set(true));
        Direct
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        DIRECT.with(|d| d.set(false));
    }
}

fn direct() -> bool {
    DIRECT.with(Cell::get)
}

/// Parses `text` as `T`, whose side fields are read with [`object`] and [`list`]: first in one
/// pass, each side object parsed where it stands, which fails the whole attempt at the first
/// misshapen one; only then again with each side object taken as its text and parsed from there
/// (absent if misshapen). An event that the first attempt reads is read exactly as the second
/// would read it (the same parser on the same text, no side object refused), so the second runs
/// only for events with a misshapen side field. Taking each side object's text first scanned
/// every nested byte once more per level: a tenth of the instructions of the same-filter run of
/// scripts/bench/end-to-end.sh (callgrind).
pub fn parse<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    let first = {
        let _direct = Direct::begin();
        serde_json::from_str(text)
    };
    first.or_else(|_| serde_json::from_str(text))
}

/// A string, number or boolean as a string; anything else (null, object, array) as absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(Scalar)
}

/// `T` when the value has `T`'s shape; absent otherwise.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    if direct() {
        // `null` is absent; anything but `T` fails this attempt (see [`parse`]).
        return Option::<T>::deserialize(d);
    }
    let raw = <&RawValue>::deserialize(d)?;
    // Okta's usual "absent" is an explicit null: known without asking `T`, whose refusal would
    // cost an error message formatted and thrown away.
    if is_null(raw) {
        return Ok(None);
    }
    Ok(serde_json::from_str(raw.get()).ok())
}

/// The elements that have `T`'s shape; a non-array as empty.
pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    if direct() {
        // `null` is empty; anything but an array of `T` fails this attempt (see [`parse`]).
        return Option::<Vec<T>>::deserialize(d).map(Option::unwrap_or_default);
    }
    let raw = <&RawValue>::deserialize(d)?;
    if is_null(raw) {
        return Ok(Vec::new());
    }
    Ok(match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
        Ok(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_str(v.get()).ok())
            .collect(),
        Err(_) => Vec::new(),
    })
}

/// A `RawValue` holds its value's text without surrounding whitespace.
fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Reads a scalar as text, as `serde_json::Value`'s `Display` would write it.
struct Scalar;

impl<'de> Visitor<'de> for Scalar {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // serde_json's own float formatting (`1e+21`, not `1000000000000000000000`).
        Ok(serde_json::Number::from_f64(v).map(|n| n.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "string")]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(default, deserialize_with = "string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "object")]
        o: Option<Inner>,
        #[serde(default, deserialize_with = "list")]
        l: Vec<Inner>,
    }

    fn outer(json: &str) -> Outer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scalars_read_as_value_display_writes_them() {
        for (json, want) in [
            (r#""a\"b""#, Some("a\"b")),
            ("12", Some("12")),
            ("-3", Some("-3")),
            ("1.5", Some("1.5")),
            ("1e21", Some("1e+21")),
            ("true", Some("true")),
            ("null", None),
            ("[1, {\"a\": 2}]", None),
            ("{\"a\": [1, 2]}", None),
        ] {
            let got = outer(&format!("{{\"s\": {json}}}")).s;
            let from_value = match serde_json::from_str::<serde_json::Value>(json).unwrap() {
                serde_json::Value::String(s) => Some(s),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                    Some(v.to_string())
                }
                _ => None,
            };
            assert_eq!(got.as_deref(), want, "{json}");
            assert_eq!(got, from_value, "{json}");
        }
    }

    #[test]
    fn a_misshapen_side_field_is_absent_and_the_rest_is_read() {
        let o = outer(
            r#"{"o": "not an object", "l": [{"name": "a"}, 7, {"name": ["x"]}, "s"], "s": "kept"}"#,
        );
        assert_eq!(o.o, None);
        assert_eq!(
            o.l,
            vec![
                Inner {
                    name: Some("a".into())
                },
                Inner { name: None }
            ]
        );
        assert_eq!(o.s.as_deref(), Some("kept"));
        let o = outer(r#"{"o": {"name": 5, "extra": {"deep": [1]}}, "l": {"name": "a"}}"#);
        assert_eq!(
            o.o,
            Some(Inner {
                name: Some("5".into())
            })
        );
        assert!(o.l.is_empty());
    }

    #[test]
    fn null_side_fields_are_absent() {
        let o = outer(r#"{"o": null, "l" :  null , "s": null}"#);
        assert_eq!(o, outer("{}"));
        assert_eq!(o.o, None);
        assert!(o.l.is_empty());
        // A null element of a list is not an element of `T`'s shape.
        assert_eq!(outer(r#"{"l": [null, {"name": "a"}]}"#).l.len(), 1);
    }

    #[test]
    fn broken_json_is_still_an_error() {
        assert!(serde_json::from_str::<Outer>(r#"{"o": {"name": "a"}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"s": [1, }"#).is_err());
    }
}
