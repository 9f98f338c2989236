//! ArcSight CEF: `CEF:0|Vendor|Product|Version|Class ID|Name|Severity|Extension`, with the
//! standard's two escaping regimes — header fields escape `\` and `|`; extension values escape
//! `\` and `=`, and write newlines as the two characters `\n` / `\r`. Other control characters,
//! which no CEF parser agrees on, become spaces.

use super::{Context, PRODUCT, VERSION, severity, succeeded, time, title};
use crate::detect::Finding;
use crate::record::MfaChange;

/// A header field: `\` → `\\`, `|` → `\|`; line breaks and controls → space.
pub fn header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value: `\` → `\\`, `=` → `\=`, CR/LF → `\r`/`\n`; other controls → space.
pub fn value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn encode(change: &MfaChange, ctx: &Context) -> String {
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", time(change).timestamp_millis().to_string()),
        ("act", change.action.as_str().to_owned()),
        ("cat", "okta:mfa".to_owned()),
        (
            "outcome",
            if succeeded(change) {
                "success"
            } else {
                "failure"
            }
            .to_owned(),
        ),
        ("externalId", change.id.to_wire()),
    ];
    fn opt(ext: &mut Vec<(&'static str, String)>, k: &'static str, v: Option<&String>) {
        if let Some(v) = v {
            ext.push((k, v.clone()));
        }
    }
    opt(
        &mut ext,
        "suser",
        change.actor.as_ref().and_then(|a| a.login.as_ref()),
    );
    opt(
        &mut ext,
        "suid",
        change.actor.as_ref().and_then(|a| a.id.as_ref()),
    );
    opt(
        &mut ext,
        "duser",
        change.user.as_ref().and_then(|u| u.login.as_ref()),
    );
    opt(
        &mut ext,
        "duid",
        change.user.as_ref().and_then(|u| u.id.as_ref()),
    );
    match change.client.ip.as_deref() {
        Some(ip) if ip.contains(':') => {
            ext.push(("c6a2", ip.to_owned()));
            ext.push(("c6a2Label", "Source IPv6 Address".to_owned()));
        }
        Some(ip) => ext.push(("src", ip.to_owned())),
        None => {}
    }
    opt(
        &mut ext,
        "requestClientApplication",
        change.client.user_agent.as_ref(),
    );
    opt(&mut ext, "reason", change.reason.as_ref());
    opt(&mut ext, "msg", change.message.as_ref());
    let factor_type = change
        .factor
        .factor_type
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    let provider = change
        .factor
        .provider
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    for (i, (label, v)) in [
        ("factorType", factor_type),
        ("factorProvider", provider),
        ("factorName", change.factor.name.clone()),
        (
            "initiator",
            change
                .initiator
                .and_then(|i| serde_json::to_value(i).ok())
                .and_then(|v| v.as_str().map(str::to_owned)),
        ),
        ("oktaOrg", Some(ctx.org.clone())),
        ("oktaEventType", Some(change.event_type.clone())),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = v {
            let n = i + 1;
            ext.push((CS[n - 1].0, v));
            ext.push((CS[n - 1].1, label.to_owned()));
        }
    }
    let extension: Vec<String> = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        header(PRODUCT),
        header(PRODUCT),
        header(VERSION),
        header(&change.event_type),
        header(title(change.action)),
        severity(change),
        extension.join(" ")
    )
}

/// A finding: Class ID `finding:<rule>`, the rule's title as the Name, its severity on CEF's 0–10
/// scale, the summary as `msg` and the Okta events in `cs1`.
pub fn encode_finding(f: &Finding, ctx: &Context) -> String {
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", f.last_seen.timestamp_millis().to_string()),
        ("start", f.first_seen.timestamp_millis().to_string()),
        ("end", f.last_seen.timestamp_millis().to_string()),
        ("act", f.rule.as_str().to_owned()),
        ("cat", "okta:mfa:finding".to_owned()),
        ("externalId", f.id.clone()),
    ];
    let mut opt = |k: &'static str, v: Option<&String>| {
        if let Some(v) = v {
            ext.push((k, v.clone()));
        }
    };
    opt("suser", f.actor.as_ref().and_then(|a| a.login.as_ref()));
    opt("suid", f.actor.as_ref().and_then(|a| a.id.as_ref()));
    opt("duser", f.user.as_ref().and_then(|u| u.login.as_ref()));
    opt("duid", f.user.as_ref().and_then(|u| u.id.as_ref()));
    ext.push(("msg", f.summary.clone()));
    for (i, (label, v)) in [
        ("oktaEventIds", f.event_ids.join(",")),
        ("oktaOrg", ctx.org.clone()),
        ("findingSeverity", f.severity.as_str().to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        ext.push((CS[i].0, v));
        ext.push((CS[i].1, label.to_owned()));
    }
    let extension: Vec<String> = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        header(PRODUCT),
        header(PRODUCT),
        header(VERSION),
        header(&format!("finding:{}", f.rule.as_str())),
        header(&f.title),
        super::finding_severity(f.severity),
        extension.join(" ")
    )
}

const CS: [(&str, &str); 6] = [
    ("cs1", "cs1Label"),
    ("cs2", "cs2Label"),
    ("cs3", "cs3Label"),
    ("cs4", "cs4Label"),
    ("cs5", "cs5Label"),
    ("cs6", "cs6Label"),
];

/// A strict CEF parser (for tests and for `check`): the 7 header fields, unescaped, and the
/// extension's key/value pairs, unescaped. Fails on anything the standard does not allow.
pub fn parse(line: &str) -> Result<super::Parsed, super::ParseError> {
    let rest = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = rest.char_indices();
    let mut ext_start = None;
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '|'))) => cur.push(e),
                other => return Err(super::ParseError(format!("bad header escape {other:?}"))),
            },
            '|' => {
                fields.push(std::mem::take(&mut cur));
                if fields.len() == 7 {
                    ext_start = Some(i + 1);
                    break;
                }
            }
            c if c.is_control() => return Err("control character in header".into()),
            c => cur.push(c),
        }
    }
    let ext = &rest[ext_start.ok_or("fewer than 8 fields")?..];
    if ext.contains(['\n', '\r']) {
        return Err("raw line break in the extension".into());
    }
    // Positions of unescaped '=': each ends a key (the word before it).
    let bytes: Vec<char> = ext.chars().collect();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '\\' => i += 2,
            '=' => {
                eqs.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut pairs = Vec::new();
    let mut key_start = 0;
    for (n, &eq) in eqs.iter().enumerate() {
        let key: String = bytes[key_start..eq].iter().collect();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(super::ParseError(format!("bad key {key:?}")));
        }
        let value_end = match eqs.get(n + 1) {
            Some(&next) => {
                let space = bytes[..next]
                    .iter()
                    .rposition(|c| *c == ' ')
                    .ok_or("no space before key")?;
                if space <= eq {
                    return Err("empty value before the next key".into());
                }
                key_start = space + 1;
                space
            }
            None => bytes.len(),
        };
        let raw: String = bytes[eq + 1..value_end].iter().collect();
        pairs.push((key, unescape_value(&raw)?));
    }
    Ok((fields, pairs))
}

fn unescape_value(s: &str) -> Result<String, super::ParseError> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('=') => out.push('='),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                other => return Err(super::ParseError(format!("bad value escape {other:?}"))),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testing::{ctx, example};

    #[test]
    fn the_example_encodes_and_parses_back() {
        let line = encode(&example(), &ctx());
        assert!(line.starts_with("CEF:0|factorwatch|factorwatch|"), "{line}");
        let (header, ext) = parse(&line).unwrap();
        assert_eq!(header[4], "user.mfa.factor.activate");
        assert_eq!(header[5], "MFA factor enrolled");
        assert_eq!(header[6], "5");
        let get = |k: &str| {
            ext.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("rt"), Some("1767225600123"));
        assert_eq!(get("suser"), Some("admin@example.com"));
        assert_eq!(get("duser"), Some("jdoe@example.com"));
        assert_eq!(get("src"), Some("203.0.113.7"));
        assert_eq!(get("cs1"), Some("token:software:totp"));
        assert_eq!(get("cs1Label"), Some("factorType"));
    }

    #[test]
    fn escaping_follows_the_standard() {
        assert_eq!(header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(value("a|b\\c=d\ne\rf"), r"a|b\\c\=d\ne\rf");
        let mut c = example();
        c.actor.as_mut().unwrap().login = Some("x=y z\\|w\nmsg=evil".into());
        let (_, ext) = parse(&encode(&c, &ctx())).unwrap();
        assert!(
            ext.iter()
                .any(|(k, v)| k == "suser" && v == "x=y z\\|w\nmsg=evil")
        );
        assert!(!ext.iter().any(|(k, v)| k == "msg" && v == "evil"));
    }
}
