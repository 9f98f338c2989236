//! Splits an input document into the JSON values it holds, each with its position, whatever the
//! layout: one event (pretty-printed or not), a JSON array (an `/api/v1/logs` page), or NDJSON
//! (one value per line; a line may itself be an array). Pure: bytes in, values out.

use std::fmt;

use serde_json::value::RawValue;

/// Where a value sits in the input, for error messages a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The whole input is one value.
    Document,
    /// Array element `index` (0-based) of the input.
    Index(usize),
    /// NDJSON line `line` (1-based).
    Line(usize),
    /// Array element `index` (0-based) on NDJSON line `line` (1-based).
    LineIndex(usize, usize),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Document => f.write_str("input"),
            Position::Index(i) => write!(f, "index {i}"),
            Position::Line(l) => write!(f, "line {l}"),
            Position::LineIndex(l, i) => write!(f, "line {l}, index {i}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    #[error("not valid JSON: {0}")]
    NotJson(String),
}

/// Whether a document is one value per line, judged by its first non-blank line: in NDJSON it is a
/// complete JSON value, in a pretty-printed document it is not.
pub fn is_ndjson(doc: &[u8]) -> bool {
    strip_bom(doc)
        .split(|&b| b == b'\n')
        .find(|l| !is_blank(l))
        .is_some_and(is_complete_json)
}

/// Whether one line holds a complete JSON value.
pub fn is_complete_json(line: &[u8]) -> bool {
    std::str::from_utf8(strip_bom(line)).is_ok_and(|l| serde_json::from_str::<&RawValue>(l).is_ok())
}

/// Every value in an in-memory document, in order.
pub fn for_each_value<'a>(doc: &'a [u8], mut f: impl FnMut(Position, Result<&'a RawValue, InputError>)) {
    if is_ndjson(doc) {
        for (i, line) in strip_bom(doc).split(|&b| b == b'\n').enumerate() {
            for_each_value_in_line(i + 1, line, &mut f);
        }
        return;
    }
    let doc = strip_bom(doc);
    if is_blank(doc) {
        return;
    }
    let text = match std::str::from_utf8(doc) {
        Ok(text) => text,
        Err(e) => return f(Position::Document, Err(InputError::NotUtf8(e.valid_up_to()))),
    };
    match serde_json::from_str::<&RawValue>(text) {
        Ok(value) => expand(value, Position::Document, Position::Index, &mut f),
        Err(e) => f(Position::Document, Err(InputError::NotJson(e.to_string()))),
    }
}

/// The values on one NDJSON line (none for a blank line; several for an array).
pub fn for_each_value_in_line<'a>(
    line_no: usize,
    line: &'a [u8],
    f: &mut impl FnMut(Position, Result<&'a RawValue, InputError>),
) {
    let line = strip_bom(line);
    if is_blank(line) {
        return;
    }
    let pos = Position::Line(line_no);
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        Err(e) => return f(pos, Err(InputError::NotUtf8(e.valid_up_to()))),
    };
    match serde_json::from_str::<&RawValue>(text) {
        Ok(value) => expand(value, pos, |i| Position::LineIndex(line_no, i), f),
        Err(e) => f(pos, Err(InputError::NotJson(e.to_string()))),
    }
}

/// An array stands for its elements; anything else for itself.
fn expand<'a>(
    value: &'a RawValue,
    pos: Position,
    element: impl Fn(usize) -> Position,
    f: &mut impl FnMut(Position, Result<&'a RawValue, InputError>),
) {
    if !value.get().starts_with('[') {
        return f(pos, Ok(value));
    }
    match serde_json::from_str::<Vec<&RawValue>>(value.get()) {
        Ok(items) => items.into_iter().enumerate().for_each(|(i, v)| f(element(i), Ok(v))),
        Err(e) => f(pos, Err(InputError::NotJson(e.to_string()))),
    }
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(doc: &str) -> Vec<(String, Result<String, InputError>)> {
        let mut out = Vec::new();
        for_each_value(doc.as_bytes(), |pos, v| {
            out.push((pos.to_string(), v.map(|v| v.get().to_owned())));
        });
        out
    }

    #[test]
    fn one_pretty_printed_event_is_the_document() {
        let v = values("{\n  \"eventType\": \"x\"\n}\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "input");
        // On one line, the same event is line 1 of an NDJSON document.
        assert_eq!(values("{\"eventType\": \"x\"}")[0].0, "line 1");
    }

    #[test]
    fn an_array_yields_its_elements_by_index() {
        let v = values("[\n {\"a\":1},\n {\"b\":2}\n]");
        let positions: Vec<_> = v.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(positions, ["index 0", "index 1"]);
    }

    #[test]
    fn ndjson_yields_lines_and_reports_bad_ones_without_stopping() {
        let v = values("{\"a\":1}\n\nnot json\n[{\"b\":2},{\"c\":3}]\n{\"d\":4}");
        let positions: Vec<_> = v.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(positions, ["line 1", "line 3", "line 4, index 0", "line 4, index 1", "line 5"]);
        assert!(matches!(v[1].1, Err(InputError::NotJson(_))));
        assert_eq!(v[4].1.as_deref(), Ok("{\"d\":4}"));
    }

    #[test]
    fn broken_documents_and_bytes_are_reported() {
        assert!(matches!(values("[{\"a\":1},")[0].1, Err(InputError::NotJson(_))));
        let mut seen = Vec::new();
        for_each_value(b"{\"a\":1}\n{\"b\":\"\xff\"}\n", |p, v| seen.push((p, v.is_ok())));
        assert_eq!(seen, [(Position::Line(1), true), (Position::Line(2), false)]);
        assert!(values("").is_empty());
        assert!(values(" \n\t").is_empty());
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        assert_eq!(values("\u{feff}{\"a\":1}").len(), 1);
    }
}
