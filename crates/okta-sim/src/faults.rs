//! Faults a test can inject (`POST /sim/faults`): what real Okta does on a bad day. Every choice
//! is drawn from the org's seeded generator, so a failing run can be replayed.

use std::collections::HashMap;

use rand::Rng;
use serde::Deserialize;

/// The whole fault configuration; `POST /sim/faults` replaces it, `{}` clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Per Okta path (`/api/v1/logs`, `/api/v1/events`, `/api/v1/users`, `/api/v1/eventHooks`,
    /// `/oauth2/v1/token`), or `*` for every Okta path. A path's own entry wins over `*`.
    #[serde(default)]
    pub endpoints: HashMap<String, EndpointFaults>,
    #[serde(default)]
    pub hooks: HookFaults,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFaults {
    /// Share of requests answered 500 `E0000009` (Okta's "took too long").
    #[serde(default)]
    pub error_rate: f64,
    /// Added before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of 200 responses whose body is cut in half, as by a dropped connection.
    #[serde(default)]
    pub truncate_rate: f64,
    /// The next N requests are answered 429 `E0000047` whatever the bucket's room.
    #[serde(default)]
    pub burst_429: u32,
    /// Share of log pages whose `next` link re-serves the page's last event (duplicates across
    /// pages).
    #[serde(default)]
    pub duplicate_rate: f64,
    /// Hostile: `next` links (System Log, Events API) point at this origin
    /// (`http://127.0.0.1:9`) instead of the org's.
    #[serde(default)]
    pub foreign_next: Option<String>,
    /// Hostile: every request is answered `302 Found` to this origin, same path and query.
    #[serde(default)]
    pub redirect_to: Option<String>,
    /// Hostile: a 200 answer's body is replaced by this many bytes (a JSON array of blanks),
    /// streamed without `Content-Length` (0: off).
    #[serde(default)]
    pub oversize_bytes: u64,
    /// Hostile: a 200 answer's body is sent one byte every this many milliseconds (0: off).
    #[serde(default)]
    pub drip_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookFaults {
    /// Share of deliveries sent twice (at-least-once).
    #[serde(default)]
    pub duplicate_rate: f64,
    /// Share of deliveries held back and sent after the next one.
    #[serde(default)]
    pub reorder_rate: f64,
    /// Events persisted within this many milliseconds of each other share a delivery.
    #[serde(default = "default_batch_window_ms")]
    pub batch_window_ms: u64,
    /// At most this many events per delivery.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Hostile (or an impostor): the verification GET is sent without the auth header.
    #[serde(default)]
    pub verify_without_auth: bool,
}

fn default_batch_window_ms() -> u64 {
    200
}

fn default_max_batch() -> usize {
    50
}

impl Default for HookFaults {
    fn default() -> Self {
        HookFaults {
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            batch_window_ms: default_batch_window_ms(),
            max_batch: default_max_batch(),
            verify_without_auth: false,
        }
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub latency_ms: u64,
    pub fail: bool,
    pub throttle: bool,
    pub truncate: bool,
    pub duplicate: bool,
    pub foreign_next: Option<String>,
    pub redirect_to: Option<String>,
    pub oversize_bytes: u64,
    pub drip_ms: u64,
}

impl Faults {
    pub fn validate(&self) -> Result<(), String> {
        let rate = |name: &str, r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {r}"))
            }
        };
        for (path, f) in &self.endpoints {
            rate(&format!("endpoints.{path}.error_rate"), f.error_rate)?;
            rate(&format!("endpoints.{path}.truncate_rate"), f.truncate_rate)?;
            rate(
                &format!("endpoints.{path}.duplicate_rate"),
                f.duplicate_rate,
            )?;
        }
        rate("hooks.duplicate_rate", self.hooks.duplicate_rate)?;
        rate("hooks.reorder_rate", self.hooks.reorder_rate)?;
        if self.hooks.max_batch == 0 {
            return Err("hooks.max_batch must be at least 1".into());
        }
        Ok(())
    }

    /// Decides the faults for one request to `path` (consuming a burst slot if any).
    pub fn plan(&mut self, path: &str, rng: &mut impl Rng) -> Plan {
        let key = if self.endpoints.contains_key(path) {
            path
        } else {
            "*"
        };
        let Some(f) = self.endpoints.get_mut(key) else {
            return Plan::default();
        };
        let throttle = f.burst_429 > 0;
        if throttle {
            f.burst_429 -= 1;
        }
        Plan {
            latency_ms: f.latency_ms,
            fail: rng.gen_bool(f.error_rate),
            throttle,
            truncate: rng.gen_bool(f.truncate_rate),
            duplicate: rng.gen_bool(f.duplicate_rate),
            foreign_next: f.foreign_next.clone(),
            redirect_to: f.redirect_to.clone(),
            oversize_bytes: f.oversize_bytes,
            drip_ms: f.drip_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn plans_follow_the_configured_rates_and_bursts() {
        let mut faults: Faults = serde_json::from_str(
            r#"{"endpoints": {"/api/v1/logs": {"error_rate": 0.5, "burst_429": 2},
                              "*": {"latency_ms": 7}}}"#,
        )
        .unwrap();
        faults.validate().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let plans: Vec<Plan> = (0..1000)
            .map(|_| faults.plan("/api/v1/logs", &mut rng))
            .collect();
        assert!(plans[0].throttle && plans[1].throttle && !plans[2].throttle);
        let failed = plans.iter().filter(|p| p.fail).count();
        assert!((400..600).contains(&failed), "{failed}");
        assert_eq!(faults.plan("/api/v1/users", &mut rng).latency_ms, 7);
    }

    #[test]
    fn rates_outside_0_1_and_unknown_keys_are_refused() {
        let f: Faults = serde_json::from_str(r#"{"endpoints": {"*": {"error_rate": 2}}}"#).unwrap();
        assert!(f.validate().unwrap_err().contains("error_rate"));
        assert!(
            serde_json::from_str::<Faults>(r#"{"endpoints": {"*": {"eror_rate": 1}}}"#).is_err()
        );
    }
}
