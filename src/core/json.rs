//! Small readers for request bodies that turn every shape problem into a `validation_error`
//! naming the field, so handlers never see an unchecked value.

use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode};

/// Largest accepted request body (contract: over 16 KiB is `payload_too_large`).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `application/json`, with or without parameters such as `charset`.
pub fn is_json_media_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// JSON bytes as a value. serde_json's string reader after a UTF-8 check: its slice reader
/// would compile the whole parser a second time into the wasm (about 10 KB). The same bytes
/// are accepted: JSON outside strings is ASCII, and the slice reader refuses invalid UTF-8
/// inside the strings of a value too.
pub fn parse_bytes(bytes: &[u8]) -> Option<Value> {
    serde_json::from_str(std::str::from_utf8(bytes).ok()?).ok()
}

/// Parses a body that must be a JSON object; 415 for another media type.
pub fn parse_object_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    if !is_json_media_type(content_type) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
    }
    let value = parse_bytes(body).ok_or_else(|| ApiError::invalid("body", "is not valid JSON"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

/// For routes that take no body: nothing at all, or `{}` sent as `application/json`.
pub fn expect_no_body(content_type: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let map = parse_object_body(content_type, body)?;
    reject_unknown(&map, &[], "")
}

pub fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::invalid(field, "must be an object"))
}

/// Unknown keys are rejected so that typos and mixed body forms never pass silently.
pub fn reject_unknown(
    map: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), ApiError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(ApiError::invalid(
            &format!("{prefix}{key}"),
            "is not a known field",
        )),
        None => Ok(()),
    }
}

/// A field's value, with `null` read as absent.
pub fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// An optional `true`/`false` field (`null`: absent).
pub fn optional_bool(map: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    present(map, key)
        .map(|value| {
            value
                .as_bool()
                .ok_or_else(|| ApiError::invalid(key, "must be true or false"))
        })
        .transpose()
}

/// A JSON number without a fraction, as an integer: `5` and `5.0` alike (JSON Schema's
/// `integer` accepts both).
pub fn whole_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let float = value.as_f64()?;
        let in_range = float.is_finite() && float.fract() == 0.0 && float.abs() < 9.0e15;
        in_range.then_some(float as i64)
    })
}

pub fn required_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match present(map, key) {
        None => Err(ApiError::invalid(key, "is required")),
        Some(value) => value
            .as_str()
            .ok_or_else(|| ApiError::invalid(key, "must be a string")),
    }
}

// ---------------------------------------------------------------------------------------
// joingate's own records (KV, SQLite, the objects' messages), read back by hand

/// `Deserialize` for a record joingate wrote itself: the JSON value (serde_json's one value
/// reader, in the wasm anyway), then `read` field by field. `read` is a plain function, not
/// a closure written in `deserialize`, which would be compiled again for every
/// deserializer (serde's own for a missing field among them). A derived `Deserialize` compiles
/// a visitor, a field matcher and a sequence form per type into the wasm; this is a few
/// lookups. `read` accepts what the derive accepted (the same field names, types and
/// defaults, unknown fields ignored) except the forms joingate never writes: a struct as a
/// JSON array, a repeated key (the derive refuses it; here the last one counts), a unit
/// variant as `{"name": null}`.
pub fn deserialize_with<'de, D, T>(d: D, read: fn(Value) -> Option<T>) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    read(value_of(d)?).ok_or_else(unexpected_shape)
}

/// The one copy (per deserializer) of reading a value, shared by every record type.
#[inline(never)]
fn value_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    serde::Deserialize::deserialize(d)
}

#[cold]
#[inline(never)]
fn unexpected_shape<E: serde::de::Error>() -> E {
    E::custom("a record of an unexpected shape")
}

/// A record's fields, each taken once. The readers answer `None` for a value of the wrong
/// type (the record is refused, as the derive refused it); the `opt_` ones read a missing
/// field or `null` as `Some(None)`, as the derive read an `Option` field.
pub struct Fields(Map<String, Value>);

impl Fields {
    /// The fields of an object; `None` for any other value.
    pub fn of(value: Value) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Self(map)),
            _ => None,
        }
    }

    /// A field's value, `null` read as absent (left as `null`: no map removal code).
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.0
            .get_mut(key)
            .map(Value::take)
            .filter(|value| !value.is_null())
    }

    /// An optional field read by `read` (`None` from it refuses the record).
    pub fn opt<T>(&mut self, key: &str, read: fn(Value) -> Option<T>) -> Option<Option<T>> {
        match self.take(key) {
            None => Some(None),
            Some(value) => read(value).map(Some),
        }
    }

    /// A field that is not an `Option` but has a default: missing is `default`, `null` is
    /// of the wrong type.
    pub fn or<T>(&mut self, key: &str, default: T, read: fn(Value) -> Option<T>) -> Option<T> {
        match self.0.get_mut(key) {
            None => Some(default),
            Some(value) => read(value.take()),
        }
    }

    /// A field that must be there, read by `read`.
    pub fn with<T>(&mut self, key: &str, read: fn(Value) -> Option<T>) -> Option<T> {
        read(self.take(key)?)
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        string(self.take(key)?)
    }

    pub fn opt_string(&mut self, key: &str) -> Option<Option<String>> {
        self.opt(key, string)
    }

    pub fn i64(&mut self, key: &str) -> Option<i64> {
        self.take(key)?.as_i64()
    }

    pub fn opt_i64(&mut self, key: &str) -> Option<Option<i64>> {
        self.opt(key, |value| value.as_i64())
    }

    pub fn opt_u64(&mut self, key: &str) -> Option<Option<u64>> {
        self.opt(key, |value| value.as_u64())
    }

    pub fn opt_u32(&mut self, key: &str) -> Option<Option<u32>> {
        self.opt(key, u32_of)
    }

    pub fn opt_bool(&mut self, key: &str) -> Option<Option<bool>> {
        self.opt(key, |value| value.as_bool())
    }

    pub fn opt_strings(&mut self, key: &str) -> Option<Option<Vec<String>>> {
        self.opt(key, strings)
    }
}

pub fn string(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// A whole number in `u32`'s range, written without a fraction or exponent (serde's `u32`).
pub fn u32_of(value: Value) -> Option<u32> {
    u32::try_from(value.as_u64()?).ok()
}

/// A list of strings.
pub fn strings(value: Value) -> Option<Vec<String>> {
    list(value, string)
}

/// A list, each item read by `read` (a loop: a `collect` into an `Option` compiles its
/// adapters once per item type).
pub fn list<T>(value: Value, read: fn(Value) -> Option<T>) -> Option<Vec<T>> {
    let Value::Array(items) = value else {
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(read(item)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(error: Option<ApiError>) -> Option<Value> {
        error.and_then(|e| e.details.get("field").cloned())
    }

    #[test]
    fn whole_numbers() {
        for (text, expected) in [
            ("5", Some(5)),
            ("5.0", Some(5)),
            ("1e2", Some(100)),
            ("-3", Some(-3)),
        ] {
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(whole_number(&value), expected, "{text}");
        }
        for text in ["5.5", "\"5\"", "null", "1e300", "true"] {
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            assert_eq!(whole_number(&value), None, "{text}");
        }
    }

    #[test]
    fn bytes_parse_as_the_slice_reader_would() {
        let inputs: [&[u8]; 14] = [
            br#"{"a":[1,-2,3.5,"x",null,true]}"#,
            b" [] ",
            "{\"caf\u{e9}\":\"\u{1f600}\"}".as_bytes(),
            br#""\ud83d\ude00""#,
            br#""\ud83d""#,
            b"\"\xff\"",
            b"{\"\xc3\":1}",
            b"{} \xff",
            b"\xef\xbb\xbf{}",
            b"{\"a\":1",
            b"",
            b"nul",
            b"1e400",
            b"{\"a\":\"\xed\xa0\x80\"}",
        ];
        for bytes in inputs {
            assert_eq!(
                parse_bytes(bytes),
                serde_json::from_slice::<Value>(bytes).ok(),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type(Some("application/json")));
        assert!(is_json_media_type(Some("Application/JSON; charset=utf-8")));
        for other in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/jsonx"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert!(!is_json_media_type(other), "{other:?}");
        }
    }

    #[test]
    fn object_bodies() {
        let json = Some("application/json");
        assert!(parse_object_body(json, br#"{"a":1}"#).is_ok());
        assert_eq!(
            parse_object_body(Some("text/plain"), b"{}")
                .err()
                .map(|e| e.code),
            Some(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            field(parse_object_body(json, b"{nope").err()),
            Some(Value::from("body"))
        );
        assert_eq!(
            field(parse_object_body(json, b"[]").err()),
            Some(Value::from("body"))
        );
        assert_eq!(
            field(parse_object_body(json, b"").err()),
            Some(Value::from("body"))
        );
    }

    #[test]
    fn bodiless_routes_accept_nothing_or_an_empty_object() {
        assert!(expect_no_body(None, b"").is_ok());
        assert!(expect_no_body(Some("text/plain"), b"").is_ok());
        assert!(expect_no_body(Some("application/json"), b" {} ").is_ok());
        assert_eq!(
            expect_no_body(None, b"{}").err().map(|e| e.code),
            Some(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            expect_no_body(Some("text/plain"), b"x")
                .err()
                .map(|e| e.code),
            Some(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            field(expect_no_body(Some("application/json"), br#"{"a":1}"#).err()),
            Some(Value::from("a"))
        );
    }
}
