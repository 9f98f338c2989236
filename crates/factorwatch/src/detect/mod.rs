//! The detections: account takeover seen as a *sequence* of MFA changes and their context — a
//! help-desk reset then an enrollment from a new place, a phishing-resistant factor traded for
//! SMS, one actor resetting many users — each turned into a [`Finding`] an analyst and the user
//! can act on. `docs/detections.md` states every rule's logic and sources.
//!
//! Pure: a [`Detector`] is fed [`Signal`]s (from [`signal`]) and answers findings; it has no
//! clock but the events' `published` times (its *watermark*, the newest seen), so the same
//! events give the same findings live, after a restart, or over an export. Windowed rules that
//! wait for nothing to happen (`mfa_left_off`) fire once the watermark passes their deadline.
//! The daemon's journal and worker ([`crate::pipeline::detection`]) and `factorwatch detect` feed
//! it.

pub mod finding;
pub mod history;
pub mod rules;
pub mod signal;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use finding::Finding;
pub use signal::{Party, PhoneKey, Place, Signal, What};

/// The rules, by the id every output names them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    ResetThenEnrollNewPlace,
    FactorDowngrade,
    BulkAdminReset,
    SharedPhone,
    SharedDevice,
    SupportInitiatedReset,
    MfaLeftOff,
    BypassBurst,
    ReportedNotMe,
    /// Not a rule: the user said "this wasn't me" through the link in factorwatch's notice
    /// ([`crate::report`]). Not in [`RuleId::ALL`] (nothing to configure).
    ReportedByUser,
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One rule's settings (`[detections.rules.<id>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSettings {
    pub enabled: bool,
    /// How far apart the events of one sequence may be.
    pub window: chrono::Duration,
    /// How many (users, attempts) make a sequence, for the rules that count.
    pub threshold: u32,
    pub severity: Severity,
}

impl RuleId {
    pub const ALL: [RuleId; 9] = [
        RuleId::ResetThenEnrollNewPlace,
        RuleId::FactorDowngrade,
        RuleId::BulkAdminReset,
        RuleId::SharedPhone,
        RuleId::SharedDevice,
        RuleId::SupportInitiatedReset,
        RuleId::MfaLeftOff,
        RuleId::BypassBurst,
        RuleId::ReportedNotMe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::ResetThenEnrollNewPlace => "reset_then_enroll_new_place",
            RuleId::FactorDowngrade => "factor_downgrade",
            RuleId::BulkAdminReset => "bulk_admin_reset",
            RuleId::SharedPhone => "shared_phone",
            RuleId::SharedDevice => "shared_device",
            RuleId::SupportInitiatedReset => "support_initiated_reset",
            RuleId::MfaLeftOff => "mfa_left_off",
            RuleId::BypassBurst => "bypass_burst",
            RuleId::ReportedNotMe => "reported_not_me",
            RuleId::ReportedByUser => "reported_by_user",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            RuleId::ResetThenEnrollNewPlace => "MFA reset, then a factor enrolled from a new place",
            RuleId::FactorDowngrade => "Phishing-resistant MFA replaced by weaker factors",
            RuleId::BulkAdminReset => "One actor reset the MFA of many users",
            RuleId::SharedPhone => "One phone number enrolled for several users",
            RuleId::SharedDevice => "One Okta Verify device enrolled for several users",
            RuleId::SupportInitiatedReset => "MFA reset by Okta Support or through impersonation",
            RuleId::MfaLeftOff => "MFA removed and not enrolled again",
            RuleId::BypassBurst => "Repeated attempts to bypass MFA",
            RuleId::ReportedNotMe => "User reported suspicious activity after an MFA change",
            RuleId::ReportedByUser => "User reported an MFA change as not theirs",
        }
    }

    /// The defaults (`docs/detections.md` gives the reasons).
    pub fn defaults(self) -> RuleSettings {
        let (window, threshold, severity) = match self {
            RuleId::ResetThenEnrollNewPlace => (chrono::Duration::hours(1), 1, Severity::High),
            RuleId::FactorDowngrade => (chrono::Duration::hours(24), 1, Severity::Medium),
            RuleId::BulkAdminReset => (chrono::Duration::minutes(15), 5, Severity::High),
            RuleId::SharedPhone => (chrono::Duration::days(30), 2, Severity::High),
            RuleId::SharedDevice => (chrono::Duration::days(30), 2, Severity::Medium),
            // The window is how long an impersonation lasts unless Okta logs its end.
            RuleId::SupportInitiatedReset => (chrono::Duration::hours(8), 1, Severity::High),
            RuleId::MfaLeftOff => (chrono::Duration::hours(12), 1, Severity::Medium),
            RuleId::BypassBurst => (chrono::Duration::minutes(10), 3, Severity::High),
            RuleId::ReportedNotMe => (chrono::Duration::days(7), 1, Severity::High),
            RuleId::ReportedByUser => (chrono::Duration::zero(), 1, Severity::High),
        };
        RuleSettings {
            enabled: true,
            window,
            threshold,
            severity,
        }
    }

    /// Whether `threshold` means anything for this rule.
    pub fn counts(self) -> bool {
        matches!(
            self,
            RuleId::BulkAdminReset
                | RuleId::SharedPhone
                | RuleId::SharedDevice
                | RuleId::BypassBurst
        )
    }

    pub fn parse(name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// Every rule's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    rules: BTreeMap<RuleId, RuleSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: RuleId::ALL.into_iter().map(|r| (r, r.defaults())).collect(),
        }
    }
}

impl Settings {
    pub fn get(&self, rule: RuleId) -> RuleSettings {
        self.rules.get(&rule).copied().unwrap_or(rule.defaults())
    }

    pub fn set(&mut self, rule: RuleId, settings: RuleSettings) {
        self.rules.insert(rule, settings);
    }

    /// The longest window of a rule that is on (how much of the journal a restart replays).
    pub fn longest_window(&self) -> chrono::Duration {
        self.rules
            .values()
            .filter(|s| s.enabled)
            .map(|s| s.window)
            .max()
            .unwrap_or_default()
    }
}

/// The rules and what they remember.
pub struct Detector {
    rules: Vec<Box<dyn rules::Rule>>,
    history: history::History,
    watermark: Option<DateTime<Utc>>,
    /// When the rules and the history last forgot what no window reaches.
    pruned: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rules.len())
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl Detector {
    pub fn new(settings: &Settings) -> Detector {
        Detector {
            rules: rules::build(settings),
            history: history::History::default(),
            watermark: None,
            pruned: None,
        }
    }

    /// The newest `published` seen: the detections' clock.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    /// Sees one signal; returns the findings it completes (and those whose deadline it passed).
    /// Signals may come out of order: each rule checks both ways in time.
    pub fn observe(&mut self, s: &Signal) -> Vec<Finding> {
        self.observe_journal(s).0
    }

    /// [`Detector::observe`], and whether the journal must keep the signal to give the same
    /// state when read again: a sign-in that taught the history nothing (a place already seen
    /// earlier that day) need not be kept — no rule reads sign-ins but through the history.
    pub fn observe_journal(&mut self, s: &Signal) -> (Vec<Finding>, bool) {
        let mut out = Vec::new();
        if self.watermark.is_none_or(|w| s.published > w) {
            // The clock moves first: a deadline this event passes fired before it.
            self.watermark = Some(s.published);
            self.advance_to(s.published, &mut out);
        }
        for rule in &mut self.rules {
            rule.observe(s, &self.history, &mut out);
        }
        let learnt = self.history.learn(s);
        (out, learnt || s.what != What::SignIn)
    }

    /// Moves the clock to `now` without an event (the daemon, when every source is caught up
    /// to it); fires what is due.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.watermark.is_none_or(|w| now > w) {
            self.watermark = Some(now);
            self.advance_to(now, &mut out);
        }
        out
    }

    fn advance_to(&mut self, now: DateTime<Utc>, out: &mut Vec<Finding>) {
        for rule in &mut self.rules {
            rule.advance(now, &self.history, out);
        }
        // Forgetting walks every user: hourly in the events' time (the rules keep a day past
        // their windows for late events; the history keeps days).
        if self
            .pruned
            .is_none_or(|p| now - p > chrono::Duration::hours(1))
        {
            for rule in &mut self.rules {
                rule.prune(now);
            }
            self.history.prune(now);
            self.pruned = Some(now);
        }
    }

    /// Users whose history is kept.
    pub fn users(&self) -> usize {
        self.history.users()
    }

    /// Bytes held by the history and the rules' open sequences, approximately.
    pub fn approx_bytes(&self) -> usize {
        self.history.approx_bytes() + self.rules.iter().map(|r| r.approx_bytes()).sum::<usize>()
    }
}
