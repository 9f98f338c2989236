//! The operator's HTTP endpoints (`[observability] listen`): `/metrics` for Prometheus — the store's
//! figures ([`crate::status`]) and the process's counters ([`crate::telemetry`]) — `/healthz`
//! (the process answers) and `/readyz` (the store answers).

use crate::store::Store;

/// `/metrics` (Prometheus text), `/healthz` (the process answers), `/readyz` (the store answers).
pub fn routes<S: Store>(store: S, lag_alarm: Option<std::time::Duration>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::routing::get;
    let threshold = lag_alarm.and_then(|d| chrono::Duration::from_std(d).ok());
    let metrics_store = store.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let store = metrics_store.clone();
                async move {
                    match store.stats().await {
                        Ok(stats) => (
                            StatusCode::OK,
                            [("content-type", "text/plain; version=0.0.4")],
                            crate::status::prometheus(&stats, chrono::Utc::now(), threshold)
                                + &crate::telemetry::render(),
                        ),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("content-type", "text/plain")],
                            format!("the store does not answer: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let store = store.clone();
                async move {
                    match store.stats().await {
                        Ok(_) => (StatusCode::OK, "ready\n".to_owned()),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
                    }
                }
            }),
        )
}
