//! JSON values to and from the AWS SDK's `Document`, the type of a Converse tool's input schema and of the
//! input the model calls it with. Numbers keep their kind (unsigned, negative, float) both ways, so a verdict
//! read back is the JSON the model wrote. Nesting is capped: neither a schema nor a verdict is deep, and an
//! answer that is must not exhaust the stack.

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// Deeper than any verdict schema or verdict.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConversionError(String);

pub(crate) fn to_document(value: &Value) -> Result<Document, ConversionError> {
    to_document_at(value, 0)
}

pub(crate) fn to_json(document: &Document) -> Result<Value, ConversionError> {
    to_json_at(document, 0)
}

fn too_deep() -> ConversionError {
    ConversionError(format!("nested deeper than {MAX_DEPTH} levels"))
}

fn to_document_at(value: &Value, depth: usize) -> Result<Document, ConversionError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::String(s) => Document::String(s.clone()),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            // Not a u64, so negative: what `NegInt` holds.
            Number::NegInt(i)
        } else if let Some(f) = n.as_f64() {
            Number::Float(f)
        } else {
            return Err(ConversionError(format!("{n} is not a 64-bit number")));
        }),
        Value::Array(items) => Document::Array(
            items
                .iter()
                .map(|item| to_document_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), to_document_at(v, depth + 1)?)))
                .collect::<Result<HashMap<_, _>, ConversionError>>()?,
        ),
    })
}

fn to_json_at(document: &Document, depth: usize) -> Result<Value, ConversionError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::String(s) => Value::String(s.clone()),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| ConversionError(format!("{f} is not a JSON number")))?
        }
        Document::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| to_json_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Document::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), to_json_at(v, depth + 1)?)))
                .collect::<Result<serde_json::Map<_, _>, ConversionError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_exactly() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["decision", "confidence", "reason", "rules_applied"],
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny", "review"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1.0},
                "reason": {"type": "string"},
                "rules_applied": {"type": "array", "items": {"type": "string"}},
            },
        });
        let verdict = json!({"decision": "approve", "confidence": 0.93, "reason": "Refund \"ok\" ✓", "rules_applied": ["R1", "C2"]});
        let odd = json!([
            null,
            true,
            false,
            "",
            [],
            {},
            0,
            -1,
            u64::MAX,
            i64::MIN,
            1.5,
            -0.25,
            1e300,
            1.0
        ]);
        for value in [schema, verdict, odd] {
            let document = to_document(&value).unwrap();
            assert_eq!(to_json(&document).unwrap(), value);
        }
    }

    #[test]
    fn numbers_keep_their_kind() {
        let number = |v: Value| match to_document(&v).unwrap() {
            Document::Number(n) => n,
            other => panic!("{other:?}"),
        };
        assert_eq!(number(json!(7)), Number::PosInt(7));
        assert_eq!(number(json!(0)), Number::PosInt(0));
        assert_eq!(number(json!(-7)), Number::NegInt(-7));
        assert_eq!(number(json!(0.5)), Number::Float(0.5));
        assert_eq!(number(json!(1.0)), Number::Float(1.0));
        assert_eq!(
            to_json(&Document::Number(Number::PosInt(u64::MAX))).unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(
            to_json(&Document::Number(Number::NegInt(-3))).unwrap(),
            json!(-3)
        );
        assert_eq!(
            to_json(&Document::Number(Number::Float(0.93))).unwrap(),
            json!(0.93)
        );
        assert!(to_json(&Document::Number(Number::Float(f64::NAN))).is_err());
        assert!(to_json(&Document::Number(Number::Float(f64::INFINITY))).is_err());
    }

    #[test]
    fn documents_map_onto_json_shapes() {
        let document = Document::Object(HashMap::from([
            ("decision".to_string(), Document::String("deny".into())),
            (
                "rules_applied".to_string(),
                Document::Array(vec![Document::String("R2".into())]),
            ),
            (
                "confidence".to_string(),
                Document::Number(Number::Float(0.5)),
            ),
            ("extra".to_string(), Document::Null),
            ("flag".to_string(), Document::Bool(true)),
        ]));
        assert_eq!(
            to_json(&document).unwrap(),
            json!({"decision": "deny", "rules_applied": ["R2"], "confidence": 0.5, "extra": null, "flag": true})
        );
    }

    #[test]
    fn runaway_nesting_is_an_error_not_a_crash() {
        let mut value = json!("leaf");
        for _ in 0..(MAX_DEPTH + 2) {
            value = json!([value]);
        }
        assert!(to_document(&value).is_err());
        let mut document = Document::Null;
        for _ in 0..(MAX_DEPTH + 2) {
            document = Document::Array(vec![document]);
        }
        assert!(to_json(&document).is_err());
    }
}
