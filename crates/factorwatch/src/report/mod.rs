//! "This wasn't me": the loop from a user's notice to a locked-down account. Every notice can
//! carry a single-use, expiring link ([`token`]); the page behind it ([`crate::web::not_me`])
//! shows the change and one button; pressing it stores a [`Report`] — a `reported_by_user`
//! finding for every SIEM sink and the security team, and the operator's chosen Okta steps
//! ([`Step`]), which the outbox carries out in order ([`response`]): retried, never lost, none
//! done twice.

pub mod response;
pub mod token;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::detect::finding::RecordType;
use crate::detect::{Finding, Party, RuleId, Severity};
use crate::record::MfaChange;

/// What notices need to carry the link: the keys, where the page is, how long a link works.
#[derive(Debug, Clone)]
pub struct Links {
    pub keys: token::Keys,
    /// `https://factorwatch.example.com` (no trailing slash needed).
    pub public_url: String,
    pub valid_for: chrono::Duration,
}

impl Links {
    /// A new link for `user`'s change `change` in `org`, working until `now + valid_for`.
    pub fn url(&self, org: &str, change: &str, user: &str, now: DateTime<Utc>) -> String {
        let token = self.keys.seal(&token::Claims {
            org: org.to_owned(),
            change: change.to_owned(),
            user: user.to_owned(),
            expires: (now + self.valid_for).timestamp(),
        });
        format!("{}/not-me/{token}", self.public_url.trim_end_matches('/'))
    }

    /// The link's life in whole days, rounded up (what notices say).
    pub fn days(&self) -> i64 {
        (self.valid_for.num_seconds() + 86_399) / 86_400
    }
}

/// What factorwatch asks Okta to do about a report, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `DELETE /api/v1/users/{id}/sessions?oauthTokens=true`: every session and OAuth token
    /// ends (the attacker is signed out).
    ClearSessions,
    /// `PUT /api/v1/users/{id}/risk` `HIGH` (Identity Threat Protection; not available
    /// elsewhere, which is said, not retried).
    RaiseRisk,
    /// `POST /api/v1/users/{id}/lifecycle/reset_factors`: the attacker's factor goes too.
    ResetFactors,
    /// `POST /api/v1/users/{id}/lifecycle/suspend`: nobody signs in until the help desk acts.
    Suspend,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::ClearSessions,
        Step::RaiseRisk,
        Step::ResetFactors,
        Step::Suspend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::ClearSessions => "clear_sessions",
            Step::RaiseRisk => "raise_risk",
            Step::ResetFactors => "reset_factors",
            Step::Suspend => "suspend",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What became of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum StepState {
    Pending,
    Done,
    /// The org cannot do it (no Identity Threat Protection): nothing to retry.
    NotAvailable(String),
    /// Okta refused for good (a missing scope, a user already gone); the security team was told
    /// by the finding, the outbox row is dead-lettered and can be re-driven.
    Failed(String),
}

/// One user's "this wasn't me", as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub org: String,
    /// The change the link was for.
    pub change_id: String,
    pub user_id: String,
    /// The `reported_by_user` finding it made.
    pub finding_id: String,
    #[serde(with = "crate::detect::finding::time")]
    pub reported_at: DateTime<Utc>,
    /// The operator's steps, in order, with what became of each.
    pub steps: Vec<(Step, StepState)>,
}

impl Report {
    /// Every step has an answer (done, not available or failed).
    pub fn settled(&self) -> bool {
        self.steps.iter().all(|(_, s)| *s != StepState::Pending)
    }

    pub fn state(&self, step: Step) -> Option<&StepState> {
        self.steps
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, st)| st)
    }
}

/// The finding a report makes: severity high, about the change's user, naming the change (and
/// whoever made it) and what factorwatch does about it. `reported_from` is the address the button
/// was pressed from (the security team may want to know whether the attacker holds the mailbox).
pub fn finding(
    org: &str,
    change: &MfaChange,
    reported_at: DateTime<Utc>,
    reported_from: Option<std::net::IpAddr>,
    steps: &[Step],
) -> Finding {
    use sha2::{Digest, Sha256};
    let change_id = change.id.to_wire();
    let user = change.user.as_ref().map(|u| Party {
        id: u.id.clone(),
        login: u.login.clone(),
        display_name: None,
        kind: Some("User".into()),
    });
    let actor = change.actor.as_ref().map(|a| Party {
        id: a.id.clone(),
        login: a.login.clone(),
        display_name: None,
        kind: a.actor_type.clone(),
    });
    let digest = Sha256::digest(format!(
        "{}\n{org}\n{}\n{change_id}",
        RuleId::ReportedByUser.as_str(),
        user.as_ref()
            .and_then(|u| u.id.as_deref())
            .unwrap_or_default()
    ));
    let id = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let published = change.published.unwrap_or(reported_at);
    let who = crate::detect::finding::who(user.as_ref());
    let by = crate::detect::finding::who(actor.as_ref());
    let factor =
        crate::detect::finding::factor_label(crate::classify::factor::Kind::of(&change.factor));
    let from = change
        .client
        .ip
        .as_deref()
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| format!(" from {ip}"))
        .unwrap_or_default();
    let doing = if steps.is_empty() {
        "No automatic response is configured".to_owned()
    } else {
        format!(
            "factorwatch is asking Okta to {}",
            steps
                .iter()
                .map(|s| match s {
                    Step::ClearSessions => "clear the user's sessions and OAuth tokens",
                    Step::RaiseRisk => "raise the user's risk to HIGH",
                    Step::ResetFactors => "reset the user's factors",
                    Step::Suspend => "suspend the user",
                })
                .collect::<Vec<_>>()
                .join(", then ")
        )
    };
    let summary = format!(
        "{who} reported through factorwatch's \"this wasn't me\" link, at {}, that they did not make this change: {} of {factor} by {by}{from} at {}. {doing}. Treat the account as taken over: contact the user through a channel you already trust, review what the account did since {}, and remove factors the user does not recognise.",
        crate::detect::finding::at(&reported_at),
        change.action.as_str().replace('_', " "),
        crate::detect::finding::at(&published),
        crate::detect::finding::at(&published),
    );
    let mut details = serde_json::Map::new();
    details.insert("change_id".into(), change_id.clone().into());
    details.insert("action".into(), change.action.as_str().into());
    details.insert(
        "steps".into(),
        steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().into(),
    );
    if let Some(ip) = reported_from {
        details.insert("reported_from".into(), ip.to_string().into());
    }
    Finding {
        record_type: RecordType::Finding,
        id,
        rule: RuleId::ReportedByUser,
        severity: Severity::High,
        title: RuleId::ReportedByUser.title().to_owned(),
        user,
        actor,
        first_seen: published.min(reported_at),
        last_seen: reported_at,
        event_ids: vec![change_id],
        summary,
        details,
    }
}
