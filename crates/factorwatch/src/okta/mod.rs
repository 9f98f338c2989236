//! Okta's wire formats: System Log events, Event Hook deliveries, legacy Events API events, and
//! Okta's factor vocabulary.

pub mod catalog;
pub mod client;
pub mod factors;
pub mod legacy_event;
mod lenient;
pub mod log_event;

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope `eventType` of an Event Hook delivery.
pub const EVENT_HOOK_TYPE: &str = "com.okta.event_hook";

/// What one JSON value from Okta is, found by reading only the keys that tell.
#[derive(Debug)]
pub enum Shape<'a> {
    /// A System Log event, with its `eventType`.
    SystemLog { event_type: Cow<'a, str> },
    /// An Event Hook delivery, with its `data.events[]`.
    EventHook { events: Vec<&'a RawValue> },
    /// A legacy Events API event, with its `action.objectType`.
    EventsApi { object_type: Cow<'a, str> },
}

/// Why a text is not an Okta event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("not valid JSON: {0}")]
    NotJson(String),
    #[error("not an Okta event: {0}")]
    NotOkta(String),
}

fn not_okta(detail: impl Into<String>) -> ShapeError {
    ShapeError::NotOkta(detail.into())
}

/// The `eventType` of an event in a System Log page, found by a scan of its top-level keys
/// (64 bytes at a time, strings never walked, nothing built). None whenever the scan cannot be sure —
/// not an object, no `eventType` at the top, a top-level key or that value written with escapes,
/// the key twice, a value that is not a string: the caller then goes the slow way ([`sniff`]),
/// which refuses what must be refused. It runs on every event a poller reads.
pub fn event_type_of(json: &str) -> Option<&str> {
    let b = json.as_bytes();
    let start = skip_space(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let (end, event_type) = scan_value(json, start)?;
    (skip_space(b, end) == b.len())
        .then_some(event_type)
        .flatten()
}

/// One element of a page: its text, and its `eventType` when a scan of its top-level keys is
/// sure of it (as [`event_type_of`] says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageEvent<'a> {
    pub text: &'a str,
    pub event_type: Option<&'a str>,
}

/// Splits an `/api/v1/logs` (or `/api/v1/events`) page into its elements and reads each one's
/// type, in one pass over the page (64 bytes at a time, strings never walked; nothing is built). The
/// page must be a complete array: one cut off (an unclosed string, object or array, no `]`) is
/// refused whole, so that a poller never commits part of a page and moves past the rest. An
/// element's own syntax is checked where it is read: every one the catalog names is parsed in
/// full; the others are counted and skipped.
pub fn split_page(body: &str) -> Result<Vec<PageEvent<'_>>, String> {
    let b = body.as_bytes();
    let cut = |at: usize| format!("not a complete JSON array (at byte {at})");
    let mut i = skip_space(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err("not a JSON array".into());
    }
    i = skip_space(b, i + 1);
    let mut events = Vec::with_capacity(body.len() / 1024);
    if b.get(i) == Some(&b']') {
        return match skip_space(b, i + 1) == b.len() {
            true => Ok(events),
            false => Err(cut(i + 1)),
        };
    }
    loop {
        let (end, event_type) = scan_value(body, i).ok_or_else(|| cut(i))?;
        events.push(PageEvent {
            text: body.get(i..end).ok_or_else(|| cut(i))?,
            event_type,
        });
        i = skip_space(b, end);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b']') if skip_space(b, i + 1) == b.len() => return Ok(events),
            _ => return Err(cut(i)),
        }
    }
}

/// The end of the value starting at `start` (a non-space byte) and, for an object, its
/// top-level `eventType` when sure of it. None when the value is cut off or unbalanced.
fn scan_value(json: &str, start: usize) -> Option<(usize, Option<&str>)> {
    let b = json.as_bytes();
    match *b.get(start)? {
        b'"' => string_end(b, start).map(|end| (end + 1, None)),
        b'{' | b'[' => scan_container(json, start),
        b'}' | b']' => None,
        _ => {
            // A number, true, false or null: up to the next delimiter.
            let len = b[start..]
                .iter()
                .position(|c| matches!(c, b',' | b']' | b'}') || c.is_ascii_whitespace())
                .unwrap_or(b.len() - start);
            Some((start + len, None))
        }
    }
}

/// Where the bytes that matter to [`scan_container`] are in 64 bytes, one bit per byte.
struct Masks {
    quote: u64,
    /// `{ [ } ]`
    brackets: u64,
    comma: u64,
    backslash: u64,
}

/// One pass over 64 bytes with SSE2 (every x86-64 has it), sixteen bytes per compare: a
/// byte-at-a-time walk of a page was most of a poller's CPU without a server-side filter.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn masks(block: &[u8; 64]) -> Masks {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i as eq, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let splat = |c: u8| set_splat_i8_m128i(c as i8);
    let bits = |v: m128i| u64::from(move_mask_i8_m128i(v) as u16);
    let (quote_c, backslash_c, comma_c) = (splat(b'"'), splat(b'\\'), splat(b','));
    let (open_c, close_c, case) = (splat(b'{'), splat(b'}'), splat(0x20));
    let (mut quote, mut brackets, mut comma, mut backslash) = (0, 0, 0, 0);
    for (k, chunk) in block.chunks_exact(16).enumerate() {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(chunk);
        let v = m128i::from(bytes);
        // `[` and `{` differ by one bit (0x5b, 0x7b), as do `]` and `}`: one compare each.
        let folded = bitor_m128i(v, case);
        quote |= bits(eq(v, quote_c)) << (16 * k);
        brackets |= bits(bitor_m128i(eq(folded, open_c), eq(folded, close_c))) << (16 * k);
        comma |= bits(eq(v, comma_c)) << (16 * k);
        backslash |= bits(eq(v, backslash_c)) << (16 * k);
    }
    Masks {
        quote,
        brackets,
        comma,
        backslash,
    }
}

/// [`masks`] where SSE2 is not there: eight bytes at a time in a `u64` (SWAR).
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn masks_swar(block: &[u8; 64]) -> Masks {
    let (mut quote, mut brackets, mut comma, mut backslash) = (0, 0, 0, 0);
    for (k, word) in block.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let x = u64::from_le_bytes(bytes);
        quote |= packed(equal(x, b'"')) << (8 * k);
        let folded = x | (LOW * 0x20);
        brackets |= packed(equal(folded, b'{') | equal(folded, b'}')) << (8 * k);
        comma |= packed(equal(x, b',')) << (8 * k);
        backslash |= packed(equal(x, b'\\')) << (8 * k);
    }
    Masks {
        quote,
        brackets,
        comma,
        backslash,
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn masks(block: &[u8; 64]) -> Masks {
    masks_swar(block)
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that equals `c`, exactly (no false positives).
fn equal(x: u64, c: u8) -> u64 {
    let y = x ^ (LOW * u64::from(c));
    // A byte of `y` is zero iff adding 0x7f to its low seven bits does not carry into the high
    // bit and its own high bit is clear.
    !(((y & !HIGH) + !HIGH) | y) & HIGH
}

/// The high bits of the eight bytes of `m` gathered into one byte, byte 0 lowest.
fn packed(m: u64) -> u64 {
    // Shifts and ors only: a multiply here does not vectorize well.
    let mut x = m >> 7;
    x |= x >> 7;
    x |= x >> 14;
    x |= x >> 28;
    x & 0xff
}

/// Bit `j` is the parity of bits `0..=j` of `x`: over quote positions, whether byte `j` is inside
/// a string (its opening quote included, its closing quote not).
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// The state of a scan of one object or array: how deep it is, whether the next string at the
/// top of an object is a key, the `eventType` found, and the string being read.
struct Container<'a> {
    json: &'a str,
    object: bool,
    depth: usize,
    key_next: bool,
    found: Option<&'a str>,
    unsure: bool,
    /// Inside a string: its opening quote, and whether it is a top-level key not yet read.
    string: Option<(usize, bool)>,
}

/// What the scan does after a byte.
enum Step {
    Next,
    /// Go on from this byte (past a key read ahead, or an `eventType` value).
    Resume(usize),
    /// The value ends before this byte.
    End(usize),
}

impl<'a> Container<'a> {
    /// A structural byte `c` at `p`, outside strings. None: the value is unbalanced.
    fn structural(&mut self, c: u8, p: usize) -> Option<Step> {
        match c {
            b'"' => self.string = Some((p, self.key_at_depth())),
            b'{' | b'[' => {
                self.depth += 1;
                self.key_next = self.object && self.depth == 1;
            }
            b'}' | b']' => {
                self.depth = self.depth.checked_sub(1)?;
                if self.depth == 0 {
                    return Some(Step::End(p + 1));
                }
            }
            b',' if self.depth == 1 => self.key_next = self.object,
            _ => {}
        }
        Some(Step::Next)
    }

    /// Whether a string opening now is a top-level key.
    fn key_at_depth(&self) -> bool {
        self.object && self.depth == 1 && self.key_next
    }

    /// The quote at `close` ends the string being read.
    fn string_closed(&mut self, close: usize) -> Option<Step> {
        match self.string.take() {
            Some((open, true)) => self.key(open, close),
            _ => Some(Step::Next),
        }
    }

    /// The top-level key quoted at `open` and `close`: when it is `eventType`, its value is read.
    fn key(&mut self, open: usize, close: usize) -> Option<Step> {
        self.key_next = false;
        let b = self.json.as_bytes();
        let key = &b[open + 1..close];
        if key.contains(&b'\\') {
            self.unsure = true;
            return Some(Step::Next);
        }
        // Both spellings `sniff` reads: either twice is refused there, unsure here.
        if key != b"eventType" && key != b"eventtype" {
            return Some(Step::Next);
        }
        let colon = skip_space(b, close + 1);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let v = skip_space(b, colon + 1);
        if b.get(v) != Some(&b'"') {
            // Not a string: the general way decides what it is.
            self.unsure = true;
            return Some(Step::Resume(v));
        }
        let v_end = string_end(b, v)?;
        let value = self.json.get(v + 1..v_end)?;
        if self.found.is_some() || value.contains('\\') {
            self.unsure = true;
        } else {
            self.found = Some(value);
        }
        Some(Step::Resume(v_end + 1))
    }
}

/// [`scan_value`] for an object or array, 64 bytes at a time. The quotes and `{ [ } ] ,` are
/// found with [`masks`]; which bytes are inside strings follows from the quotes
/// ([`prefix_xor`]), so only the brackets and commas outside strings, and a top-level key's
/// opening quote, are visited one by one. A block holding a backslash (rare in Okta's events) is
/// walked quote by quote instead, so that escapes are read exactly as JSON reads them.
fn scan_container(json: &str, start: usize) -> Option<(usize, Option<&str>)> {
    let b = json.as_bytes();
    let mut c = Container {
        json,
        object: b.get(start) == Some(&b'{'),
        depth: 0,
        key_next: false,
        found: None,
        unsure: false,
        string: None,
    };
    // A backslash ended the last block inside a string: the next byte is escaped.
    let mut escaped = false;
    let mut i = start;
    let mut tail = [b' '; 64];
    while i < b.len() {
        let n = (b.len() - i).min(64);
        let block: &[u8; 64] = match b.get(i..i + 64).and_then(|s| s.try_into().ok()) {
            Some(block) => block,
            None => {
                // The last bytes, padded with spaces (which mean nothing here).
                tail.fill(b' ');
                tail[..n].copy_from_slice(&b[i..]);
                &tail
            }
        };
        let m = masks(block);
        let step = if m.backslash != 0 || escaped {
            walk_escaped(&mut c, block, &m, i, &mut escaped)?
        } else if let Some((open, true)) = c.string {
            // A top-level key began in a block walked quote by quote: read it whole.
            let close = string_end(b, open)?;
            c.string = None;
            match c.key(open, close)? {
                Step::Next => Step::Resume(close + 1),
                step => step,
            }
        } else {
            walk(&mut c, block, &m, i)?
        };
        match step {
            Step::Next => i += n,
            Step::Resume(at) => {
                // Every resumption point is outside strings.
                escaped = false;
                c.string = None;
                i = at;
            }
            Step::End(end) => return Some((end, if c.unsure { None } else { c.found })),
        }
    }
    None
}

/// One block without backslashes, starting at byte `i` of the value.
fn walk(c: &mut Container<'_>, block: &[u8; 64], m: &Masks, i: usize) -> Option<Step> {
    let inside = prefix_xor(m.quote) ^ if c.string.is_some() { !0 } else { 0 };
    let opening = m.quote & inside;
    let brackets = m.brackets & !inside;
    // Commas only tell something at the top (a key comes next): deeper ones are not visited.
    let commas = m.comma & !inside;
    let mut rest = !0u64;
    loop {
        let keys = if c.key_at_depth() { opening } else { 0 };
        let commas = if c.depth == 1 { commas } else { 0 };
        let next = (brackets | commas | keys) & rest;
        if next == 0 {
            break;
        }
        let j = next.trailing_zeros() as usize;
        let bit = 1u64 << j;
        rest = !((bit << 1).wrapping_sub(1));
        if keys & bit != 0 {
            // No backslash here: the next quote closes the key, when it is in this block.
            let close = match m.quote & rest {
                0 => string_end(c.json.as_bytes(), i + j)?,
                later => i + later.trailing_zeros() as usize,
            };
            match c.key(i + j, close)? {
                // The key ends in a later block: go on from there.
                Step::Next if close >= i + 64 => return Some(Step::Resume(close + 1)),
                Step::Next => {}
                step => return Some(step),
            }
        } else {
            match c.structural(block[j], i + j)? {
                Step::Next => {}
                step => return Some(step),
            }
        }
    }
    c.string = (inside >> 63 == 1).then_some((usize::MAX, false));
    Some(Step::Next)
}

/// One block holding a backslash (or whose first byte is escaped): its quotes, brackets, commas
/// and backslashes in order, as [`string_end`] reads strings.
fn walk_escaped(
    c: &mut Container<'_>,
    block: &[u8; 64],
    m: &Masks,
    i: usize,
    escaped: &mut bool,
) -> Option<Step> {
    let mut bits = m.quote | m.brackets | m.comma | m.backslash;
    if *escaped {
        // Byte 0 is escaped: it neither ends the string nor escapes anything.
        bits &= !1;
        *escaped = false;
    }
    while bits != 0 {
        let j = bits.trailing_zeros() as usize;
        let bit = 1u64 << j;
        bits &= bits - 1;
        let step = if c.string.is_some() {
            if m.backslash & bit != 0 {
                // In a string, a backslash escapes the byte after it, even in the next block.
                match j {
                    63 => *escaped = true,
                    _ => bits &= !(bit << 1),
                }
                continue;
            }
            if m.quote & bit == 0 {
                continue;
            }
            c.string_closed(i + j)?
        } else {
            c.structural(block[j], i + j)?
        };
        if !matches!(step, Step::Next) {
            return Some(step);
        }
    }
    Some(Step::Next)
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index of the quote that closes the string opening at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        // Most strings of an event (keys, ids, types) are short: a plain loop beats the set-up
        // of a vector search for them; the long ones go to memchr.
        let short = i.saturating_add(16).min(b.len());
        while i < short {
            match b[i] {
                b'"' => return Some(i),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i);
        }
        i += 2;
    }
}

/// Tells a System Log event, an Event Hook delivery and a legacy event apart, and checks on the way
/// that `json` is one valid JSON value. Cheap: everything but the distinguishing keys is skipped, not
/// parsed into values, because it runs on every event Okta sends and only a few percent of those are
/// MFA changes.
pub fn sniff(json: &str) -> Result<Shape<'_>, ShapeError> {
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(rename = "eventType", alias = "eventtype", borrow, default)]
        event_type: Option<Cow<'a, str>>,
        #[serde(rename = "eventId", borrow, default)]
        event_id: Option<&'a RawValue>,
        #[serde(borrow, default)]
        action: Option<&'a RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct HookData<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct LegacyAction<'a> {
        #[serde(rename = "objectType", borrow)]
        object_type: Cow<'a, str>,
    }

    let probe: Probe<'_> = serde_json::from_str(json).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ShapeError::NotJson(e.to_string())
        } else if json.trim_start().starts_with('{') {
            not_okta(format!("unexpected field value: {e}"))
        } else {
            not_okta("expected a JSON object")
        }
    })?;

    match probe.event_type {
        Some(et) if et == EVENT_HOOK_TYPE => {
            let data = probe
                .data
                .ok_or_else(|| not_okta("Event Hook delivery without `data`"))?;
            let data: HookData<'_> = serde_json::from_str(data.get()).map_err(|e| {
                not_okta(format!(
                    "Event Hook delivery: `data.events` must be an array of events: {e}"
                ))
            })?;
            Ok(Shape::EventHook {
                events: data.events,
            })
        }
        Some(event_type) => Ok(Shape::SystemLog { event_type }),
        None => match (probe.event_id, probe.action) {
            (Some(_), Some(action)) => {
                let action: LegacyAction<'_> = serde_json::from_str(action.get()).map_err(|e| {
                    not_okta(format!(
                        "Events API event: `action.objectType` must be a string: {e}"
                    ))
                })?;
                Ok(Shape::EventsApi {
                    object_type: action.object_type,
                })
            }
            _ => Err(not_okta(
                "no `eventType` (System Log, Event Hook) and no `eventId` with `action` (Events API)",
            )),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`published` is not an ISO 8601 timestamp: {0:?}")]
pub struct TimestampError(pub String);

/// Parses Okta's `published`: RFC 3339 with any offset and precision, and the zone-less
/// `2022-06-22 18:18:29.015` some SIEM exports write (read as UTC, as Okta's times are).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, TimestampError> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(TimestampError(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan as it was first written, a byte at a time: what [`scan_value`] must answer, on
    /// any text.
    fn byte_walk(json: &str, start: usize) -> Option<(usize, Option<&str>)> {
        let b = json.as_bytes();
        let object = b.get(start) == Some(&b'{');
        let mut depth = 0usize;
        let mut key_next = false;
        let mut found: Option<&str> = None;
        let mut unsure = false;
        let mut i = start;
        loop {
            match *b.get(i)? {
                b'"' => {
                    let end = string_end(b, i)?;
                    if depth == 0 {
                        return Some((end + 1, None));
                    }
                    let is_key = object && depth == 1 && key_next;
                    let key = &b[i + 1..end];
                    i = end + 1;
                    if !is_key {
                        continue;
                    }
                    key_next = false;
                    if key.contains(&b'\\') {
                        unsure = true;
                        continue;
                    }
                    // Both spellings `sniff` reads: either twice is refused there, unsure here.
                    if key == b"eventType" || key == b"eventtype" {
                        let colon = skip_space(b, i);
                        if b.get(colon) != Some(&b':') {
                            return None;
                        }
                        let v = skip_space(b, colon + 1);
                        if b.get(v) != Some(&b'"') {
                            // Not a string: the general way decides what it is.
                            unsure = true;
                            i = v;
                            continue;
                        }
                        let v_end = string_end(b, v)?;
                        let value = json.get(v + 1..v_end)?;
                        if found.is_some() || value.contains('\\') {
                            unsure = true;
                        } else {
                            found = Some(value);
                        }
                        i = v_end + 1;
                    }
                    continue;
                }
                b'{' | b'[' => {
                    depth += 1;
                    key_next = object && depth == 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some((i + 1, if unsure { None } else { found }));
                    }
                }
                b',' if depth == 1 => key_next = object,
                _ if depth == 0 => {
                    // A number, true, false or null: up to the next delimiter.
                    let len = b[i..]
                        .iter()
                        .position(|c| matches!(c, b',' | b']' | b'}') || c.is_ascii_whitespace())
                        .unwrap_or(b.len() - i);
                    return Some((i + len, None));
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Texts made of the bytes that steer the scan, with keys it looks for.
    fn steering_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just(" ".to_owned()),
            Just("\"eventType\"".to_owned()),
            Just("\"eventtype\":".to_owned()),
            Just("\"user.mfa.factor.activate\"".to_owned()),
            "[a-z0-9 ]{1,70}",
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn the_block_scan_answers_what_a_byte_walk_answers(text in steering_text()) {
            for start in 0..text.len() {
                proptest::prop_assert_eq!(
                    scan_value(&text, start),
                    byte_walk(&text, start),
                    "{:?} from {}", text, start
                );
            }
        }

        #[test]
        fn the_block_scan_answers_what_a_byte_walk_answers_on_events(
            text in "\\{\"a\":\\{\"b\":\"[a-z,\\\\{}\\[\\]\"]{0,90}\"\\},\"eventType\":\"x[a-z\\\\\"]{0,3}\",\"c\":\\[1,\"[a-z\\\\\"{}]{0,80}\"\\]\\}",
            cut in 0usize..400,
        ) {
            let text = &text[..cut.min(text.len())];
            proptest::prop_assert_eq!(scan_value(text, 0), byte_walk(text, 0), "{:?}", text);
        }

        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        #[test]
        fn the_sse2_masks_are_the_portable_masks(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(b"\"\\{}[],|;=".to_vec()),
                ],
                64,
            )
        ) {
            let mut block = [0u8; 64];
            block.copy_from_slice(&bytes);
            let (a, b) = (masks(&block), masks_swar(&block));
            proptest::prop_assert_eq!((a.quote, a.brackets, a.comma, a.backslash), (b.quote, b.brackets, b.comma, b.backslash));
            let expect = |set: &[u8]| block.iter().enumerate().fold(0u64, |m, (j, c)| m | (u64::from(set.contains(c)) << j));
            proptest::prop_assert_eq!(a.quote, expect(b"\""));
            proptest::prop_assert_eq!(a.brackets, expect(b"{}[]"));
            proptest::prop_assert_eq!(a.comma, expect(b","));
            proptest::prop_assert_eq!(a.backslash, expect(b"\\"));
        }
    }

    #[test]
    fn a_long_event_is_scanned_across_blocks_the_way_a_byte_walk_scans_it() {
        // Strings, escapes and keys that straddle the 64-byte blocks at every offset.
        let body = r#"{"actor":{"id":"00u1","displayName":"A \"quoted\" name \\ with a backslash"},"debugContext":{"debugData":{"url":"/api/v1/logs?filter=a%20eq%20\"b\"","x":[1,2,{"eventType":"nested"}]}},"eventType":"user.mfa.factor.activate","outcome":{"result":"SUCCESS"}}"#;
        for pad in 0..130 {
            let text = format!("{}{body}", " ".repeat(pad));
            let start = pad;
            assert_eq!(
                scan_value(&text, start),
                byte_walk(&text, start),
                "pad {pad}"
            );
            assert_eq!(
                scan_value(&text, start).and_then(|(_, t)| t),
                Some("user.mfa.factor.activate")
            );
        }
    }

    #[test]
    fn the_quick_scan_reads_the_top_level_event_type_or_says_it_cannot() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"uuid":"a","eventType":"user.session.start","x":1}"#,
                Some("user.session.start"),
            ),
            (
                r#" { "actor" : {"eventType":"nested","d":["}","\"{"]}, "eventType" : "user.mfa.factor.activate" } "#,
                Some("user.mfa.factor.activate"),
            ),
            (r#"{"target":[{"eventType":"nested"}]}"#, None),
            (r#"{"eventType":"a","eventType":"b"}"#, None),
            (r#"{"eventType":"a","eventtype":"b"}"#, None),
            (r#"{"event\u0054ype":"a"}"#, None),
            (r#"{"eventType":"user.mfa\u002efactor.activate"}"#, None),
            (r#"{"eventType":5}"#, None),
            (r#"{"eventType":null}"#, None),
            (r#"["eventType","a"]"#, None),
            (
                r#"{"message":"a \"eventType\":\"b\"","eventType":"c"}"#,
                Some("c"),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(event_type_of(json), *expected, "{json}");
            if let Some(t) = expected {
                assert!(
                    matches!(sniff(json), Ok(Shape::SystemLog { event_type }) if event_type == *t),
                    "{json}"
                );
            }
        }
    }
    use crate::record::format_published;

    fn ts(s: &str) -> String {
        parse_timestamp(s)
            .map(|t| format_published(&t))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn timestamps_normalize_to_utc_milliseconds() {
        assert_eq!(ts("2023-01-30T14:18:01.558Z"), "2023-01-30T14:18:01.558Z");
        assert_eq!(ts("2017-05-03T16:22:18Z"), "2017-05-03T16:22:18.000Z");
        assert_eq!(
            ts("2017-05-03T18:22:18.123456+02:00"),
            "2017-05-03T16:22:18.123Z"
        );
        assert_eq!(ts("2022-06-22 18:18:29.015"), "2022-06-22T18:18:29.015Z");
        assert_eq!(ts("2022-06-22T18:18:29"), "2022-06-22T18:18:29.000Z");
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("").is_err());
    }

    #[test]
    fn sniff_tells_the_three_shapes_apart() {
        assert!(matches!(
            sniff(r#"{"uuid":"u","eventType":"user.session.start"}"#),
            Ok(Shape::SystemLog { event_type }) if event_type == "user.session.start"
        ));
        assert!(matches!(
            sniff(r#"{"eventtype":"user.mfa.factor.reset_all"}"#),
            Ok(Shape::SystemLog { event_type }) if event_type == "user.mfa.factor.reset_all"
        ));
        assert!(matches!(
            sniff(r#"{"eventType":"com.okta.event_hook","data":{"events":[{},{}]}}"#),
            Ok(Shape::EventHook { events }) if events.len() == 2
        ));
        assert!(matches!(
            sniff(r#"{"eventId":"tev1","action":{"objectType":"core.user.factor.activate"}}"#),
            Ok(Shape::EventsApi { object_type }) if object_type == "core.user.factor.activate"
        ));
    }

    #[test]
    fn sniff_says_what_is_missing() {
        let err = |json: &str| sniff(json).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(r#"{"hello":"world"}"#).contains("no `eventType`"));
        assert!(err(r#""a string""#).contains("expected a JSON object"));
        assert!(err(r#"{"eventType":"com.okta.event_hook"}"#).contains("without `data`"));
        assert!(
            err(r#"{"eventType":"com.okta.event_hook","data":{"events":3}}"#)
                .contains("data.events")
        );
        assert!(err(r#"{"eventType":42}"#).contains("unexpected field value"));
        assert!(err(r#"{"eventType":"x"} trailing"#).starts_with("not valid JSON"));
        assert!(err(r#"{"eventType":"#).starts_with("not valid JSON"));
    }
}
