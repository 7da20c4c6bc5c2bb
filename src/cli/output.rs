//! What commands print: aligned tables for people, JSON for scripts
//! (`--output json`). Results go to standard output, messages about them to
//! standard error, so `exsec tokens mint acme > token` keeps only the token.
//! Nothing here ever receives a secret value.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use super::error::CliError;
use crate::api::dto::WarningDto;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables and sentences.
    Human,
    /// One JSON document on standard output.
    Json,
}

/// The chosen output format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: Format,
}

impl Output {
    /// Output in `format`.
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    /// Whether scripts asked for JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a JSON document (pretty, one trailing newline), members in
    /// sorted order whatever the type's field order.
    pub fn value(&self, value: &impl Serialize) -> Result<(), CliError> {
        let sorted = serde_json::to_value(value).unwrap_or(Value::Null);
        let text = serde_json::to_string_pretty(&sorted).unwrap_or_else(|_| "null".to_owned());
        line(&text)
    }
}

/// Writes one line to standard output.
pub fn line(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(CliError::Stdout)
}

/// Writes a note for the person at the terminal (standard error).
pub fn note(text: &str) {
    eprintln!("{text}");
}

/// An aligned table: a header row, then rows; columns padded to the
/// widest cell, the last column unpadded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let render = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                let pad = widths[i] - cell.chars().count().min(widths[i]);
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            } else {
                text.push_str(cell);
            }
        }
        text.trim_end().to_owned()
    };
    let mut lines = vec![render(&mut headers.iter().copied())];
    for row in rows {
        lines.push(render(&mut row.iter().map(String::as_str)));
    }
    lines.join("\n")
}

/// `warning: MESSAGE (CODE)`.
pub fn warning(warning: &WarningDto) -> String {
    format!("warning: {} ({})", warning.message, warning.code)
}

/// A text that may be absent, or `-`.
pub fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_owned()
}

/// A JSON string member, or `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `yes`/`no`.
pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// Names joined by `, `, or `-`.
pub fn names<S: AsRef<str>>(values: &[S]) -> String {
    if values.is_empty() {
        return "-".to_owned();
    }
    values
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned() {
        let rendered = table(
            &["ID", "CREATED"],
            &[
                vec!["acme".into(), "2026-01-01".into()],
                vec!["a-much-longer-id".into(), "x".into()],
            ],
        );
        assert_eq!(
            rendered,
            "ID                CREATED\nacme              2026-01-01\na-much-longer-id  x"
        );
    }
}
