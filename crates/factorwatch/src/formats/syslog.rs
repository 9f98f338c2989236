//! RFC 5424 syslog messages around any payload format, with structured data carrying the
//! change's key facts; and RFC 6587 octet-counting framing for stream transports.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID param="value"…] BOM MSG`

use super::{Context, PRODUCT};
use crate::detect::{Finding, Severity};
use crate::record::{Action, Item, MfaChange, format_published};

/// Facility 10 (authpriv) by default; severity 5 (notice) for additions, 4 (warning) for
/// removals, suspensions and bypass attempts.
pub const DEFAULT_FACILITY: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub facility: u8,
    /// `name@<IANA private enterprise number>`; 32473 is the documentation PEN (RFC 5612).
    pub sd_id: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            facility: DEFAULT_FACILITY,
            sd_id: "factorwatch@32473".into(),
        }
    }
}

pub fn severity(action: Action) -> u8 {
    match action {
        Action::Enrolled | Action::Updated | Action::Unsuspended => 5,
        Action::OrgFactorEnabled | Action::OrgFactorDisabled => 5,
        Action::Reset | Action::ResetAll | Action::Suspended | Action::BypassAttempted => 4,
    }
}

/// A header field: printable US-ASCII (33–126) only, at most `max` characters, `-` when empty.
pub fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with `\` (RFC 5424 §6.3.3); control characters, which
/// some collectors split lines on, become spaces.
pub fn param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One RFC 5424 message (without framing) carrying `payload`.
pub fn message(change: &MfaChange, payload: &str, ctx: &Context, options: &Options) -> String {
    let pri = u16::from(options.facility.min(23)) * 8 + u16::from(severity(change.action));
    let timestamp = change
        .published
        .as_ref()
        .map_or_else(|| format_published(&chrono::Utc::now()), format_published);
    let mut sd = format!(
        "[{}",
        header_field(&options.sd_id, 32).replace(['=', ']', '"'], "_")
    );
    let mut param = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            sd.push_str(&format!(" {name}=\"{}\"", param_value(v)));
        }
    };
    param("uuid", Some(&change.id.to_wire()));
    param("org", Some(&ctx.org));
    param("action", Some(change.action.as_str()));
    param("outcome", change.outcome.as_deref());
    param(
        "user",
        change.user.as_ref().and_then(|u| u.login.as_deref()),
    );
    param(
        "actor",
        change.actor.as_ref().and_then(|a| a.login.as_deref()),
    );
    param("factor", change.factor.name.as_deref());
    param("ip", change.client.ip.as_deref());
    sd.push(']');
    // The payload is one line already; a stray line break would split it at some collectors.
    let msg: String = payload
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!(
        "<{pri}>1 {timestamp} {} {} {} {} {sd} \u{feff}{msg}",
        header_field(&ctx.hostname, 255),
        header_field(PRODUCT, 48),
        "-",
        header_field(&change.event_type, 32),
    )
}

/// A finding's syslog severity: 5 (notice) low, 4 (warning) medium, 3 (error) high, 2 (critical)
/// critical.
pub fn finding_severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 5,
        Severity::Medium => 4,
        Severity::High => 3,
        Severity::Critical => 2,
    }
}

/// One RFC 5424 message carrying a change's or a finding's payload.
pub fn item_message(item: &Item, payload: &str, ctx: &Context, options: &Options) -> String {
    match item {
        Item::Change(c) => message(c, payload, ctx, options),
        Item::Finding(f) => finding_message(f, payload, ctx, options),
    }
}

/// One RFC 5424 message carrying a finding: MSGID `finding`, its severity in PRI, the rule and
/// parties as structured data.
pub fn finding_message(f: &Finding, payload: &str, ctx: &Context, options: &Options) -> String {
    let pri = u16::from(options.facility.min(23)) * 8 + u16::from(finding_severity(f.severity));
    let mut sd = format!(
        "[{}",
        header_field(&options.sd_id, 32).replace(['=', ']', '"'], "_")
    );
    let mut param = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            sd.push_str(&format!(" {name}=\"{}\"", param_value(v)));
        }
    };
    param("uuid", Some(&f.id));
    param("org", Some(&ctx.org));
    param("rule", Some(f.rule.as_str()));
    param("severity", Some(f.severity.as_str()));
    param("user", f.user.as_ref().and_then(|u| u.login.as_deref()));
    param("actor", f.actor.as_ref().and_then(|a| a.login.as_deref()));
    sd.push(']');
    let msg: String = payload
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!(
        "<{pri}>1 {} {} {} - finding {sd} \u{feff}{msg}",
        format_published(&f.last_seen),
        header_field(&ctx.hostname, 255),
        header_field(PRODUCT, 48),
    )
}

/// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`, the length in octets.
pub fn frame(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// Cuts a message to at most `max` octets on a character boundary (UDP datagrams).
pub fn truncate(message: &str, max: usize) -> &str {
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A parsed RFC 5424 message (the strict parser used by tests and `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub pri: u16,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub sd_id: String,
    pub params: Vec<(String, String)>,
    pub msg: String,
}

pub fn parse(s: &str) -> Result<Parsed, super::ParseError> {
    let rest = s.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("unterminated PRI")?;
    let pri: u16 = pri.parse().map_err(|_| "PRI not a number")?;
    if pri > 191 {
        return Err("PRI over 191".into());
    }
    let rest = rest.strip_prefix("1 ").ok_or("not version 1")?;
    let mut fields = rest.splitn(6, ' ');
    let mut next = |name: &str, max: usize| -> Result<String, super::ParseError> {
        let f = fields.next().ok_or(format!("no {name}"))?;
        if f.is_empty() || f.len() > max || !f.chars().all(|c| ('!'..='~').contains(&c)) {
            return Err(super::ParseError(format!("bad {name} {f:?}")));
        }
        Ok(f.to_owned())
    };
    let timestamp = next("TIMESTAMP", 40)?;
    if timestamp != "-" {
        chrono::DateTime::parse_from_rfc3339(&timestamp).map_err(|e| format!("TIMESTAMP: {e}"))?;
    }
    let hostname = next("HOSTNAME", 255)?;
    let app_name = next("APP-NAME", 48)?;
    let procid = next("PROCID", 128)?;
    let msgid = next("MSGID", 32)?;
    let rest = fields.next().ok_or("no STRUCTURED-DATA")?;
    let rest = rest.strip_prefix('[').ok_or("expected one SD-ELEMENT")?;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let id_end = chars
        .iter()
        .position(|c| *c == ' ' || *c == ']')
        .ok_or("unterminated SD-ELEMENT")?;
    let sd_id: String = chars[..id_end].iter().collect();
    i = i.max(id_end);
    let mut params = Vec::new();
    loop {
        match chars.get(i) {
            Some(']') => {
                i += 1;
                break;
            }
            Some(' ') => {
                i += 1;
                let eq = chars[i..]
                    .iter()
                    .position(|c| *c == '=')
                    .ok_or("PARAM without '='")?
                    + i;
                let name: String = chars[i..eq].iter().collect();
                if name.is_empty() || name.len() > 32 || name.contains([' ', ']', '"']) {
                    return Err(super::ParseError(format!("bad PARAM-NAME {name:?}")));
                }
                if chars.get(eq + 1) != Some(&'"') {
                    return Err("PARAM-VALUE not quoted".into());
                }
                i = eq + 2;
                let mut value = String::new();
                loop {
                    match chars.get(i) {
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(c @ ('"' | '\\' | ']')) => value.push(*c),
                                Some(c) => {
                                    value.push('\\');
                                    value.push(*c);
                                }
                                None => return Err("dangling escape".into()),
                            }
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(']') => return Err("unescaped ']' in PARAM-VALUE".into()),
                        Some(c) => {
                            value.push(*c);
                            i += 1;
                        }
                        None => return Err("unterminated PARAM-VALUE".into()),
                    }
                }
                params.push((name, value));
            }
            _ => return Err("malformed SD-ELEMENT".into()),
        }
    }
    let msg: String = chars[i..].iter().collect();
    let msg = match msg.strip_prefix(' ') {
        Some(m) => m
            .strip_prefix('\u{feff}')
            .ok_or("MSG without BOM")?
            .to_owned(),
        None if msg.is_empty() => String::new(),
        None => return Err("no space before MSG".into()),
    };
    Ok(Parsed {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id,
        params,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::testing::{ctx, example};

    #[test]
    fn messages_follow_rfc_5424() {
        let m = message(&example(), "{\"a\":1}", &ctx(), &Options::default());
        let p = parse(&m).unwrap();
        assert_eq!(p.pri, 85, "authpriv.notice");
        assert_eq!(p.timestamp, "2026-01-01T00:00:00.123Z");
        assert_eq!(
            (p.hostname.as_str(), p.app_name.as_str()),
            ("relay01", "factorwatch")
        );
        assert_eq!(p.msgid, "user.mfa.factor.activate");
        assert_eq!(p.sd_id, "factorwatch@32473");
        assert!(
            p.params
                .contains(&("user".into(), "jdoe@example.com".into()))
        );
        assert_eq!(p.msg, "{\"a\":1}");
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let m = "<85>1 - - - - - - \u{feff}é…";
        assert_eq!(frame(m), format!("{} {m}", m.len()));
        assert!(m.len() > m.chars().count());
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn param_values_escape_what_rfc_5424_says() {
        let mut c = example();
        c.actor.as_mut().unwrap().login = Some("a\"b\\c]d\ne".into());
        let p = parse(&message(&c, "x", &ctx(), &Options::default())).unwrap();
        assert!(p.params.contains(&("actor".into(), "a\"b\\c]d e".into())));
    }
}
