//! Writing a report: a text table per section (the default), Markdown, CSV or JSON.

use std::io::Write;

use authtrail_model::time::format_micros;
use serde_json::{json, Map, Value};

use super::{Report, Section};
use crate::Error;

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// A heading and an aligned text table per section, for a terminal.
    Table,
    /// A heading and a pipe table per section.
    Markdown,
    /// One CSV block per section (a `section` column, then the section's own), blocks
    /// separated by an empty line.
    Csv,
    /// One JSON document, as the HTTP API answers.
    Json,
}

impl Report {
    /// The report as the HTTP API answers it: the window, the service filter, and each
    /// section with its rows as objects.
    pub fn to_json(&self) -> Value {
        let sections: Vec<Value> = self
            .sections
            .iter()
            .map(|section| {
                json!({
                    "id": section.id,
                    "title": section.title,
                    "description": section.description,
                    "columns": section.columns,
                    "rows": section.rows,
                    "truncated": section.truncated,
                })
            })
            .collect();
        json!({
            "report": self.name,
            "from": format_micros(self.window.from),
            "until": format_micros(self.window.until),
            "service": self.service,
            "sections": sections,
        })
    }

    /// Writes the report to `out` in `format`.
    pub fn write(&self, format: ReportFormat, mut out: impl Write) -> Result<(), Error> {
        let io = |error: std::io::Error| Error::Internal(format!("writing the report: {error}"));
        let text = match format {
            ReportFormat::Json => {
                let mut text = serde_json::to_string_pretty(&self.to_json())
                    .map_err(|error| Error::Internal(error.to_string()))?;
                text.push('\n');
                text
            }
            ReportFormat::Table => self.text(false),
            ReportFormat::Markdown => self.text(true),
            ReportFormat::Csv => {
                let blocks: Vec<String> = self.sections.iter().map(csv).collect();
                blocks.join("\n")
            }
        };
        out.write_all(text.as_bytes()).map_err(io)?;
        out.flush().map_err(io)
    }

    /// A heading for the report, then each section's heading and table: Markdown's, or
    /// aligned text.
    fn text(&self, markdown: bool) -> String {
        let body = if markdown { self::markdown } else { table };
        let scope = self
            .service
            .as_ref()
            .map_or(String::new(), |service| format!(", service `{service}`"));
        let mut out = format!(
            "{}{} report, {} to {}{scope}\n\n",
            if markdown { "# " } else { "" },
            capitalised(self.name),
            format_micros(self.window.from),
            format_micros(self.window.until),
        );
        for section in &self.sections {
            let heading = format!("{} ({})", section.title, section.rows.len());
            if markdown {
                out.push_str(&format!("## {heading}\n\n{}\n\n", section.description));
            } else {
                out.push_str(&format!(
                    "{heading}\n{}\n",
                    "=".repeat(heading.chars().count())
                ));
            }
            if section.rows.is_empty() {
                out.push_str("none\n\n");
                continue;
            }
            out.push_str(&body(section));
            if section.truncated {
                out.push_str("(truncated at the row limit, `query.max_rows`)\n");
            }
            out.push('\n');
        }
        out
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A value as one line of text: lists joined by `, `, nulls empty, control characters
/// (which a hostile event may carry) shown escaped so they cannot move the terminal.
fn cell(value: Option<&Value>) -> String {
    let raw = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| cell(Some(item)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    };
    raw.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn cells(section: &Section, row: &Map<String, Value>) -> Vec<String> {
    section
        .columns
        .iter()
        .map(|column| cell(row.get(*column)))
        .collect()
}

fn table(section: &Section) -> String {
    let rows: Vec<Vec<String>> = section.rows.iter().map(|row| cells(section, row)).collect();
    let widths: Vec<usize> = section
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            rows.iter()
                .map(|row| row[index].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| -> String {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(value, width)| format!("{value:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(section.columns.clone());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn markdown(section: &Section) -> String {
    let escape = |text: &str| text.replace('|', "\\|");
    let mut out = format!("| {} |\n", section.columns.join(" | "));
    out.push_str(&format!("|{}\n", " --- |".repeat(section.columns.len())));
    for row in &section.rows {
        let values: Vec<String> = cells(section, row).iter().map(|v| escape(v)).collect();
        out.push_str(&format!("| {} |\n", values.join(" | ")));
    }
    out
}

fn csv(section: &Section) -> String {
    let field = |text: &str| -> String {
        if text.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_owned()
        }
    };
    let mut out = format!("section,{}\n", section.columns.join(","));
    for row in &section.rows {
        let values: Vec<String> = cells(section, row).iter().map(|v| field(v)).collect();
        out.push_str(&format!("{},{}\n", section.id, values.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Report, Section, Window};
    use super::*;

    fn report() -> Report {
        let mut row = Map::new();
        row.insert("service".into(), json!("orders"));
        row.insert("peers".into(), json!(["a", "b|c"]));
        row.insert("note".into(), json!("x,\"y\"\u{1b}[2J"));
        Report {
            name: "trust",
            window: Window {
                from: 0,
                until: 86_400_000_000,
            },
            service: None,
            sections: vec![
                Section {
                    id: "s",
                    title: "Something",
                    description: "what a row means",
                    columns: vec!["service", "peers", "note"],
                    rows: vec![row],
                    truncated: false,
                },
                Section {
                    id: "e",
                    title: "Nothing",
                    description: "empty",
                    columns: vec!["service"],
                    rows: vec![],
                    truncated: false,
                },
            ],
        }
    }

    fn rendered(format: ReportFormat) -> String {
        let mut out = Vec::new();
        report().write(format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_escapes_control_characters_and_says_none_for_empty_sections() {
        let text = rendered(ReportFormat::Table);
        assert!(
            text.starts_with("Trust report, 1970-01-01T00:00:00Z to 1970-01-02T00:00:00Z\n"),
            "{text}"
        );
        assert!(
            text.contains("orders   a, b|c  x,\"y\"\\u{1b}[2J"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("Nothing (0)\n===========\nnone\n"), "{text}");
    }

    #[test]
    fn csv_quotes_fields_and_markdown_escapes_pipes() {
        let csv = rendered(ReportFormat::Csv);
        assert!(csv.starts_with("section,service,peers,note\ns,orders,\"a, b|c\",\"x,\"\"y\"\"\\u{1b}[2J\"\n\nsection,service\n"), "{csv}");
        let markdown = rendered(ReportFormat::Markdown);
        assert!(markdown.contains("| orders | a, b\\|c |"), "{markdown}");
    }

    #[test]
    fn json_keeps_rows_as_objects() {
        let json: Value = serde_json::from_str(&rendered(ReportFormat::Json)).unwrap();
        assert_eq!(json["report"], "trust");
        assert_eq!(json["sections"][0]["rows"][0]["peers"][1], "b|c");
        assert_eq!(json["until"], "1970-01-02T00:00:00Z");
    }
}
