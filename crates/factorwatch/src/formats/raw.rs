//! Raw: the original Okta event, untouched, beside the normalized record — for data lakes and for
//! anyone who wants Okta's own fields.

use serde_json::{Value, json};

use crate::record::MfaChange;

pub fn encode(change: &MfaChange, raw: &str) -> Value {
    let okta = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    json!({ "okta": okta, "record": change })
}
