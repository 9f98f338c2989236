//! What the HTTP sinks (Splunk HEC, Elasticsearch, webhook) share: the client they send with,
//! how much of an answer they read, what a status means, and the probe for a healthcheck.

use crate::health::{Health, Unhealthy};
use crate::pipeline::worker::Outcome;

/// The HTTP client a sink sends with: a 30 s timeout, no redirects; trusting the system's roots,
/// or only `ca_pem` when given.
pub fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, super::SinkError> {
    crate::http::client::client(std::time::Duration::from_secs(30), ca_pem).map_err(|e| {
        super::SinkError::Setup(format!(
            "cannot set up HTTPS (is the CA file PEM certificates?): {e}"
        ))
    })
}

/// How much of a SIEM's answer is read (a `_bulk` answer for 500 items is well under this).
pub const MAX_ANSWER: usize = 8 << 20;

/// A SIEM's answer: its status and (bounded) body; for a redirect, a body saying where it
/// pointed, since that is all there is to say.
pub async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    if (300..400).contains(&status) {
        let to = crate::http::client::redirect_target(&response);
        return (status, format!("a redirect to {to}"));
    }
    match crate::http::client::read_limited(response, MAX_ANSWER).await {
        Ok(text) => (status, text),
        Err(e) => (status, e.to_string()),
    }
}

/// The outcome for an HTTP status from a SIEM's API, as Vector's HTTP retry logic decides, with
/// one difference: an answer that refuses *every* request is the destination's problem, not the
/// row's, so it waits (an operator fixes it) rather than dead-letter everything. 408, 429 and 5xx
/// but 501 mean try again (the destination is struggling); 401 and 403 mean our credentials are
/// refused; 404, 405, 410 and 421 mean the URL is wrong; a redirect is never followed (it would
/// drop the body and carry the credentials elsewhere): all wait. Other 4xx mean this request
/// itself is wrong.
pub fn http_outcome(status: u16, detail: &str) -> Outcome {
    let detail = crate::http::client::excerpt(detail, 300);
    match status {
        200..=299 => Outcome::Delivered,
        300..=399 => Outcome::Unavailable(format!(
            "HTTP {status}, {detail}: redirects are never followed; check the sink's url"
        )),
        404 | 405 | 410 | 421 => Outcome::Unavailable(format!(
            "HTTP {status}: {detail} (the endpoint refuses every request: check the sink's url)"
        )),
        401 | 403 | 408 | 429 => Outcome::Unavailable(format!("HTTP {status}: {detail}")),
        501 => Outcome::Reject(format!("HTTP {status}: {detail}")),
        500..=599 => Outcome::Unavailable(format!("HTTP {status}: {detail}")),
        _ => Outcome::Reject(format!("HTTP {status}: {detail}")),
    }
}

/// A healthcheck for an HTTP endpoint with no probe of its own: a `HEAD` with `headers` must get
/// an answer (connection and TLS work) that is not a redirect, a refusal of our credentials or a
/// server error. Any other status (405 to a HEAD is common) proves the endpoint is there.
pub async fn http_probe(client: &reqwest::Client, url: &str) -> Health {
    http_probe_with(client.head(url)).await
}

/// [`http_probe`] of a prepared request (with the sink's headers).
pub async fn http_probe_with(request: reqwest::RequestBuilder) -> Health {
    let response = request
        .send()
        .await
        .map_err(|e| Unhealthy(format!("unreachable: {}", e.without_url())))?;
    let status = response.status().as_u16();
    match status {
        300..=399 => Err(Unhealthy(format!(
            "answered HTTP {status}, a redirect to {}; redirects are never followed",
            crate::http::client::redirect_target(&response)
        ))),
        401 | 403 => Err(Unhealthy(format!(
            "answered HTTP {status}: our credentials are refused"
        ))),
        500..=599 => Err(Unhealthy(format!("answered HTTP {status}"))),
        _ => Ok(format!("reachable (HTTP {status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_class_has_its_outcome() {
        let kind = |status| match http_outcome(status, "x") {
            Outcome::Delivered => "delivered",
            Outcome::Unavailable(_) => "wait",
            Outcome::Reject(_) => "dead",
            _ => "other",
        };
        for (status, expected) in [
            (200, "delivered"),
            (204, "delivered"),
            (301, "wait"),
            (302, "wait"),
            (307, "wait"),
            (400, "dead"),
            (401, "wait"),
            (403, "wait"),
            (404, "wait"),
            (405, "wait"),
            (408, "wait"),
            (413, "dead"),
            (422, "dead"),
            (429, "wait"),
            (500, "wait"),
            (501, "dead"),
            (502, "wait"),
            (503, "wait"),
        ] {
            assert_eq!(kind(status), expected, "HTTP {status}");
        }
    }
}
