//! The classifier: any Okta event in, an [`MfaChange`] or nothing out. Pure: no I/O, no clock.

pub mod factor;
pub mod initiator;

use std::collections::HashSet;

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::okta::catalog;
use crate::okta::factors::Provider;
use crate::okta::legacy_event::LegacyEvent;
use crate::okta::log_event::{IpChainEntry, LogEvent, Subject};
use crate::okta::{self, Shape, ShapeError, TimestampError};
use crate::record::{Action, Actor, Client, EventId, MfaChange, Person, Source};
use factor::Signal;

/// What the classifier may be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Providers whose enrollments Okta owns (`factor.okta_authoritative`).
    pub okta_authoritative: HashSet<Provider>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            okta_authoritative: Provider::DEFAULT_OKTA_AUTHORITATIVE.into_iter().collect(),
        }
    }
}

/// Why one JSON value yielded no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("malformed {event_type} event: {detail}")]
    Malformed { event_type: String, detail: String },
    #[error("{event_type} event: {source}")]
    BadTimestamp {
        event_type: String,
        source: TimestampError,
    },
}

/// One classified event: the change, and the exact text of the event it came from.
#[derive(Debug, Clone)]
pub struct Classified<'a> {
    pub change: MfaChange,
    pub raw: &'a str,
    /// The System Log event it was read from (none from the Events API): the detections read
    /// it again otherwise.
    pub event: Option<Box<LogEvent>>,
}

/// Where within one JSON value a verdict belongs: the value itself, or event `i` of the Event Hook
/// delivery it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Within {
    Whole,
    HookEvent(usize),
}

#[derive(Debug, Clone, Default)]
pub struct Classifier {
    config: Config,
}

impl Classifier {
    pub fn new(config: Config) -> Self {
        Classifier { config }
    }

    /// Classifies the text of one JSON value of any supported shape (validating it on the way).
    /// `emit` is called once per verdict that matters, in order: once for a change or an error,
    /// never for an event that is not an MFA change; an Event Hook delivery yields a verdict per
    /// event.
    pub fn classify_json<'a>(
        &self,
        json: &'a str,
        mut emit: impl FnMut(Within, Result<Classified<'a>, ClassifyError>),
    ) {
        match okta::sniff(json) {
            Err(e) => emit(Within::Whole, Err(e.into())),
            Ok(Shape::SystemLog { event_type }) => {
                if let Some(verdict) = self.system_log(json, &event_type, Source::SystemLog) {
                    emit(Within::Whole, verdict);
                }
            }
            Ok(Shape::EventHook { events }) => {
                for (i, event) in events.into_iter().map(RawValue::get).enumerate() {
                    let verdict = match okta::sniff(event) {
                        Ok(Shape::SystemLog { event_type }) => {
                            self.system_log(event, &event_type, Source::EventHook)
                        }
                        Ok(_) => Some(Err(ClassifyError::Shape(ShapeError::NotOkta(
                            "an Event Hook delivery's events must be System Log events".into(),
                        )))),
                        Err(e) => Some(Err(e.into())),
                    };
                    if let Some(verdict) = verdict {
                        emit(Within::HookEvent(i), verdict);
                    }
                }
            }
            Ok(Shape::EventsApi { object_type }) => {
                if let Some(verdict) = self.events_api(json, &object_type) {
                    emit(Within::Whole, verdict);
                }
            }
        }
    }

    /// Classifies a System Log event whose `eventType` is already known
    /// ([`okta::event_type_of`]): None when it is not an MFA change.
    pub fn classify_log_json<'a>(
        &self,
        json: &'a str,
        event_type: &str,
    ) -> Option<Result<Classified<'a>, ClassifyError>> {
        self.system_log(json, event_type, Source::SystemLog)
    }

    fn system_log<'a>(
        &self,
        json: &'a str,
        event_type: &str,
        source: Source,
    ) -> Option<Result<Classified<'a>, ClassifyError>> {
        let action = catalog::action(event_type)?;
        let event = match LogEvent::parse(json) {
            Ok(event) => event,
            Err(e) => return Some(Err(malformed(event_type, e))),
        };
        Some(
            self.log_change(&event, action, source, json)
                .map(|change| Classified {
                    change,
                    raw: json,
                    event: Some(Box::new(event)),
                }),
        )
    }

    fn events_api<'a>(
        &self,
        json: &'a str,
        object_type: &str,
    ) -> Option<Result<Classified<'a>, ClassifyError>> {
        let event_type = catalog::from_legacy(object_type)?.name;
        let action = catalog::action(event_type)?;
        Some(
            serde_json::from_str(json)
                .map_err(|e| malformed(event_type, e))
                .and_then(|event| self.legacy_change(&event, event_type, action, json))
                .map(|change| Classified {
                    change,
                    raw: json,
                    event: None,
                }),
        )
    }

    /// Classifies a parsed System Log event. `raw` is its text, used only to give an id to an event
    /// that lacks its `uuid`.
    pub fn classify_log_event(
        &self,
        event: &LogEvent,
        source: Source,
        raw: &str,
    ) -> Result<Option<MfaChange>, ClassifyError> {
        match catalog::action(&event.event_type) {
            Some(action) => self.log_change(event, action, source, raw).map(Some),
            None => Ok(None),
        }
    }

    fn log_change(
        &self,
        event: &LogEvent,
        action: Action,
        source: Source,
        raw: &str,
    ) -> Result<MfaChange, ClassifyError> {
        let published = parse_published(event.published.as_deref(), &event.event_type)?;

        let user = (!action.is_org_level())
            .then(|| event.target.iter().find(|t| t.is_type("User")))
            .flatten()
            .map(|t| Person {
                id: t.id.clone(),
                login: t.alternate_id.clone(),
                display_name: t.display_name.clone(),
            });
        let actor = event.actor.as_ref().map(|a| Actor {
            id: a.id.clone(),
            login: a.alternate_id.clone(),
            display_name: a.display_name.clone(),
            actor_type: a.kind.clone(),
        });

        let debug = event
            .debug_context
            .as_ref()
            .and_then(|d| d.debug_data.as_ref());
        let reason = event.outcome.as_ref().and_then(|o| o.reason.clone());
        // Most specific first: the enrolled authenticator itself, then Okta's reason sentence,
        // then debugData, then the factor targets of org-level events.
        let authenticators = event
            .target
            .iter()
            .filter(|t| t.kind.as_deref().is_some_and(is_authenticator_target))
            .filter_map(|t| t.display_name.as_deref());
        let from_reason = reason.as_deref().and_then(factor::named_in_sentence);
        let from_debug = debug
            .into_iter()
            .flat_map(|d| [&d.factor, &d.factor_type])
            .flatten();
        let from_details = event.target.iter().filter_map(detail_factor_type);
        let signals = authenticators
            .chain(from_reason)
            .chain(from_debug.map(String::as_str))
            .chain(from_details)
            .map(Signal);
        let phone = debug.and_then(|d| d.phone_number.as_deref());
        let factor = factor::resolve(signals, phone, &self.config.okta_authoritative);

        let client = event.client.as_ref();
        let chain_ip = |chain: &[IpChainEntry]| chain.first().and_then(|e| e.ip.clone());
        let geo = client.and_then(|c| c.geographical_context.as_ref());
        let user_agent = client.and_then(|c| c.user_agent.as_ref());
        let client = Client {
            ip: client
                .and_then(|c| c.ip_address.clone().or_else(|| chain_ip(&c.ip_chain)))
                .or_else(|| event.request.as_ref().and_then(|r| chain_ip(&r.ip_chain))),
            user_agent: user_agent.and_then(|u| u.raw_user_agent.clone()),
            browser: user_agent.and_then(|u| u.browser.clone()),
            os: user_agent.and_then(|u| u.os.clone()),
            city: geo.and_then(|g| g.city.clone()),
            state: geo.and_then(|g| g.state.clone()),
            country: geo.and_then(|g| g.country.clone()),
        };

        Ok(MfaChange {
            id: event_id(event.uuid.as_deref(), raw),
            source,
            published,
            event_type: event.event_type.clone(),
            legacy_event_type: event.legacy_event_type.clone(),
            action,
            outcome: event.outcome.as_ref().and_then(|o| o.result.clone()),
            initiator: initiator::decide(actor.as_ref(), user.as_ref()),
            factor,
            user,
            actor,
            client,
            reason,
            message: event.display_message.clone(),
            session_id: event
                .authentication_context
                .as_ref()
                .and_then(|a| a.external_session_id.clone()),
        })
    }

    /// Classifies a parsed legacy Events API event, mapped onto the System Log vocabulary the way
    /// Okta's migration guide maps its fields.
    pub fn classify_legacy_event(
        &self,
        event: &LegacyEvent,
        raw: &str,
    ) -> Result<Option<MfaChange>, ClassifyError> {
        let event_type = catalog::from_legacy(&event.action.object_type).map(|t| t.name);
        match event_type.and_then(|et| Some((et, catalog::action(et)?))) {
            Some((event_type, action)) => {
                self.legacy_change(event, event_type, action, raw).map(Some)
            }
            None => Ok(None),
        }
    }

    fn legacy_change(
        &self,
        event: &LegacyEvent,
        event_type: &str,
        action: Action,
        raw: &str,
    ) -> Result<MfaChange, ClassifyError> {
        let object_type = &event.action.object_type;
        let published = parse_published(event.published.as_deref(), event_type)?;

        let user = event
            .targets
            .first()
            .filter(|t| t.object_type.is_none() || t.is_type("User"))
            .map(|t| Person {
                id: t.id.clone(),
                login: t.login.clone(),
                display_name: t.display_name.clone(),
            });
        // `actors[]` holds the acting principal and, separately, the `Client` (browser).
        let actor = event
            .actors
            .iter()
            .find(|a| !a.is_type("Client"))
            .map(|a| Actor {
                id: a.id.clone(),
                login: a.login.clone(),
                display_name: a.display_name.clone(),
                actor_type: a.object_type.clone(),
            });
        let browser = event.actors.iter().find(|a| a.is_type("Client"));

        let message = event.action.message.clone();
        let signals = message
            .as_deref()
            .and_then(factor::named_in_sentence)
            .map(Signal);
        let factor = factor::resolve(signals, None, &self.config.okta_authoritative);

        Ok(MfaChange {
            id: event_id(event.event_id.as_deref(), raw),
            source: Source::EventsApi,
            published,
            event_type: event_type.to_owned(),
            legacy_event_type: Some(object_type.clone()),
            action,
            // The Events API logged these objectTypes only once the change was made; failures had
            // objectTypes of their own.
            outcome: (action != Action::BypassAttempted).then(|| "SUCCESS".to_owned()),
            initiator: initiator::decide(actor.as_ref(), user.as_ref()),
            factor,
            user,
            actor,
            client: Client {
                ip: browser.and_then(|b| b.ip_address.clone()),
                user_agent: browser.and_then(|b| b.id.clone()),
                browser: browser.and_then(|b| b.display_name.clone()),
                ..Client::default()
            },
            reason: None,
            message,
            session_id: event.session_id.clone(),
        })
    }
}

/// Target types that are an authenticator: `AuthenticatorEnrollment` on a user's enrollment,
/// `Authenticator`-like types on org-level authenticator changes.
fn is_authenticator_target(kind: &str) -> bool {
    kind.to_ascii_lowercase().contains("authenticator")
}

/// `detailEntry.factorType` of a target (org-level `system.mfa.factor.*` events).
fn detail_factor_type(target: &Subject) -> Option<&str> {
    target.detail_entry.as_ref()?.get("factorType")?.as_str()
}

fn parse_published(
    published: Option<&str>,
    event_type: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ClassifyError> {
    published
        .map(okta::parse_timestamp)
        .transpose()
        .map_err(|source| ClassifyError::BadTimestamp {
            event_type: event_type.to_owned(),
            source,
        })
}

/// Okta's id for an event, or a digest of its text when it has none.
pub fn event_id(okta_id: Option<&str>, raw: &str) -> EventId {
    match okta_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => EventId::Okta(id.to_owned()),
        None => {
            let digest = Sha256::digest(raw.as_bytes());
            EventId::Digest(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
    }
}

fn malformed(event_type: &str, e: serde_json::Error) -> ClassifyError {
    ClassifyError::Malformed {
        event_type: event_type.to_owned(),
        detail: e.to_string(),
    }
}
