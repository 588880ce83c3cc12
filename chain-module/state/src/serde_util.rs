//! JSON conventions of Cosmos genesis files.

use std::fmt;

/// A genesis (or config) value that is wrong, with the JSON path of the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid genesis field {field}: {reason}")]
pub struct GenesisError {
    pub field: String,
    pub reason: String,
}

impl GenesisError {
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// u64 written as a JSON string (as Cosmos does), accepted as a string or a number.
pub mod u64_string {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum StrOrNum {
            Str(String),
            Num(u64),
        }
        match StrOrNum::deserialize(d)? {
            StrOrNum::Num(n) => Ok(n),
            StrOrNum::Str(s) => s
                .parse()
                .map_err(|_| de::Error::custom(format!("{s:?} is not an unsigned integer"))),
        }
    }
}
