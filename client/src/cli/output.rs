use std::io::Write;

use serde::Serialize;

use crate::transport::TxResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Prints a value as pretty JSON, or as indented `key: value` text.
pub fn print<T: Serialize>(
    out: &mut dyn Write,
    format: OutputFormat,
    value: &T,
) -> std::io::Result<()> {
    let mut json = serde_json::to_value(value).map_err(std::io::Error::other)?;
    snake_case_pagination(&mut json);
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?
        ),
        OutputFormat::Text => write_text(out, &json, 0),
    }
}

/// cosmos-sdk-proto serialises `PageResponse` in camelCase (`nextKey`); every other field
/// here is snake_case, as the Cosmos SDK CLI prints `next_key`.
fn snake_case_pagination(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(page)) = map.get_mut("pagination") {
                let renamed = std::mem::take(page)
                    .into_iter()
                    .map(|(k, v)| (snake_case(&k), v))
                    .collect();
                *page = renamed;
            }
            map.values_mut().for_each(snake_case_pagination);
        }
        Value::Array(items) => items.iter_mut().for_each(snake_case_pagination),
        _ => {}
    }
}

pub(crate) fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn write_text(
    out: &mut dyn Write,
    value: &serde_json::Value,
    indent: usize,
) -> std::io::Result<()> {
    use serde_json::Value;
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) | Value::Array(_) if !is_empty(v) => {
                        writeln!(out, "{pad}{k}:")?;
                        write_text(out, v, indent + 1)?;
                    }
                    _ => writeln!(out, "{pad}{k}: {}", scalar(v))?,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => {
                        writeln!(out, "{pad}-")?;
                        write_text(out, item, indent + 1)?;
                    }
                    _ => writeln!(out, "{pad}- {}", scalar(item))?,
                }
            }
        }
        other => writeln!(out, "{pad}{}", scalar(other))?,
    }
    Ok(())
}

fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

/// A tx result as the Cosmos CLI shows it.
pub fn print_tx(
    out: &mut dyn Write,
    format: OutputFormat,
    result: &TxResult,
) -> std::io::Result<()> {
    print(out, format, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_keys_are_printed_in_snake_case() {
        let page = cosmos_sdk_proto::cosmos::base::query::v1beta1::PageResponse {
            next_key: vec![1, 2],
            total: 7,
        };
        let raw = serde_json::to_value(&page).unwrap();
        assert!(
            raw.get("nextKey").is_some(),
            "the library's own spelling: {raw}"
        );
        let value = serde_json::json!({"records": [], "pagination": page});
        let mut out = Vec::new();
        print(&mut out, OutputFormat::Json, &value).unwrap();
        let printed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&String> = printed["pagination"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["next_key", "total"], "{printed}");
        assert_eq!(snake_case("nextKey"), "next_key");
        assert_eq!(snake_case("total"), "total");
    }
}
