//! Outgoing HTTP, the same way everywhere: never follow a redirect (a 3xx would carry our
//! credentials, or drop a POST's body, somewhere nobody configured), always a timeout, and never
//! read more of an answer than a limit — a hostile or broken server gets an error, not our memory.

use std::time::Duration;

/// What every outgoing request says it is.
pub const USER_AGENT: &str = concat!("factorwatch/", env!("CARGO_PKG_VERSION"));

/// The client every outgoing request uses (Okta, SIEM sinks, chat webhooks): no redirects, a
/// timeout, factorwatch's user agent; trusting the system's roots, or only `ca_pem` when given.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
}

/// [`builder`], built; `ca_pem` (PEM certificates) replaces the system's roots.
pub fn client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = builder(timeout);
    if let Some(pem) = ca_pem {
        b = b.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem)?);
    }
    b.build()
}

/// Why an answer's body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the answer could not be read: {0}")]
    Read(String),
}

/// The body as text, at most `limit` bytes: refused up front when `Content-Length` says more,
/// and as soon as the bytes read pass it. Read into one buffer sized by `Content-Length` (a page
/// of Okta events is a few MiB; `Response::text` copies it twice more). Not UTF-8: decoded
/// lossily, to be refused by whoever parses it.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<String, BodyError> {
    let mut body = Capped::new(response.content_length(), limit)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Read(e.without_url().to_string()))?
    {
        body.push(&chunk)?;
    }
    Ok(body.text())
}

/// A body read under a limit (see [`read_limited`]), from any HTTP client.
pub struct Capped {
    body: Vec<u8>,
    limit: usize,
}

impl Capped {
    /// `announced`: the answer's `Content-Length`, refused at once if over `limit`.
    pub fn new(announced: Option<u64>, limit: usize) -> Result<Capped, BodyError> {
        let announced = announced.unwrap_or(0);
        if announced > limit as u64 {
            return Err(BodyError::TooLarge { limit });
        }
        Ok(Capped {
            body: Vec::with_capacity(announced as usize),
            limit,
        })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if self.body.len() + chunk.len() > self.limit {
            return Err(BodyError::TooLarge { limit: self.limit });
        }
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    /// The body as text; not UTF-8, decoded lossily.
    pub fn text(self) -> String {
        match String::from_utf8(self.body) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

/// A short, single-line excerpt of a remote answer for an error message or a log line: at most
/// `max` characters, control characters (a forged log line starts with a newline) made spaces.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// What a redirect answer says, for the error: where it pointed (scheme, host, port only: a
/// URL's path and query can carry tokens).
pub fn redirect_target(response: &reqwest::Response) -> String {
    redirect_target_of(response.url(), response.headers())
}

/// [`redirect_target`] of an answer's headers to a request for `url`.
pub fn redirect_target_of(url: &reqwest::Url, headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| url.join(l).ok())
        .map(|u| origin_text(&u))
        .unwrap_or_else(|| "an unnamed place".into())
}

/// `scheme://host:port` of a URL.
pub fn origin_text(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether `host` (a name or an IP literal, brackets allowed) is this machine: `localhost` or a
/// loopback address. Names are not resolved: a DNS answer is not proof.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL sends what it carries in clear text to another machine: `http://` to a host
/// that is not loopback.
pub fn is_cleartext_remote(url: &reqwest::Url) -> bool {
    url.scheme() == "http" && !url.host_str().is_some_and(is_loopback_host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_decided_without_dns() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.8.9.1",
            "[::1]",
            "::1",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "localhost.evil.com", "example.com", "[::2]", ""] {
            assert!(!is_loopback_host(h), "{h}");
        }
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(is_cleartext_remote(&u("http://acme.okta.com")));
        assert!(!is_cleartext_remote(&u("https://acme.okta.com")));
        assert!(!is_cleartext_remote(&u("http://127.0.0.1:8080/x")));
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt("a\nb\r\nc", 10), "a b  c");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
