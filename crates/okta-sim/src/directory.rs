//! The org's people: Okta User objects and their enrolled Factors, as the Users API
//! (`GET /api/v1/users/{id|login}`) and the Factors API (`GET /api/v1/users/{id}/factors[/{id}]`)
//! serve them. Pure: callers pass the clock and the org's base URL.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::error::OktaError;
use crate::logs::okta_time;

#[derive(Debug, Default)]
pub struct Directory {
    users: Vec<Entry>,
    by_id: HashMap<String, usize>,
    /// Lower-cased logins; Okta matches logins case-insensitively.
    by_login: HashMap<String, usize>,
    /// Lower-cased short logins (before `@`), when unambiguous.
    by_short_login: HashMap<String, Option<usize>>,
}

#[derive(Debug)]
struct Entry {
    user: Value,
    factors: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUser(pub String);

impl Directory {
    /// Adds a user (replacing one with the same id or login), filling what Okta always sets
    /// (`id`, `status`, timestamps, `_links`) and giving each factor what Okta always sets
    /// (`id`, `vendorName`, `status`, timestamps, `_links`). Generated ids derive from the login, so they are stable.
    pub fn upsert(
        &mut self,
        mut user: Value,
        now: DateTime<Utc>,
        base_url: &str,
    ) -> Result<&Value, BadUser> {
        let Some(obj) = user.as_object_mut() else {
            return Err(BadUser("each user must be a JSON object".into()));
        };
        let factors = match obj.remove("factors") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(f)) => f,
            Some(_) => return Err(BadUser("factors must be an array of Factor objects".into())),
        };
        let profile = obj
            .get("profile")
            .and_then(Value::as_object)
            .ok_or_else(|| BadUser("a user needs a profile object".into()))?;
        let login = text(profile, "login")
            .ok_or_else(|| BadUser("profile.login is required".into()))?
            .to_owned();
        if text(profile, "email").is_none() {
            return Err(BadUser(format!("{login}: profile.email is required")));
        }
        let existing = self.by_login.get(&login.to_lowercase()).copied();
        let id = match text(obj, "id") {
            Some(id) => id.to_owned(),
            None => match existing {
                Some(i) => self.users[i].user["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                None => okta_id("00u", &login),
            },
        };
        let stamp = Value::String(okta_time(now));
        obj.insert("id".into(), Value::String(id.clone()));
        obj.entry("status").or_insert_with(|| "ACTIVE".into());
        for key in ["created", "activated", "statusChanged", "lastUpdated"] {
            obj.entry(key).or_insert_with(|| stamp.clone());
        }
        obj.entry("type")
            .or_insert_with(|| json!({ "id": "oty1simdefaultusertype" }));
        obj.insert(
            "_links".into(),
            json!({ "self": { "href": format!("{base_url}/api/v1/users/{id}") } }),
        );

        let mut stored = Vec::with_capacity(factors.len());
        for (i, mut f) in factors.into_iter().enumerate() {
            let Some(fo) = f.as_object_mut() else {
                return Err(BadUser(format!("{login}: factors[{i}] must be an object")));
            };
            let factor_type = text(fo, "factorType")
                .ok_or_else(|| BadUser(format!("{login}: factors[{i}].factorType is required")))?
                .to_owned();
            let provider = text(fo, "provider")
                .ok_or_else(|| BadUser(format!("{login}: factors[{i}].provider is required")))?
                .to_owned();
            let fid = match text(fo, "id") {
                Some(fid) => fid.to_owned(),
                None => okta_id(
                    factor_prefix(&factor_type),
                    &format!("{id}/{factor_type}/{i}"),
                ),
            };
            fo.insert("id".into(), Value::String(fid.clone()));
            fo.entry("vendorName")
                .or_insert_with(|| Value::String(provider));
            fo.entry("status").or_insert_with(|| "ACTIVE".into());
            fo.entry("profile").or_insert_with(|| json!({}));
            for key in ["created", "lastUpdated"] {
                fo.entry(key).or_insert_with(|| stamp.clone());
            }
            let href = format!("{base_url}/api/v1/users/{id}/factors/{fid}");
            fo.insert(
                "_links".into(),
                json!({
                    "self": { "href": href, "hints": { "allow": ["GET", "DELETE"] } },
                    "verify": { "href": format!("{href}/verify"), "hints": { "allow": ["POST"] } },
                    "user": { "href": format!("{base_url}/api/v1/users/{id}"), "hints": { "allow": ["GET"] } },
                }),
            );
            stored.push(f);
        }

        let entry = Entry {
            user,
            factors: stored,
        };
        let index = match self.by_id.get(&id).copied().or(existing) {
            Some(i) => {
                if let Some(old) = self.users[i].user["profile"]["login"].as_str() {
                    self.by_login.remove(&old.to_lowercase());
                }
                self.users[i] = entry;
                i
            }
            None => {
                self.users.push(entry);
                self.users.len() - 1
            }
        };
        self.by_id.insert(id, index);
        self.by_login.insert(login.to_lowercase(), index);
        if let Some((short, _)) = login.split_once('@') {
            let slot = self
                .by_short_login
                .entry(short.to_lowercase())
                .or_insert(None);
            *slot = match *slot {
                Some(other) if other != index => None,
                _ => Some(index),
            };
        }
        Ok(&self.users[index].user)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Directory::default();
    }

    /// The user with this id, login, or unambiguous short login, as `GET /api/v1/users/{x}`.
    pub fn user(&self, id_or_login: &str) -> Result<&Value, OktaError> {
        self.find(id_or_login)
            .map(|i| &self.users[i].user)
            .ok_or_else(|| user_not_found(id_or_login))
    }

    /// `GET /api/v1/users/{userId}/factors`.
    pub fn factors(&self, user_id: &str) -> Result<&[Value], OktaError> {
        self.by_id
            .get(user_id)
            .map(|&i| self.users[i].factors.as_slice())
            .ok_or_else(|| user_not_found(user_id))
    }

    /// `GET /api/v1/users/{userId}/factors/{factorId}`.
    pub fn factor(&self, user_id: &str, factor_id: &str) -> Result<&Value, OktaError> {
        self.factors(user_id)?
            .iter()
            .find(|f| f["id"] == factor_id)
            .ok_or_else(|| {
                OktaError::not_found(&format!("Resource not found: {factor_id} (UserFactor)"))
            })
    }

    /// Sets a user's `status` (`ACTIVE`, `SUSPENDED`…) and `statusChanged`; returns the status
    /// it had.
    pub fn set_status(
        &mut self,
        user_id: &str,
        status: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, OktaError> {
        let i = *self
            .by_id
            .get(user_id)
            .ok_or_else(|| user_not_found(user_id))?;
        let user = &mut self.users[i].user;
        let before = user["status"].as_str().unwrap_or("ACTIVE").to_owned();
        user["status"] = Value::from(status);
        user["statusChanged"] = Value::from(crate::logs::okta_time(now));
        Ok(before)
    }

    /// Every factor of the user returns to the unenrolled state (reset_factors); returns them.
    pub fn reset_factors(&mut self, user_id: &str) -> Result<Vec<Value>, OktaError> {
        let i = *self
            .by_id
            .get(user_id)
            .ok_or_else(|| user_not_found(user_id))?;
        Ok(std::mem::take(&mut self.users[i].factors))
    }

    fn find(&self, key: &str) -> Option<usize> {
        let lower = key.to_lowercase();
        self.by_id
            .get(key)
            .or_else(|| self.by_login.get(&lower))
            .copied()
            .or_else(|| self.by_short_login.get(&lower).copied().flatten())
    }
}

fn user_not_found(key: &str) -> OktaError {
    OktaError::not_found(&format!("Resource not found: {key} (User)"))
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Okta's id prefixes for factors, as the Factors API documents them.
fn factor_prefix(factor_type: &str) -> &'static str {
    match factor_type {
        "sms" => "sms",
        "call" => "clf",
        "push" => "opf",
        "token:software:totp" => "ost",
        "question" => "ufs",
        "email" => "emf",
        "webauthn" => "fwf",
        "signed_nonce" => "crp",
        "token:hardware" => "ykf",
        "token" => "rsa",
        "web" => "dsf",
        _ => "uft",
    }
}

/// A 20-character Okta-style id: the prefix, then characters derived from `key`, so the same key
/// always gets the same id.
pub fn okta_id(prefix: &str, key: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // FNV-1a, then a splitmix step per character: stable, well spread, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut id = String::with_capacity(20);
    id.push_str(prefix);
    while id.len() < 20 {
        h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        id.push(char::from(ALPHABET[(z % 62) as usize]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_time as now;

    fn dade() -> Value {
        json!({
            "profile": { "login": "dade.murphy@example.com", "email": "dade@example.com",
                         "secondEmail": "zerocool@example.net", "firstName": "Dade" },
            "factors": [
                { "factorType": "sms", "provider": "OKTA", "profile": { "phoneNumber": "+1-555-415-1337" } },
                { "factorType": "push", "provider": "OKTA",
                  "profile": { "name": "Gibson", "platform": "IOS", "deviceType": "SmartPhone_IPhone" } }
            ]
        })
    }

    #[test]
    fn users_are_found_by_id_login_and_short_login() {
        let mut d = Directory::default();
        let id = d.upsert(dade(), now(), "http://o").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(id.starts_with("00u") && id.len() == 20);
        for key in [
            id.as_str(),
            "dade.murphy@example.com",
            "DADE.MURPHY@example.com",
            "dade.murphy",
        ] {
            assert_eq!(d.user(key).unwrap()["id"], id.as_str(), "{key}");
        }
        let e = d.user("nobody").unwrap_err();
        assert_eq!((e.status, e.error_code), (404, "E0000007"));
        assert_eq!(
            e.error_summary,
            "Not found: Resource not found: nobody (User)"
        );
    }

    #[test]
    fn factors_get_okta_ids_and_fields() {
        let mut d = Directory::default();
        let id = d.upsert(dade(), now(), "http://o").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let factors = d.factors(&id).unwrap();
        assert_eq!(factors.len(), 2);
        assert!(factors[0]["id"].as_str().unwrap().starts_with("sms"));
        assert!(factors[1]["id"].as_str().unwrap().starts_with("opf"));
        assert_eq!(factors[1]["vendorName"], "OKTA");
        assert_eq!(factors[1]["status"], "ACTIVE");
        let fid = factors[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            d.factor(&id, &fid).unwrap()["profile"]["phoneNumber"],
            "+1-555-415-1337"
        );
        assert_eq!(d.factor(&id, "nope").unwrap_err().status, 404);
        // The Factors API takes the user id, not a login.
        assert_eq!(
            d.factors("dade.murphy@example.com").unwrap_err().status,
            404
        );
    }

    #[test]
    fn an_ambiguous_short_login_finds_no_one() {
        let mut d = Directory::default();
        for login in ["kate@a.example", "kate@b.example"] {
            d.upsert(
                json!({ "profile": { "login": login, "email": login } }),
                now(),
                "http://o",
            )
            .unwrap();
        }
        assert_eq!(d.user("kate").unwrap_err().status, 404);
        assert!(d.user("kate@b.example").is_ok());
    }

    #[test]
    fn re_posting_a_login_replaces_the_user() {
        let mut d = Directory::default();
        d.upsert(dade(), now(), "http://o").unwrap();
        let mut again = dade();
        again["factors"] = json!([]);
        d.upsert(again, now(), "http://o").unwrap();
        assert_eq!(d.len(), 1);
        let id = d.user("dade.murphy").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(d.factors(&id).unwrap().is_empty());
    }

    #[test]
    fn users_without_login_or_email_are_refused() {
        let mut d = Directory::default();
        assert!(
            d.upsert(json!({ "profile": { "login": "x@y" } }), now(), "o")
                .is_err()
        );
        assert!(
            d.upsert(json!({ "profile": { "email": "x@y" } }), now(), "o")
                .is_err()
        );
        assert!(d.upsert(json!([1]), now(), "o").is_err());
        assert!(d.is_empty());
    }
}
