//! `tool_args` as they enter the vault: one reading shared by every entry point (request-clearance,
//! mint-token, consume-token), so the `tool_args_hash` always means exactly the arguments the policy saw.
//!
//! Two ways the hash and the policy could disagree are refused here:
//! - a **duplicate key** (`{"to": "a", "to": "b"}`): a plain `serde_json::Value` keeps the last one, while
//!   another parser on the tenant's side may keep the first. Duplicates are only visible while parsing, so
//!   [`strict`] (a `deserialize_with` for the field) refuses them, at any depth.
//! - an **integer outside ±(2^53−1)**: Rego sees the exact integer, but RFC 8785 (JCS) writes numbers as IEEE
//!   754 doubles, so `9007199254740993` would hash like `9007199254740992`. [`check`] refuses such integers
//!   (and non-finite numbers, which have no JSON form), wherever the arguments are used.
//!
//! Numbers that arrive as doubles (with a fraction or exponent, or too long for 64 bits) are what both Rego and
//! the hash see, and are kept.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{VaultError, VaultResult};

/// The largest integer every JSON reader represents exactly (I-JSON, RFC 7493 §2.2): 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `#[serde(deserialize_with = "crate::tool_args::strict")]`: a JSON value whose objects have no duplicate keys.
pub fn strict<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    StrictValue.deserialize(deserializer)
}

/// `tool_args` must be an object of numbers every party reads the same way.
pub fn check(tool_args: &Value) -> VaultResult<()> {
    if !tool_args.is_object() {
        return Err(VaultError::InvalidRequest(
            "tool_args must be a JSON object".into(),
        ));
    }
    check_numbers(tool_args, &mut String::from("tool_args"))
}

fn check_numbers(value: &Value, path: &mut String) -> VaultResult<()> {
    match value {
        Value::Number(n) => {
            check_number(n).map_err(|why| VaultError::InvalidRequest(format!("{path}: {why}")))
        }
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let outcome = check_numbers(item, path);
            path.truncate(len);
            outcome
        }),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let len = path.len();
            path.push_str(&format!(".{key}"));
            let outcome = check_numbers(item, path);
            path.truncate(len);
            outcome
        }),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

fn check_number(n: &Number) -> Result<(), String> {
    if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(out_of_range(u));
        }
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(out_of_range(i));
        }
    } else if !n.as_f64().is_some_and(f64::is_finite) {
        return Err("numbers must be finite".into());
    }
    Ok(())
}

fn out_of_range(n: impl fmt::Display) -> String {
    format!(
        "the integer {n} is outside ±{MAX_SAFE_INTEGER} (2^53−1) and would not hash exactly; send it as a string"
    )
}

/// Deserializes a `serde_json::Value`, refusing duplicate object keys at any depth.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictValue.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictValue)?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {key:?} in tool_args"
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    struct Body {
        #[serde(deserialize_with = "strict")]
        tool_args: Value,
    }

    fn parse(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<Body>(text).map(|b| b.tool_args)
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"tool_args": {"to": "a", "to": "b"}}"#,
            r#"{"tool_args": {"x": {"y": 1, "y": 1}}}"#,
            r#"{"tool_args": {"x": [{"k": 1}, {"k": 2, "k": 3}]}}"#,
            r#"{"tool_args": {"\u0061": 1, "a": 2}}"#,
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.classify(), serde_json::error::Category::Data, "{text}");
            assert!(e.to_string().contains("duplicate key"), "{e}");
        }
    }

    #[test]
    fn a_value_without_duplicates_reads_as_serde_json_reads_it() {
        let text = r#"{"tool_args": {"a": [1, -2, 2.5, 1e21, null, true, "s", {}], "b": {"c": {"d": []}}, "A": 1}}"#;
        let plain: serde_json::Value = serde_json::from_str(text).expect("valid");
        assert_eq!(parse(text).expect("valid"), plain["tool_args"]);
        assert_eq!(parse(r#"{"tool_args": null}"#).expect("valid"), Value::Null);
    }

    #[test]
    fn integers_beyond_2_53_are_refused() {
        assert!(check(&json!({"acct": 9007199254740991u64, "neg": -9007199254740991i64})).is_ok());
        for args in [
            json!({"acct": 9007199254740992u64}),
            json!({"acct": 9007199254740993u64}),
            json!({"acct": -9007199254740992i64}),
            json!({"nested": {"list": [1, u64::MAX]}}),
            json!({"min": i64::MIN}),
        ] {
            assert!(
                matches!(check(&args), Err(VaultError::InvalidRequest(_))),
                "{args}"
            );
        }
        let e = check(&json!({"a": {"b": [0, 9007199254740993u64]}})).expect_err("refused");
        assert!(e.to_string().contains("tool_args.a.b[1]"), "{e}");
    }

    #[test]
    fn doubles_are_what_rego_and_the_hash_both_see() {
        // Written with a fraction or exponent, or too long for 64 bits: parsed as a double by everyone.
        let args = parse(r#"{"tool_args": {"a": 9007199254740993.0, "b": 1e300, "c": 100000000000000000000001}}"#)
            .expect("valid");
        assert!(check(&args).is_ok());
        assert!(args["a"].is_f64() && args["c"].is_f64());
    }

    #[test]
    fn tool_args_must_be_an_object() {
        for args in [json!(null), json!([1]), json!("x"), json!(1)] {
            assert!(matches!(check(&args), Err(VaultError::InvalidRequest(_))));
        }
    }
}
