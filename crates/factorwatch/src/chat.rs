//! A line of text to a Slack- or Teams-compatible incoming webhook (`{"text": …}`): the security
//! team's channel, for copies of user notices and for the lag alarm.

use std::time::Duration;

/// Posts `text`; the error says what went wrong without the URL (it carries the channel's token).
pub async fn post(url: &str, text: &str) -> Result<(), String> {
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({ "text": text }).to_string())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered HTTP {}", response.status()))
    }
}
