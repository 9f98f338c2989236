//! RFC 8288 `Link` headers, as Okta sends them: `<https://…>; rel="next"`.

/// The URL of the link with relation `rel` among the `Link` header values.
pub fn find<'a>(values: impl IntoIterator<Item = &'a str>, rel: &str) -> Option<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let url = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            params
                .split(';')
                .filter_map(|p| p.split_once('='))
                .any(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r == rel)
                })
                .then(|| url.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_okta_next_links() {
        let headers = [
            r#"<https://o.okta.com/api/v1/logs?since=x&limit=3>; rel="self""#,
            r#"<https://o.okta.com/api/v1/logs?after=1_2&limit=3>; rel="next""#,
        ];
        assert_eq!(
            find(headers, "next").as_deref(),
            Some("https://o.okta.com/api/v1/logs?after=1_2&limit=3")
        );
        assert_eq!(find(headers[..1].iter().copied(), "next"), None);
        let combined = [r#"<https://a/1>; rel="self", <https://a/2>; rel=next"#];
        assert_eq!(find(combined, "next").as_deref(), Some("https://a/2"));
        assert_eq!(find(["garbage", "<x; rel=next"], "next"), None);
    }
}
