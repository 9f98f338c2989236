//! `/status`: what an operator checks from a phone — per org, how fresh the sources are; per
//! destination, the outbox, dead letters with their last error and the delivery rate; the latest
//! changes and findings with their deliveries; users' "this wasn't me" reports. Read-only,
//! refreshing itself, behind a bearer token (or HTTP Basic with the token as password, which a
//! browser can send) unless the listener is loopback-only. Personal data is masked as in the
//! notices (`j***@example.com`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::email::notice::{clean, mask_email};
use crate::email::templates::Templates;
use crate::record::Item;
use crate::secret::Secret;
use crate::store::{ItemKind, Recent, Stats, Store};

pub struct StatusPage<S: Store> {
    pub store: S,
    /// None: the listener is loopback-only, the page is open to it.
    pub token: Option<Secret>,
    pub templates: Arc<Templates>,
}

/// Rows of each list on the page.
const LATEST: u32 = 20;
/// How often the page reloads itself, in seconds.
const REFRESH: u32 = 10;

pub fn router<S: Store>(page: Arc<StatusPage<S>>) -> Router {
    Router::new()
        .route("/status", get(show::<S>))
        .with_state(page)
}

fn authorized(token: Option<&Secret>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credential) = value.split_once(' ').unwrap_or(("", ""));
    let presented = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => credential.trim().as_bytes().to_vec(),
        "basic" => {
            use base64::Engine;
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credential.trim())
            else {
                return false;
            };
            match decoded.iter().position(|b| *b == b':') {
                Some(i) => decoded[i + 1..].to_vec(),
                None => return false,
            }
        }
        _ => return false,
    };
    token.matches(&presented)
}

async fn show<S: Store>(State(page): State<Arc<StatusPage<S>>>, headers: HeaderMap) -> Response {
    if !authorized(page.token.as_ref(), &headers) {
        let mut r = super::page(
            StatusCode::UNAUTHORIZED,
            "<!DOCTYPE html><title>factorwatch</title><p>Authentication required.</p>".into(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"factorwatch status\", charset=\"UTF-8\""),
        );
        return r;
    }
    let now = Utc::now();
    let view = match gather(&page.store, now).await {
        Ok(v) => v,
        Err(e) => {
            return super::page(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "<!DOCTYPE html><title>factorwatch</title><p>The store does not answer: {}</p>",
                    html_escape(&clean(&e.to_string()))
                ),
            );
        }
    };
    match page.templates.render_page("en", "status", &view) {
        Ok(html) => super::page(StatusCode::OK, html),
        Err(e) => super::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<!DOCTYPE html><title>factorwatch</title><p>{}</p>",
                html_escape(&e.to_string())
            ),
        ),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Debug, Serialize)]
pub struct View {
    generated: String,
    refresh: u32,
    changes_total: u64,
    findings_total: u64,
    sources: Vec<SourceView>,
    destinations: Vec<DestinationView>,
    dead: Vec<DeadView>,
    changes: Vec<ItemView>,
    findings: Vec<ItemView>,
    reports: Vec<ReportView>,
}

#[derive(Debug, Serialize)]
struct SourceView {
    org: String,
    source: String,
    last_poll: String,
    lag: String,
    events_seen: u64,
}

#[derive(Debug, Serialize)]
struct DestinationView {
    name: String,
    delivered: u64,
    pending: u64,
    dead: u64,
    per_minute: String,
}

#[derive(Debug, Serialize)]
struct DeadView {
    destination: String,
    org: String,
    item: String,
    attempts: u32,
    error: String,
}

#[derive(Debug, Serialize)]
struct ItemView {
    at: String,
    org: String,
    what: String,
    user: String,
    severity: String,
    deliveries: Vec<String>,
    problem: bool,
}

#[derive(Debug, Serialize)]
struct ReportView {
    at: String,
    org: String,
    user: String,
    steps: Vec<String>,
}

fn ago(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    let d = now - t;
    if d < Duration::seconds(1) {
        "just now".into()
    } else if d < Duration::minutes(2) {
        format!("{}s ago", d.num_seconds())
    } else if d < Duration::hours(2) {
        format!("{}m ago", d.num_minutes())
    } else if d < Duration::days(2) {
        format!("{}h ago", d.num_hours())
    } else {
        format!("{}d ago", d.num_days())
    }
}

/// Words that look like addresses are masked (an error can quote a recipient).
fn masked_text(s: &str) -> String {
    clean(s)
        .split(' ')
        .map(|w| {
            if w.contains('@') {
                mask_email(w)
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn user_of(item: &Result<Item, String>) -> String {
    let login = match item {
        Ok(Item::Change(c)) => c
            .user
            .as_ref()
            .and_then(|u| u.login.clone().or(u.id.clone())),
        Ok(Item::Finding(f)) => f
            .user
            .as_ref()
            .or(f.actor.as_ref())
            .and_then(|u| u.login.clone().or(u.id.clone())),
        Err(_) => None,
    };
    login.map(|l| mask_email(&l)).unwrap_or_else(|| "—".into())
}

fn item_view(r: &Recent) -> ItemView {
    let (what, severity) = match &r.item {
        Ok(Item::Change(c)) => (
            format!(
                "{} {}",
                c.action.as_str().replace('_', " "),
                crate::classify::factor::Kind::of(&c.factor).as_str()
            ),
            String::new(),
        ),
        Ok(Item::Finding(f)) => (f.rule.as_str().to_owned(), f.severity.as_str().to_owned()),
        Err(e) => (clean(e), String::new()),
    };
    ItemView {
        at: crate::record::format_published(&r.stored_at),
        org: clean(&r.org),
        what,
        user: user_of(&r.item),
        severity,
        problem: r.deliveries.iter().any(|d| d.state == "dead"),
        deliveries: r
            .deliveries
            .iter()
            .map(|d| {
                if d.state == "pending" && d.attempts > 0 {
                    format!("{}: retrying ({} attempts)", d.destination, d.attempts)
                } else {
                    format!("{}: {}", d.destination, d.state)
                }
            })
            .collect(),
    }
}

/// The page's figures, from the store.
pub async fn gather<S: Store>(
    store: &S,
    now: DateTime<Utc>,
) -> Result<View, crate::store::StoreError> {
    let stats: Stats = store.stats().await?;
    let rates = store.delivered_since(now - Duration::minutes(15)).await?;
    let dead = store.dead_letters(None).await?;
    let changes = store.recent(ItemKind::Change, LATEST).await?;
    let findings = store.recent(ItemKind::Finding, LATEST).await?;
    let reports = store.reports(LATEST).await?;
    Ok(View {
        generated: crate::record::format_published(&now),
        refresh: REFRESH,
        changes_total: stats.changes,
        findings_total: stats.findings,
        sources: stats
            .sources
            .iter()
            .map(|s| SourceView {
                org: clean(&s.org),
                source: s.source.replace('_', " "),
                last_poll: ago(now, s.updated_at),
                lag: ago(now, s.newest_published),
                events_seen: s.events_seen,
            })
            .collect(),
        destinations: stats
            .outbox
            .iter()
            .map(|(name, delivered, pending, dead)| DestinationView {
                name: clean(name),
                delivered: *delivered,
                pending: *pending,
                dead: *dead,
                per_minute: {
                    let n = rates
                        .iter()
                        .find(|(d, _)| d == name)
                        .map(|(_, n)| *n)
                        .unwrap_or(0);
                    format!("{:.1}", n as f64 / 15.0)
                },
            })
            .collect(),
        dead: dead
            .iter()
            .rev()
            .take(LATEST as usize)
            .map(|d| DeadView {
                destination: clean(&d.destination),
                org: clean(&d.org),
                item: clean(&d.event_id),
                attempts: d.attempts,
                error: masked_text(d.last_error.as_deref().unwrap_or("")),
            })
            .collect(),
        changes: changes.iter().map(item_view).collect(),
        findings: findings.iter().map(item_view).collect(),
        reports: reports
            .iter()
            .map(|r| ReportView {
                at: crate::record::format_published(&r.reported_at),
                org: clean(&r.org),
                user: findings
                    .iter()
                    .find(|f| f.id == r.finding_id)
                    .map(|f| user_of(&f.item))
                    .unwrap_or_else(|| "a user".into()),
                steps: r
                    .steps
                    .iter()
                    .map(|(s, st)| {
                        format!(
                            "{}: {}",
                            s.as_str().replace('_', " "),
                            match st {
                                crate::report::StepState::Pending => "pending".to_owned(),
                                crate::report::StepState::Done => "done".to_owned(),
                                crate::report::StepState::NotAvailable(_) =>
                                    "not available".to_owned(),
                                crate::report::StepState::Failed(e) =>
                                    format!("failed ({})", masked_text(e)),
                            }
                        )
                    })
                    .collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_asked_as_bearer_or_basic_password() {
        let t = Secret::new("status-token-123");
        let h = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(authorized(None, &HeaderMap::new()));
        assert!(!authorized(Some(&t), &HeaderMap::new()));
        assert!(authorized(Some(&t), &h("Bearer status-token-123")));
        assert!(!authorized(Some(&t), &h("Bearer status-token-12")));
        // "ops:status-token-123"
        assert!(authorized(
            Some(&t),
            &h("Basic b3BzOnN0YXR1cy10b2tlbi0xMjM=")
        ));
        assert!(!authorized(Some(&t), &h("Basic bm9wZQ==")));
        assert_eq!(
            masked_text("550 no such user jane@example.com"),
            "550 no such user j***@example.com"
        );
    }
}
