//! The System Log `LogEvent` (`/api/v1/logs`, Event Hook `data.events[]`), as far as factorwatch
//! reads it.
//!
//! Top-level keys also accept their lower-cased spelling (`eventtype`, `debugcontext`…), which some
//! SIEM exports produce. Side objects are read leniently (see [`super::lenient`]).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::lenient;

#[derive(Debug, Clone, Deserialize)]
pub struct LogEvent {
    #[serde(default, deserialize_with = "lenient::string")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub published: Option<String>,
    #[serde(rename = "eventType", alias = "eventtype")]
    pub event_type: String,
    #[serde(
        rename = "legacyEventType",
        alias = "legacyeventtype",
        default,
        deserialize_with = "lenient::string"
    )]
    pub legacy_event_type: Option<String>,
    #[serde(
        rename = "displayMessage",
        alias = "displaymessage",
        default,
        deserialize_with = "lenient::string"
    )]
    pub display_message: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub actor: Option<Subject>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub target: Vec<Subject>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub client: Option<LogClient>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub outcome: Option<Outcome>,
    #[serde(
        rename = "debugContext",
        alias = "debugcontext",
        default,
        deserialize_with = "lenient::object"
    )]
    pub debug_context: Option<DebugContext>,
    #[serde(
        rename = "authenticationContext",
        alias = "authenticationcontext",
        default,
        deserialize_with = "lenient::object"
    )]
    pub authentication_context: Option<AuthenticationContext>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub request: Option<Request>,
    /// The Okta Verify–registered device the event came from (Identity Engine; often null).
    #[serde(default, deserialize_with = "lenient::object")]
    pub device: Option<Device>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Device {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub os_platform: Option<String>,
}

/// An `actor` or a `target[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Subject {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    #[serde(rename = "alternateId", default, deserialize_with = "lenient::string")]
    pub alternate_id: Option<String>,
    #[serde(rename = "displayName", default, deserialize_with = "lenient::string")]
    pub display_name: Option<String>,
    #[serde(rename = "detailEntry", default, deserialize_with = "lenient::object")]
    pub detail_entry: Option<Map<String, Value>>,
}

impl Subject {
    pub fn is_type(&self, kind: &str) -> bool {
        self.kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(kind))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogClient {
    #[serde(rename = "ipAddress", default, deserialize_with = "lenient::string")]
    pub ip_address: Option<String>,
    #[serde(rename = "userAgent", default, deserialize_with = "lenient::object")]
    pub user_agent: Option<UserAgent>,
    #[serde(
        rename = "geographicalContext",
        default,
        deserialize_with = "lenient::object"
    )]
    pub geographical_context: Option<GeographicalContext>,
    /// Event Hook deliveries carry the chain inside `client` (Okta's own sample does).
    #[serde(rename = "ipChain", default, deserialize_with = "lenient::list")]
    pub ip_chain: Vec<IpChainEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserAgent {
    #[serde(rename = "rawUserAgent", default, deserialize_with = "lenient::string")]
    pub raw_user_agent: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub os: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub browser: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GeographicalContext {
    #[serde(default, deserialize_with = "lenient::string")]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub state: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpChainEntry {
    #[serde(default, deserialize_with = "lenient::string")]
    pub ip: Option<String>,
    #[serde(
        rename = "geographicalContext",
        default,
        deserialize_with = "lenient::object"
    )]
    pub geographical_context: Option<GeographicalContext>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Outcome {
    #[serde(default, deserialize_with = "lenient::string")]
    pub result: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DebugContext {
    #[serde(
        rename = "debugData",
        alias = "debugdata",
        default,
        deserialize_with = "lenient::object"
    )]
    pub debug_data: Option<DebugData>,
}

/// The few `debugData` keys factorwatch reads. Okta warns these "may change from release to
/// release", so each is only one signal among several.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DebugData {
    /// Okta Verify's device on factor events (`debugData.deviceId`, where present).
    #[serde(rename = "deviceId", default, deserialize_with = "lenient::string")]
    pub device_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub factor: Option<String>,
    #[serde(rename = "factorType", default, deserialize_with = "lenient::string")]
    pub factor_type: Option<String>,
    #[serde(rename = "phoneNumber", default, deserialize_with = "lenient::string")]
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthenticationContext {
    #[serde(
        rename = "externalSessionId",
        default,
        deserialize_with = "lenient::string"
    )]
    pub external_session_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Request {
    #[serde(rename = "ipChain", default, deserialize_with = "lenient::list")]
    pub ip_chain: Vec<IpChainEntry>,
}

impl LogEvent {
    /// Reads one System Log event: in one pass when every side object has its shape, else again
    /// with the misshapen ones absent (see [`super::lenient::parse`]).
    pub fn parse(text: &str) -> serde_json::Result<LogEvent> {
        lenient::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value at every path of `v` (objects' members and arrays' elements), replaced in
    /// turn by each of `with`: the event texts to read.
    fn mutations(v: &Value, with: &[Value]) -> Vec<String> {
        fn walk(
            root: &Value,
            path: &mut Vec<Value>,
            at: &Value,
            with: &[Value],
            out: &mut Vec<String>,
        ) {
            let children: Vec<(Value, &Value)> = match at {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, c)| (Value::from(k.as_str()), c))
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (Value::from(i), c))
                    .collect(),
                _ => Vec::new(),
            };
            for (key, child) in children {
                path.push(key);
                for w in with {
                    let mut copy = root.clone();
                    let mut slot = &mut copy;
                    for k in path.iter() {
                        slot = match k {
                            Value::String(s) => &mut slot[s.as_str()],
                            _ => &mut slot[k.as_u64().unwrap_or(0) as usize],
                        };
                    }
                    *slot = w.clone();
                    out.push(copy.to_string());
                }
                walk(root, path, child, with, out);
                path.pop();
            }
        }
        let mut out = vec![v.to_string()];
        walk(v, &mut Vec::new(), v, with, &mut out);
        out
    }

    /// The one-pass read gives what reading each side object from its text gives, for real
    /// events and for every way of putting a wrong shape anywhere in them.
    #[test]
    fn one_pass_reads_every_event_as_reading_side_objects_from_their_text() {
        let with = [
            Value::Null,
            Value::from("text"),
            Value::from(7),
            Value::from(true),
            serde_json::json!([]),
            serde_json::json!([null, {"a": 1}, "x"]),
            serde_json::json!({}),
            serde_json::json!({"nested": {"deep": [1, {"x": null}]}}),
        ];
        let mut read = 0;
        let mut refused = 0;
        for file in [
            "cribl-okta-rest-sample.ndjson",
            "sekoia-intake-formats-okta-tests.ndjson",
            "ocsf-examples-okta-raw.ndjson",
        ] {
            let path = format!("{}/tests/samples/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.is_empty(), "{path}");
            for line in text.lines().filter(|l| l.contains("eventType")).step_by(7) {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                for event in mutations(&v, &with) {
                    let slow = serde_json::from_str::<LogEvent>(&event);
                    let one_pass = LogEvent::parse(&event);
                    match (&slow, &one_pass) {
                        (Ok(a), Ok(b)) => {
                            read += 1;
                            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{event}");
                        }
                        (Err(_), Err(_)) => refused += 1,
                        _ => panic!("{event}: {slow:?} against {one_pass:?}"),
                    }
                }
            }
        }
        assert!(
            read > 1_000 && refused > 0,
            "{read} read, {refused} refused"
        );
    }
}
