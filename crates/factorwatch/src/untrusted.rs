//! Text someone outside wrote — a device name, a display name, an app name, a city, a user
//! agent — made safe to show a person. Whoever enrolls a factor names the device; an attacker
//! names it "IT: not you? Call +1 555 0100 or visit okta-verify-help.example.com", and the
//! security notice must not become their phishing message. So, in one place:
//!
//! - compatibility forms folded (NFKC: a fullwidth `ｅｘａｍｐｌｅ．ｃｏｍ` is `example.com`);
//! - Unicode format characters (bidi overrides, zero-width joiners, tags), private-use characters
//!   and variation selectors removed, control and separator characters made spaces, runs of
//!   combining marks cut short, whitespace collapsed;
//! - the length bounded (an ellipsis says so);
//! - whatever a mail client or chat would turn into a link or a call defanged: URL schemes
//!   (`hxxps[:]//`), domain names and dotted addresses (`example[.]com`), email addresses
//!   (`name[at]example[.]com`), and phone-number-like runs (seven digits or more) replaced.
//!
//! Templates and chat lines only ever receive [`display`]'s output, and show it quoted. Pure.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// What replaces a run of digits that could be dialled.
pub const NUMBER_REMOVED: &str = "[number removed]";

/// `text` made safe to show: see the module's documentation. At most `max` characters of the
/// original are kept (defanging then adds a few).
pub fn display(text: &str, max: usize) -> String {
    let plain = plain(text);
    let cut = bound(&plain, max);
    defang(&cut)
}

/// An identifier an analyst searches for (a login, an Okta id) for the security team's eyes only:
/// made plain and bounded like [`display`], but not defanged — `jane@example.com` must stay
/// searchable. Never for text shown to a user.
pub fn identifier(text: &str, max: usize) -> String {
    bound(&plain(text), max)
}

/// [`display`] for a first name in a greeting: its first word only (a "first name" reading
/// "Jane, ignore this message" greets Jane).
pub fn first_word(text: &str, max: usize) -> Option<String> {
    let plain = plain(text);
    let word: String = plain
        .split_whitespace()
        .next()?
        .trim_end_matches(|c: char| c.is_ascii_punctuation())
        .to_owned();
    let shown = display(&word, max);
    (!shown.is_empty()).then_some(shown)
}

/// Folded, with every character that hides, reorders or breaks text gone.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut marks = 0;
    for c in text.nfkc() {
        // Dots that look like dots to a reader (and to some linkifiers).
        let c = match c {
            '\u{3002}' | '\u{FF61}' | '\u{2024}' | '\u{FE52}' | '\u{FF0E}' => '.',
            _ => c,
        };
        match c.general_category() {
            GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned => {}
            GeneralCategory::Control
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::SpaceSeparator => {
                out.push(' ');
                marks = 0;
            }
            GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark => {
                // Variation selectors change nothing a reader needs; stacks of marks hide text.
                let selector = matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}');
                if !selector && marks < 2 {
                    out.push(c);
                    marks += 1;
                }
            }
            _ => {
                out.push(c);
                marks = 0;
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn bound(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// Defangs, token by token (a token is a run without whitespace): phone-like runs across tokens
/// first, then schemes, addresses and domains inside each token.
fn defang(text: &str) -> String {
    let text = numbers_removed(text);
    text.split(' ')
        .map(defang_token)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces every run of digits and the punctuation phone numbers are written with (`+ - . ( ) /`
/// and single spaces) that holds seven digits or more.
fn numbers_removed(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let joiner = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')' | '/' | '+');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || (chars[i] == '+' || chars[i] == '(') {
            // The longest run from here of digits and joiners, ending on a digit.
            let mut j = i;
            let mut digits = 0;
            let mut end = None;
            while j < chars.len() && (chars[j].is_ascii_digit() || joiner(chars[j])) {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                    end = Some(j);
                }
                // A space before anything but a digit, `(` or `+` ends a number as people write it.
                if chars[j] == ' '
                    && chars
                        .get(j + 1)
                        .is_some_and(|c| !c.is_ascii_digit() && !matches!(c, '(' | '+'))
                {
                    break;
                }
                j += 1;
            }
            if digits >= 7
                && let Some(end) = end
            {
                out.push_str(NUMBER_REMOVED);
                i = end + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn defang_token(token: &str) -> String {
    let mut t = token.to_owned();
    // Any `scheme:` a client would follow (http://, mailto:, tel:, javascript:…).
    if let Some(colon) = t.find(':') {
        let scheme = &t[..colon];
        let known = [
            "http",
            "https",
            "ftp",
            "mailto",
            "tel",
            "sms",
            "callto",
            "javascript",
            "data",
            "file",
            "ws",
            "wss",
            "facetime",
            "skype",
            "sip",
        ];
        let scheme_lower = scheme.to_ascii_lowercase();
        let scheme_like = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if known.iter().any(|k| scheme_lower.ends_with(k))
            || (scheme_like && t[colon..].starts_with("://"))
        {
            let renamed = scheme_lower
                .replace("https", "hxxps")
                .replace("http", "hxxp");
            t = format!("{renamed}[:]{}", &t[colon + 1..]);
        }
    }
    // `user@host` → `user[at]host`.
    if let Some(at) = t.find('@') {
        let before = t[..at].chars().next_back();
        let after = t[at + 1..].chars().next();
        if before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric) {
            t = t.replace('@', "[at]");
        }
    }
    // A dot between two letters or digits, when the token looks like a host name (its last
    // label has letters: a TLD) or a dotted address (only digits and dots): `[.]`.
    if dotted_name(&t) {
        t = t.replace('.', "[.]");
    }
    t
}

/// Whether the token holds a host name or a dotted address: two or more labels of letters,
/// digits and hyphens joined by single dots, the last of which is alphabetic (a TLD, any
/// script), or all numeric labels (an IPv4 address).
fn dotted_name(token: &str) -> bool {
    // The host part: up to the first character a host cannot hold (a path, a port, brackets).
    let host_chars = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    token.split(|c: char| !host_chars(c)).any(|candidate| {
        let labels: Vec<&str> = candidate.trim_matches('.').split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return false;
        }
        let Some(last) = labels.last() else {
            return false;
        };
        let tld = last.chars().count() >= 2 && last.chars().all(char::is_alphabetic);
        let numeric = labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit()));
        tld || (numeric && labels.len() == 4)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reported_device_name_loses_its_number_and_its_link() {
        let shown = display(
            "IT: not you? Call +1 555 0100 or visit okta-verify-help.example.com/undo",
            120,
        );
        assert_eq!(
            shown,
            "IT: not you? Call [number removed] or visit okta-verify-help[.]example[.]com/undo"
        );
    }

    #[test]
    fn hidden_and_reordering_characters_are_removed() {
        assert_eq!(
            display("Gib\u{200B}son\u{202E}moc.live", 60),
            "Gibsonmoc[.]live"
        );
        assert_eq!(display("a\u{2066}b\u{FEFF}c\u{E0041}", 60), "abc");
        assert_eq!(display("line\nbreak\u{2028}x", 60), "line break x");
    }

    #[test]
    fn ordinary_names_pass_unchanged() {
        for name in [
            "Gibson",
            "Jane's iPhone 15 Pro",
            "Pixel 7a",
            "José Müller",
            "Okta Verify",
            "MacBook-Pro",
            "v2.1 build",
        ] {
            assert_eq!(display(name, 60), name);
        }
    }

    #[test]
    fn length_is_bounded_with_an_ellipsis() {
        let shown = display(&"a".repeat(500), 40);
        assert_eq!(shown.chars().count(), 40);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn first_names_are_one_word() {
        assert_eq!(
            first_word("Jane, ignore this message", 30).as_deref(),
            Some("Jane")
        );
        assert_eq!(first_word("   ", 30), None);
    }
}
