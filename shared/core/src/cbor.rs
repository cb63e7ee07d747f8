//! The deterministic CBOR of ledgix-python 0.4.0 (`_encode_deterministic_cbor`).
//!
//! It is not RFC 8949's preferred encoding, so no CBOR crate reproduces it: floats are always 8 bytes, JSON
//! integers inside event values become floats (`_normalize_json_numbers_for_cbor`), and map keys sort by
//! (length in code points, then text). Pinned by vectors the SDK itself produced (tests/vectors).

use serde_json::Value;

/// A CBOR data item as the SDK's encoder sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cbor {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Array(Vec<Cbor>),
    Map(Vec<(String, Cbor)>),
}

impl Cbor {
    /// A JSON value as the SDK hashes it after `_normalize_json_numbers_for_cbor`: every number is a float.
    pub fn from_json_normalized(value: &Value) -> Cbor {
        match value {
            Value::Null => Cbor::Null,
            Value::Bool(b) => Cbor::Bool(*b),
            Value::Number(n) => Cbor::Float(json_number_as_f64(n)),
            Value::String(s) => Cbor::Text(s.clone()),
            Value::Array(items) => {
                Cbor::Array(items.iter().map(Cbor::from_json_normalized).collect())
            }
            Value::Object(map) => Cbor::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Cbor::from_json_normalized(v)))
                    .collect(),
            ),
        }
    }

    pub fn text(value: impl Into<String>) -> Cbor {
        Cbor::Text(value.into())
    }

    /// Encode; fails only on NaN or infinity, which the SDK also refuses (JSON cannot carry them anyway).
    pub fn encode(&self) -> Result<Vec<u8>, CborError> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), CborError> {
        match self {
            Cbor::Null => out.push(0xf6),
            Cbor::Bool(true) => out.push(0xf5),
            Cbor::Bool(false) => out.push(0xf4),
            Cbor::Int(v) if *v >= 0 => header(out, 0, *v as u64),
            Cbor::Int(v) => header(out, 1, (-(v + 1)) as u64),
            Cbor::Float(f) => {
                if !f.is_finite() {
                    return Err(CborError::NonFiniteFloat);
                }
                out.push(0xfb);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Cbor::Text(s) => {
                header(out, 3, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Cbor::Array(items) => {
                header(out, 4, items.len() as u64);
                for item in items {
                    item.encode_into(out)?;
                }
            }
            Cbor::Map(entries) => {
                let mut sorted: Vec<&(String, Cbor)> = entries.iter().collect();
                // Python: sorted(keys, key=lambda k: (len(k), k)); len counts code points and str ordering
                // is code-point order, which equals UTF-8 byte order.
                sorted
                    .sort_by(|a, b| (a.0.chars().count(), &a.0).cmp(&(b.0.chars().count(), &b.0)));
                header(out, 5, sorted.len() as u64);
                for (key, value) in sorted {
                    header(out, 3, key.len() as u64);
                    out.extend_from_slice(key.as_bytes());
                    value.encode_into(out)?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CborError {
    #[error("NaN and infinity cannot be encoded")]
    NonFiniteFloat,
}

fn json_number_as_f64(n: &serde_json::Number) -> f64 {
    // Python's float(int) rounds to nearest, as do these conversions.
    if let Some(u) = n.as_u64() {
        u as f64
    } else if let Some(i) = n.as_i64() {
        i as f64
    } else {
        n.as_f64().unwrap_or(f64::NAN)
    }
}

fn header(out: &mut Vec<u8>, major: u8, value: u64) {
    let major = major << 5;
    if value <= 23 {
        out.push(major | value as u8);
    } else if value <= 0xff {
        out.push(major | 24);
        out.push(value as u8);
    } else if value <= 0xffff {
        out.push(major | 25);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= 0xffff_ffff {
        out.push(major | 26);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Build a CBOR map from `(key, value)` pairs; the encoder sorts the keys.
pub fn map<const N: usize>(entries: [(&str, Cbor); N]) -> Cbor {
    Cbor::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}
