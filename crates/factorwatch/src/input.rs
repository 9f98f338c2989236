//! Splits an input document into the JSON values it holds, each with its position, whatever the
//! layout: one event (pretty-printed or not), a JSON array (an `/api/v1/logs` page), or NDJSON
//! (one value per line; a line may itself be an array). Pure: bytes in, values out.
//!
//! A value that is not an array is handed on as text without being parsed here: the classifier's
//! own read of it validates it, and parsing every event twice would halve throughput.

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

/// Why part of the input holds no value to classify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    #[error("not valid JSON: {0}")]
    NotJson(String),
}

/// Whether a document is one value per line, judged by its first non-blank line: in NDJSON it holds
/// a whole value, in a pretty-printed document it does not.
pub fn is_ndjson(doc: &[u8]) -> bool {
    let doc = strip_bom(doc);
    let mut lines = lines(doc).filter(|l| !is_blank(l));
    match (lines.next(), lines.next()) {
        // On one line, both readings give the same values; skip the scan.
        (Some(first), Some(_)) => holds_whole_value(first),
        _ => false,
    }
}

/// The lines of `doc`, without their `\n` (split with memchr: this runs over every byte Okta sends).
fn lines(doc: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(doc);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current) {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Whether a line holds a whole JSON value: a scalar, or an object or array whose brackets close on
/// the line. Only the structure is checked (the value itself is validated once, when classified),
/// so telling NDJSON from a document costs a byte scan, not a parse.
pub fn holds_whole_value(line: &[u8]) -> bool {
    let line = strip_bom(line);
    let Some(&first) = line.iter().find(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    if first != b'{' && first != b'[' {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => match depth.checked_sub(1) {
                Some(0) => return true,
                Some(d) => depth = d,
                None => return false,
            },
            _ => {}
        }
    }
    false
}

/// Every value in an in-memory document, in order.
pub fn for_each_value<'a>(doc: &'a [u8], mut f: impl FnMut(Position, Result<&'a str, InputError>)) {
    if is_ndjson(doc) {
        for (i, line) in lines(strip_bom(doc)).enumerate() {
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
        Err(e) => {
            return f(
                Position::Document,
                Err(InputError::NotUtf8(e.valid_up_to())),
            );
        }
    };
    expand(text.trim(), Position::Document, Position::Index, &mut f);
}

/// The values on one NDJSON line (none for a blank line; several for an array).
pub fn for_each_value_in_line<'a>(
    line_no: usize,
    line: &'a [u8],
    f: &mut impl FnMut(Position, Result<&'a str, InputError>),
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
    expand(text.trim(), pos, |i| Position::LineIndex(line_no, i), f);
}

/// An array stands for its elements; anything else for itself.
fn expand<'a>(
    text: &'a str,
    pos: Position,
    element: impl Fn(usize) -> Position,
    f: &mut impl FnMut(Position, Result<&'a str, InputError>),
) {
    if !text.starts_with('[') {
        return f(pos, Ok(text));
    }
    match serde_json::from_str::<Vec<&RawValue>>(text) {
        Ok(items) => items
            .into_iter()
            .enumerate()
            .for_each(|(i, v)| f(element(i), Ok(v.get()))),
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
            out.push((pos.to_string(), v.map(str::to_owned)));
        });
        out
    }

    #[test]
    fn one_pretty_printed_event_is_the_document() {
        let v = values("{\n  \"eventType\": \"x\"\n}\n");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "input");
        // On one line too.
        assert_eq!(values("{\"eventType\": \"x\"}\n")[0].0, "input");
    }

    #[test]
    fn an_array_yields_its_elements_by_index() {
        let v = values("[\n {\"a\":1},\n {\"b\":2}\n]");
        let positions: Vec<_> = v.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(positions, ["index 0", "index 1"]);
    }

    #[test]
    fn ndjson_yields_lines_and_reports_bad_ones_without_stopping() {
        let v = values("{\"a\":1}\n\n[not json\n[{\"b\":2},{\"c\":3}]\n{\"d\":4}  ");
        let positions: Vec<_> = v.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            positions,
            [
                "line 1",
                "line 3",
                "line 4, index 0",
                "line 4, index 1",
                "line 5"
            ]
        );
        assert!(matches!(v[1].1, Err(InputError::NotJson(_))));
        assert_eq!(v[4].1.as_deref(), Ok("{\"d\":4}"));
    }

    #[test]
    fn broken_documents_and_bytes_are_reported() {
        assert!(matches!(
            values("[{\"a\":1},")[0].1,
            Err(InputError::NotJson(_))
        ));
        let mut seen = Vec::new();
        for_each_value(b"{\"a\":1}\n{\"b\":\"\xff\"}\n", |p, v| {
            seen.push((p, v.is_ok()))
        });
        assert_eq!(
            seen,
            [(Position::Line(1), true), (Position::Line(2), false)]
        );
        assert!(values("").is_empty());
        assert!(values(" \n\t").is_empty());
    }

    #[test]
    fn whole_values_are_told_from_openings() {
        assert!(holds_whole_value(br#"{"a":"}{[","b":[1,{"c":"\\"}]}"#));
        assert!(holds_whole_value(b"[1,2]\r"));
        assert!(holds_whole_value(b"not json"));
        assert!(!holds_whole_value(b"{"));
        assert!(!holds_whole_value(br#"{"a": "}"#));
        assert!(!holds_whole_value(b"[\n"));
        assert!(!holds_whole_value(b"  "));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        assert_eq!(values("\u{feff}{\"a\":1}").len(), 1);
    }
}
