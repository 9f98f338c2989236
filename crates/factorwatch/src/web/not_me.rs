//! `GET /not-me/<token>`: what happened (the notice's masked facts, in the user's language and
//! time zone) and one button; `POST` to the same URL acts — only the POST, since mail scanners
//! open links. The POST must carry the form's check (bound to the token, made by the server) and,
//! when the browser says where it comes from (`Origin`, `Sec-Fetch-Site`), come from this page.
//! Each link and each client address has a request budget per minute. A link works once: the
//! store keeps one report per (org, change, user); used, expired, altered and foreign links each
//! get a plain page and change nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use tracing::{info, warn};

use super::limit::Limiter;
use crate::email::notice::{self, ChangeView};
use crate::email::templates::Templates;
use crate::enrich::{Enricher, Enrichment};
use crate::pipeline::worker::Signals;
use crate::report::token::{Claims, Keys, TokenError};
use crate::report::{Report, Step, StepState, response::RESPONSE};
use crate::store::{NewFinding, Store};

/// Everything the page needs.
pub struct NotMe<S: Store> {
    pub store: S,
    pub keys: Keys,
    /// `scheme://host[:port]` of the public URL: what a browser's `Origin` says for this page.
    pub public_origin: String,
    /// The configured orgs, with their enrichers (the user's language and time zone).
    pub orgs: HashMap<String, Arc<Enricher>>,
    pub templates: Arc<Templates>,
    pub default_language: String,
    pub help: String,
    pub actions: Vec<Step>,
    /// Where the report's finding goes (every SIEM sink, the security team).
    pub destinations: Vec<String>,
    pub wait: Duration,
    pub trust_forwarded_for: bool,
    pub per_link: Limiter,
    pub per_client: Limiter,
    pub signals: Arc<Signals>,
}

/// Longest form body accepted (the form has one short field).
const MAX_FORM: usize = 4096;
/// How long a lookup of the user (language, time zone) may take before the page goes without.
const LOOKUP_WAIT: Duration = Duration::from_secs(3);

pub fn router<S: Store>(state: Arc<NotMe<S>>) -> Router {
    Router::new()
        .route("/not-me/{token}", get(show::<S>).post(act::<S>))
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct StepView {
    step: &'static str,
    state: &'static str,
}

/// What the template is given.
#[derive(Debug, Serialize, Default)]
struct View {
    /// confirm, done, used, expired, invalid, limited, unavailable, refused.
    state: &'static str,
    org: String,
    help: String,
    first_name: Option<String>,
    change: Option<ChangeView>,
    check: String,
    /// What the button will ask Okta to do (confirm page).
    actions: Vec<&'static str>,
    steps: Vec<StepView>,
    /// Every step has its answer.
    settled: bool,
    reported_at: String,
    expired_at: String,
}

fn steps_view(steps: &[(Step, StepState)]) -> Vec<StepView> {
    steps
        .iter()
        .map(|(s, st)| StepView {
            step: s.as_str(),
            state: match st {
                StepState::Pending => "pending",
                StepState::Done => "done",
                StepState::NotAvailable(_) => "not_available",
                StepState::Failed(_) => "failed",
            },
        })
        .collect()
}

/// A link that opened: its claims, the change and the user's details.
struct Opened {
    claims: Claims,
    change: crate::record::MfaChange,
    enrichment: Enrichment,
    report: Option<Report>,
}

impl<S: Store> NotMe<S> {
    fn render(&self, status: StatusCode, language: &str, view: &View) -> Response {
        match self.templates.render_page(language, "not_me", view) {
            Ok(html) => super::page(status, html),
            Err(e) => {
                warn!(error = %e, "the not-me page cannot be rendered");
                super::page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html><title>Error</title><p>This page cannot be shown right now.</p>"
                        .into(),
                )
            }
        }
    }

    /// A page in the default language with no facts (the link did not open).
    fn plain(&self, status: StatusCode, state: &'static str, expired_at: String) -> Response {
        let view = View {
            state,
            help: notice::clean(&self.help),
            expired_at,
            ..View::default()
        };
        self.render(status, &self.default_language, &view)
    }

    /// Over budget: this link or this client asked too often this minute.
    fn limited(&self, token: &str, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
        let now = Instant::now();
        let client = super::client_addr(peer, headers, self.trust_forwarded_for).to_string();
        // The token itself is not kept: a digest of it is the key.
        let link = {
            use sha2::{Digest, Sha256};
            let d = Sha256::digest(token.as_bytes());
            d[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let ok_client = self.per_client.allow(&client, now);
        let ok_link = ok_client && self.per_link.allow(&link, now);
        if ok_client && ok_link {
            return None;
        }
        let wait = if ok_client {
            self.per_link.retry_after(&link, now)
        } else {
            self.per_client.retry_after(&client, now)
        };
        let mut r = self.plain(StatusCode::TOO_MANY_REQUESTS, "limited", String::new());
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        Some(r)
    }

    /// Opens the link: Err is the page to answer with.
    async fn open(&self, token: &str) -> Result<Opened, Response> {
        let claims = match self.keys.open(token, chrono::Utc::now()) {
            Ok(c) => c,
            Err(TokenError::Expired(at)) => {
                return Err(self.plain(StatusCode::GONE, "expired", notice::when(at, None)));
            }
            Err(TokenError::Invalid) => {
                return Err(self.plain(StatusCode::NOT_FOUND, "invalid", String::new()));
            }
        };
        let Some(enricher) = self.orgs.get(&claims.org) else {
            return Err(self.plain(StatusCode::NOT_FOUND, "invalid", String::new()));
        };
        let unavailable = |e: crate::store::StoreError| {
            warn!(error = %e, "the not-me page cannot read the store");
            self.plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                String::new(),
            )
        };
        let change = match self.store.change(&claims.org, &claims.change).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(self.plain(StatusCode::NOT_FOUND, "invalid", String::new())),
            Err(e) => return Err(unavailable(e)),
        };
        if change.user.as_ref().and_then(|u| u.id.as_deref()) != Some(claims.user.as_str()) {
            return Err(self.plain(StatusCode::NOT_FOUND, "invalid", String::new()));
        }
        let report = self
            .store
            .report(&claims.org, &claims.change, &claims.user)
            .await
            .map_err(unavailable)?;
        // The user's language and time zone; without them (Okta slow or down) the page is in
        // the default language and UTC.
        let enrichment = match tokio::time::timeout(LOOKUP_WAIT, enricher.enrich(&change, "")).await
        {
            Ok(Ok(e)) => e,
            _ => Enrichment::default(),
        };
        Ok(Opened {
            claims,
            change,
            enrichment,
            report,
        })
    }

    fn view(&self, o: &Opened, state: &'static str, token: &str) -> View {
        View {
            state,
            org: notice::clean(&o.claims.org),
            help: notice::clean(&self.help),
            first_name: o
                .enrichment
                .first_name
                .as_deref()
                .and_then(|n| crate::untrusted::first_word(n, 30)),
            change: Some(notice::view(&o.change, &o.enrichment)),
            check: if state == "confirm" {
                self.keys.form_check(token)
            } else {
                String::new()
            },
            actions: self.actions.iter().map(|a| a.as_str()).collect(),
            steps: o
                .report
                .as_ref()
                .map(|r| steps_view(&r.steps))
                .unwrap_or_default(),
            settled: o.report.as_ref().is_some_and(Report::settled),
            reported_at: o
                .report
                .as_ref()
                .map(|r| notice::when(r.reported_at, o.enrichment.timezone.as_deref()))
                .unwrap_or_default(),
            expired_at: String::new(),
        }
    }

    fn language(&self, o: &Opened) -> String {
        self.templates.language(o.enrichment.locale.as_deref())
    }
}

async fn show<S: Store>(
    State(st): State<Arc<NotMe<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if let Some(r) = st.limited(&token, peer, &headers) {
        return r;
    }
    let o = match st.open(&token).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let language = st.language(&o);
    if o.report.is_some() {
        return st.render(StatusCode::GONE, &language, &st.view(&o, "used", &token));
    }
    st.render(StatusCode::OK, &language, &st.view(&o, "confirm", &token))
}

/// Whether the browser says the form was posted from another site.
fn cross_site(headers: &HeaderMap, public_origin: &str) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = text("origin")
        && origin != "null"
        && !origin.eq_ignore_ascii_case(public_origin)
    {
        return true;
    }
    matches!(text("sec-fetch-site"), Some("cross-site"))
}

async fn act<S: Store>(
    State(st): State<Arc<NotMe<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Body,
) -> Response {
    if let Some(r) = st.limited(&token, peer, &headers) {
        return r;
    }
    let refused = || st.plain(StatusCode::FORBIDDEN, "refused", String::new());
    if cross_site(&headers, &st.public_origin) {
        return refused();
    }
    let Ok(bytes) = crate::http::server::read_body(body, MAX_FORM, Duration::from_secs(10)).await
    else {
        return refused();
    };
    let check = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "check")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !st.keys.form_check_ok(&token, &check) {
        return refused();
    }
    let mut o = match st.open(&token).await {
        Ok(o) => o,
        Err(page) => return page,
    };
    let language = st.language(&o);
    if o.report.is_some() {
        return st.render(StatusCode::GONE, &language, &st.view(&o, "used", &token));
    }
    let now = chrono::Utc::now();
    let client = super::client_addr(peer, &headers, st.trust_forwarded_for);
    let finding = crate::report::finding(&o.claims.org, &o.change, now, Some(client), &st.actions);
    let report = Report {
        org: o.claims.org.clone(),
        change_id: o.claims.change.clone(),
        user_id: o.claims.user.clone(),
        finding_id: finding.id.clone(),
        reported_at: now,
        steps: st
            .actions
            .iter()
            .map(|s| (*s, StepState::Pending))
            .collect(),
    };
    let mut destinations = st.destinations.clone();
    if !st.actions.is_empty() {
        destinations.push(RESPONSE.to_owned());
    }
    let new = NewFinding {
        finding,
        destinations,
    };
    match st.store.commit_report(&report, &new, now).await {
        Ok(true) => {}
        // Pressed twice at once: the other press made the report.
        Ok(false) => {
            if let Ok(r) = st
                .store
                .report(&report.org, &report.change_id, &report.user_id)
                .await
            {
                o.report = r;
            }
            return st.render(StatusCode::GONE, &language, &st.view(&o, "used", &token));
        }
        Err(e) => {
            warn!(error = %e, "a report could not be stored");
            return st.plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                String::new(),
            );
        }
    }
    info!(org = %report.org, finding = %report.finding_id, "a user reported a change as not theirs");
    crate::telemetry::report_made(&report.org);
    st.signals.stored();
    // Wait (a little) for Okta's answers, so the page can say what was done.
    let deadline = Instant::now() + st.wait;
    o.report = Some(report.clone());
    while !report.steps.is_empty() && Instant::now() < deadline {
        if let Ok(Some(r)) = st
            .store
            .report(&report.org, &report.change_id, &report.user_id)
            .await
        {
            let settled = r.settled();
            o.report = Some(r);
            if settled {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    st.render(StatusCode::OK, &language, &st.view(&o, "done", &token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_from_another_site_is_cross_site() {
        let mut h = HeaderMap::new();
        assert!(
            !cross_site(&h, "https://fw.example.com"),
            "no header: a plain client"
        );
        h.insert("origin", HeaderValue::from_static("https://fw.example.com"));
        assert!(!cross_site(&h, "https://fw.example.com"));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&h, "https://fw.example.com"));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h, "https://fw.example.com"));
    }
}
