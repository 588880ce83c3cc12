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
    let json = serde_json::to_value(value).map_err(std::io::Error::other)?;
    match format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?
        ),
        OutputFormat::Text => write_text(out, &json, 0),
    }
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
