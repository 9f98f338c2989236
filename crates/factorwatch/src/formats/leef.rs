//! IBM QRadar LEEF 2.0: `LEEF:2.0|Vendor|Product|Version|EventID|^|key=value^key=value…`, with
//! `^` as the attribute delimiter. LEEF has no escaping: the delimiter, `|` in the header, and line
//! breaks or other control characters in values are replaced by a space.

use super::{Context, PRODUCT, VERSION, severity, succeeded, time};
use crate::detect::Finding;
use crate::record::MfaChange;

pub const DELIMITER: char = '^';

/// A value: no delimiter, no control characters.
pub fn value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == DELIMITER || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A header field: no `|` either.
pub fn header(s: &str) -> String {
    value(s).replace('|', " ")
}

pub fn encode(change: &MfaChange, ctx: &Context) -> String {
    let t = time(change);
    let mut attrs: Vec<(&str, String)> = vec![
        ("cat", change.action.as_str().to_owned()),
        ("devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSZ".to_owned()),
        (
            "devTime",
            t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        ),
        ("sev", severity(change).max(1).to_string()),
        (
            "outcome",
            if succeeded(change) {
                "success"
            } else {
                "failure"
            }
            .to_owned(),
        ),
        ("oktaUuid", change.id.to_wire()),
        ("oktaOrg", ctx.org.clone()),
        ("oktaEventType", change.event_type.clone()),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            attrs.push((k, v));
        }
    };
    opt(
        "usrName",
        change.user.as_ref().and_then(|u| u.login.clone()),
    );
    opt(
        "targetUserId",
        change.user.as_ref().and_then(|u| u.id.clone()),
    );
    opt(
        "accountName",
        change.actor.as_ref().and_then(|a| a.login.clone()),
    );
    opt("actorId", change.actor.as_ref().and_then(|a| a.id.clone()));
    opt("src", change.client.ip.clone());
    opt("identSrc", change.client.ip.clone());
    opt("userAgent", change.client.user_agent.clone());
    opt(
        "factorType",
        change
            .factor
            .factor_type
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    );
    opt(
        "factorProvider",
        change
            .factor
            .provider
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    );
    opt("factorName", change.factor.name.clone());
    opt(
        "initiator",
        change
            .initiator
            .and_then(|i| serde_json::to_value(i).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    );
    opt("reason", change.reason.clone());
    let body: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    format!(
        "LEEF:2.0|{}|{}|{}|{}|{DELIMITER}|{}",
        header(PRODUCT),
        header(PRODUCT),
        header(VERSION),
        header(&change.event_type),
        body.join(&DELIMITER.to_string())
    )
}

/// A finding: EventID `finding:<rule>`, `sev` its severity on LEEF's 1–10 scale, the summary as
/// `msg`.
pub fn encode_finding(f: &Finding, ctx: &Context) -> String {
    let mut attrs: Vec<(&str, String)> = vec![
        ("cat", "finding".to_owned()),
        ("devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSZ".to_owned()),
        (
            "devTime",
            f.last_seen.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        ),
        ("sev", super::finding_severity(f.severity).to_string()),
        ("findingId", f.id.clone()),
        ("rule", f.rule.as_str().to_owned()),
        ("oktaOrg", ctx.org.clone()),
        ("oktaEventIds", f.event_ids.join(",")),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            attrs.push((k, v));
        }
    };
    opt("usrName", f.user.as_ref().and_then(|u| u.login.clone()));
    opt("targetUserId", f.user.as_ref().and_then(|u| u.id.clone()));
    opt(
        "accountName",
        f.actor.as_ref().and_then(|a| a.login.clone()),
    );
    opt("actorId", f.actor.as_ref().and_then(|a| a.id.clone()));
    attrs.push(("msg", f.summary.clone()));
    let body: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", value(v)))
        .collect();
    format!(
        "LEEF:2.0|{}|{}|{}|{}|{DELIMITER}|{}",
        header(PRODUCT),
        header(PRODUCT),
        header(VERSION),
        header(&format!("finding:{}", f.rule.as_str())),
        body.join(&DELIMITER.to_string())
    )
}

/// A strict LEEF 2.0 parser: the 5 header fields after the version, the delimiter, and the
/// attributes (each split at its first `=`).
pub fn parse(line: &str) -> Result<super::Parsed, super::ParseError> {
    let rest = line
        .strip_prefix("LEEF:2.0|")
        .ok_or("no LEEF:2.0| prefix")?;
    if line.chars().any(char::is_control) {
        return Err("control character".into());
    }
    let parts: Vec<&str> = rest.splitn(6, '|').collect();
    if parts.len() != 6 {
        return Err("fewer than 6 header fields".into());
    }
    let delimiter = match parts[4] {
        "^" => '^',
        d => return Err(super::ParseError(format!("unexpected delimiter {d:?}"))),
    };
    let attrs = parts[5]
        .split(delimiter)
        .map(|a| {
            let (k, v) = a.split_once('=').ok_or(format!("no '=' in {a:?}"))?;
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(super::ParseError(format!("bad key {k:?}")));
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect::<Result<Vec<_>, super::ParseError>>()?;
    Ok((parts[..4].iter().map(|s| (*s).to_owned()).collect(), attrs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testing::{ctx, example};

    #[test]
    fn the_example_encodes_and_parses_back() {
        let line = encode(&example(), &ctx());
        let (header, attrs) = parse(&line).unwrap();
        assert_eq!(header[3], "user.mfa.factor.activate");
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("devTime"), Some("2026-01-01T00:00:00.123+0000"));
        assert_eq!(get("devTimeFormat"), Some("yyyy-MM-dd'T'HH:mm:ss.SSSZ"));
        assert_eq!(get("usrName"), Some("jdoe@example.com"));
        assert_eq!(get("accountName"), Some("admin@example.com"));
        assert_eq!(get("src"), Some("203.0.113.7"));
        assert_eq!(get("sev"), Some("5"));
    }

    #[test]
    fn delimiters_and_line_breaks_never_reach_the_wire() {
        let mut c = example();
        c.actor.as_mut().unwrap().login = Some("a^b\nc\td|e=f".into());
        let (_, attrs) = parse(&encode(&c, &ctx())).unwrap();
        assert!(
            attrs
                .iter()
                .any(|(k, v)| k == "accountName" && v == "a b c d|e=f")
        );
    }
}
