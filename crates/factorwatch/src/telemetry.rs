//! What the process counts as it goes — Event Hook requests by status, delivery outcomes per
//! destination, Okta requests and the rate-limit headroom Okta last reported — recorded through
//! the `metrics` facade and rendered on `/metrics` next to the store's figures (status.rs).
//! Counters start at zero with the process, as Prometheus expects of counters.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (later calls, and a process that already has another
/// recorder, keep what is there).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok().map(|()| handle)
    });
}

/// The counters and gauges in Prometheus text, or nothing before [`install`].
pub fn render() -> String {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// One Event Hook request answered.
pub fn hook_request(org: &str, status: u16) {
    metrics::counter!("factorwatch_hook_requests_total", "org" => org.to_owned(), "status" => status.to_string())
        .increment(1);
}

/// Findings stored, per org.
pub fn findings(org: &str, n: u64) {
    metrics::counter!("factorwatch_findings_total", "org" => org.to_owned()).increment(n);
}

/// One delivery attempt's outcome (`delivered`, `skipped`, `later`, `retry`, `dead`, `unavailable`).
pub fn delivery(destination: &str, outcome: &'static str) {
    metrics::counter!("factorwatch_deliveries_total", "destination" => destination.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// An org's Okta request metrics, each registered at its first use: looking a metric up by its
/// labels at every request (an MSSP's 2,000 orgs poll over a hundred times a second) was 3% of
/// the idle process's CPU.
#[derive(Debug)]
pub struct OktaMetrics {
    org: String,
    handles: std::sync::Mutex<std::collections::HashMap<(&'static str, u16), OktaHandles>>,
}

#[derive(Debug)]
struct OktaHandles {
    requests: metrics::Counter,
    remaining: metrics::Gauge,
    limit: metrics::Gauge,
}

impl OktaMetrics {
    pub fn new(org: &str) -> OktaMetrics {
        OktaMetrics {
            org: org.to_owned(),
            handles: Default::default(),
        }
    }

    /// One answer from Okta (status 0: no answer), with the rate-limit headers it carried.
    pub fn response(
        &self,
        bucket: &'static str,
        status: u16,
        remaining: Option<u64>,
        limit: Option<u64>,
    ) {
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let h = handles.entry((bucket, status)).or_insert_with(|| {
            let org = self.org.clone();
            OktaHandles {
                requests: metrics::counter!("factorwatch_okta_requests_total", "org" => org.clone(), "bucket" => bucket, "status" => status.to_string()),
                remaining: metrics::gauge!("factorwatch_okta_rate_limit_remaining", "org" => org.clone(), "bucket" => bucket),
                limit: metrics::gauge!("factorwatch_okta_rate_limit_limit", "org" => org, "bucket" => bucket),
            }
        });
        h.requests.increment(1);
        if let Some(r) = remaining {
            h.remaining.set(r as f64);
        }
        if let Some(l) = limit {
            h.limit.set(l as f64);
        }
    }
}

/// One "this wasn't me" report made, per org.
pub fn report_made(org: &str) {
    metrics::counter!("factorwatch_not_me_reports_total", "org" => org.to_owned()).increment(1);
}
