//! The web pages, server-rendered HTML with no script: the "this wasn't me" page users reach from
//! their notice ([`not_me`], on the hook listener, behind the operator's TLS proxy) and the
//! operators' status page ([`status`], on the observability listener). Every response carries
//! headers that keep it out of frames, caches and `Referer` headers (the link is a capability).

pub mod limit;
pub mod not_me;
pub mod status;

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// A page's HTML with the headers every page sends.
pub fn page(status: axum::http::StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // The token is in the URL: never cached, never sent on as a referrer.
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// The client's address: the peer's, or — when the operator trusts their proxy — the last
/// address in `X-Forwarded-For` (the one the proxy itself appended).
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.ip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_when_trusted_and_only_the_last() {
        let peer: SocketAddr = "10.0.0.5:443"
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.9"),
        );
        assert_eq!(client_addr(peer, &h, false).to_string(), "10.0.0.5");
        assert_eq!(client_addr(peer, &h, true).to_string(), "203.0.113.9");
        h.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(client_addr(peer, &h, true).to_string(), "10.0.0.5");
    }
}
