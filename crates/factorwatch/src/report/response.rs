//! Carrying out a report's Okta steps: an outbox destination (so each call is durable like any
//! delivery: retried while Okta is down, never lost across a crash) that runs the report's steps
//! in order and records each step's answer as soon as it has it, so a retry repeats none that
//! succeeded. A crash between Okta's answer and that record can repeat one step: every step is
//! idempotent in effect (sessions already cleared, factors already reset, risk already high;
//! a second suspend is refused and read as done).

use std::collections::HashMap;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Step, StepState};
use crate::okta::client::{ClientError, OktaClient};
use crate::pipeline::worker::{Destination, Outcome};
use crate::record::Item;
use crate::store::{Due, Store};

/// The outbox's name for the Okta steps of reports.
pub const RESPONSE: &str = "okta:response";

pub struct ResponseDestination<S: Store> {
    store: S,
    /// Per org: its client.
    clients: HashMap<String, Arc<OktaClient>>,
}

impl<S: Store> ResponseDestination<S> {
    pub fn new(store: S, clients: HashMap<String, Arc<OktaClient>>) -> Self {
        ResponseDestination { store, clients }
    }

    async fn one(&self, row: &Due) -> Outcome {
        let finding = match &row.item {
            Ok(Item::Finding(f)) if f.rule == crate::detect::RuleId::ReportedByUser => f,
            Ok(_) => return Outcome::Reject("only a user's report asks Okta for anything".into()),
            Err(e) => return Outcome::Reject(e.clone()),
        };
        let mut report = match self.store.report_for_finding(&row.org, &finding.id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Reject("the report behind this finding is missing".into()),
            Err(e) => return Outcome::Unavailable(e.to_string()),
        };
        let Some(client) = self.clients.get(&row.org) else {
            return Outcome::Reject(format!("no Okta org named {} is configured", row.org));
        };
        if !crate::enrich::okta_id(&report.user_id) {
            return Outcome::Reject("the report names no valid Okta user id".into());
        }
        let mut failed = Vec::new();
        for i in 0..report.steps.len() {
            let (step, state) = report.steps[i].clone();
            // Done and not-available steps are never asked again; a failed one is asked again
            // when an operator re-drives the row.
            if matches!(state, StepState::Done | StepState::NotAvailable(_)) {
                continue;
            }
            let answer = perform(client, step, &report.user_id).await;
            let new = match answer {
                Ok(s) => s,
                Err(e) if e.is_transient() => {
                    return Outcome::Unavailable(format!("{}: {e}", step.as_str()));
                }
                Err(e) => StepState::Failed(e.to_string()),
            };
            match &new {
                StepState::Done => {
                    info!(org = %row.org, step = step.as_str(), "report: Okta step done");
                }
                StepState::Failed(why) => {
                    warn!(org = %row.org, step = step.as_str(), error = %why, "report: Okta refused a step");
                    failed.push(format!("{}: {why}", step.as_str()));
                }
                _ => {}
            }
            report.steps[i].1 = new;
            if let Err(e) = self
                .store
                .save_report_steps(&row.org, &report.finding_id, &report.steps)
                .await
            {
                // Okta acted but the store did not keep it: the step is asked again (idempotent).
                return Outcome::Unavailable(e.to_string());
            }
        }
        if failed.is_empty() {
            Outcome::Delivered
        } else {
            Outcome::Reject(failed.join("; "))
        }
    }
}

fn path_id(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Asks Okta for one step. Ok: what became of it; Err: Okta's error (transient or not).
async fn perform(client: &OktaClient, step: Step, user_id: &str) -> Result<StepState, ClientError> {
    let user = format!("/api/v1/users/{}", path_id(user_id));
    match step {
        Step::ClearSessions => {
            client
                .delete(&format!("{user}/sessions?oauthTokens=true"))
                .await?;
            Ok(StepState::Done)
        }
        Step::RaiseRisk => {
            match client
                .put(&format!("{user}/risk"), r#"{"riskLevel":"HIGH"}"#)
                .await
            {
                Ok(_) => Ok(StepState::Done),
                // E0000015: the org does not have the feature (Identity Threat Protection).
                Err(ClientError::Okta { code, .. }) if code == "E0000015" => {
                    Ok(StepState::NotAvailable(
                        "the org has no Identity Threat Protection (User Risk API)".into(),
                    ))
                }
                Err(e) => Err(e),
            }
        }
        Step::ResetFactors => {
            client
                .post(&format!("{user}/lifecycle/reset_factors"), "")
                .await?;
            Ok(StepState::Done)
        }
        Step::Suspend => {
            match client.post(&format!("{user}/lifecycle/suspend"), "").await {
                Ok(_) => Ok(StepState::Done),
                // Refused because the user is not active: if that is because they are suspended
                // already (this step's earlier attempt, or an admin), it is done.
                Err(e @ ClientError::Okta { status: 400, .. }) => {
                    let page = client.get(&user).await?;
                    let status = serde_json::from_str::<serde_json::Value>(&page.body)
                        .ok()
                        .and_then(|u| u["status"].as_str().map(str::to_owned));
                    if status.as_deref() == Some("SUSPENDED") {
                        Ok(StepState::Done)
                    } else {
                        Err(e)
                    }
                }
                Err(e) => Err(e),
            }
        }
    }
}

impl<S: Store> Destination for ResponseDestination<S> {
    fn name(&self) -> &str {
        RESPONSE
    }

    fn batch_size(&self) -> u32 {
        10
    }

    /// One report at a time, each in order: the steps of one user must not interleave.
    async fn deliver(&self, rows: &[Due]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.one(row).await);
        }
        out
    }
}
