//! The scenario generator: a population of users with realistic profiles and factor inventories,
//! and the System Log they produce — ordinary traffic (sign-ins, MFA verifications, app access,
//! admin work) with MFA changes mixed in at a set ratio: users enrolling, updating and resetting
//! their own factors, admins and help desk resetting them, service apps removing them, Okta
//! suspending them. Classic Engine shapes (factor named in `outcome.reason`, only a `User`
//! target) or Identity Engine shapes (an `AuthenticatorEnrollment` target, `debugData.phoneNumber`).
//!
//! Deterministic: the same seed gives the same users and events. Pure: the caller says when each
//! event is published, so it runs as fast as it is asked to.

pub mod attacks;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::directory::okta_id;
use crate::logs::okta_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A quiet org: no users, no events but those the control API adds.
    None,
    /// An Identity Engine org going about its day.
    Steady,
    /// A Classic Engine org going about its day (also feeds the legacy Events API).
    Classic,
    /// `steady`, then an account takeover: a sign-in from far away, the victim's factors reset,
    /// the attacker's phone enrolled.
    Takeover,
    /// `steady`, with every named attack (`attacks::Attack`) mixed into its backlog, spread over
    /// its first half.
    Attacks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Classic,
    Identity,
}

/// One factor a simulated user has.
#[derive(Debug, Clone)]
struct Factor {
    id: String,
    /// Factors API `factorType`.
    factor_type: &'static str,
    provider: &'static str,
    /// The internal name Okta writes in `outcome.reason`.
    internal: &'static str,
    /// The authenticator's display name (OIE `AuthenticatorEnrollment` target).
    authenticator: &'static str,
    phone: Option<String>,
    device: Option<(String, &'static str)>,
}

#[derive(Debug, Clone)]
struct Person {
    id: String,
    login: String,
    name: String,
    locale: &'static str,
    ip: String,
    city: &'static str,
    country: &'static str,
    browser: (&'static str, &'static str, &'static str),
    /// The phone's carrier address (same country, another network) and its browser.
    mobile_ip: String,
    mobile_browser: (&'static str, &'static str, &'static str),
    /// A trip under way: until when, and where (an index into `PLACES`).
    trip: Option<(DateTime<Utc>, usize)>,
    factors: Vec<Factor>,
}

/// What a user does some time after a change (people re-enroll after a reset; a lost security key
/// is replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FollowUp {
    /// Enroll again every kind (index into `KINDS`) the user had before a reset.
    ReEnroll(usize),
}

/// (factorType, provider, internal name, authenticator name), the factors people enroll.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("push", "OKTA", "OKTA_VERIFY_PUSH", "Okta Verify"),
    ("sms", "OKTA", "SMS_FACTOR", "Phone"),
    ("call", "OKTA", "CALL_FACTOR", "Phone"),
    ("email", "OKTA", "EMAIL_FACTOR", "Email"),
    ("question", "OKTA", "SECURITY_QUESTION", "Security Question"),
    (
        "token:software:totp",
        "GOOGLE",
        "GOOGLE_OTP",
        "Google Authenticator",
    ),
    (
        "webauthn",
        "FIDO",
        "FIDO_WEBAUTHN",
        "Security Key or Biometric",
    ),
    ("signed_nonce", "OKTA", "SIGNED_NONCE", "Okta FastPass"),
    ("token", "RSA", "RSA_SECURID", "RSA SecurID"),
];

const FIRST: &[&str] = &[
    "Dade", "Kate", "Emmanuel", "Paul", "Ramon", "Joey", "Eugene", "Margo", "Lauren", "Hal",
    "Grace", "Alan", "Ada", "Linus", "Radia", "Barbara", "Ken", "Dennis", "Frances", "Edsger",
];
const LAST: &[&str] = &[
    "Murphy",
    "Libby",
    "Goldstein",
    "Cook",
    "Sanchez",
    "Pardella",
    "Belford",
    "Wallace",
    "Hopper",
    "Turing",
    "Lovelace",
    "Torvalds",
    "Perlman",
    "Liskov",
    "Thompson",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Abbott",
    "Costello",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("New York", "United States", "73.12"),
    ("San Francisco", "United States", "67.180"),
    ("London", "United Kingdom", "81.2"),
    ("Berlin", "Germany", "91.64"),
    ("Paris", "France", "82.64"),
    ("Toronto", "Canada", "99.230"),
    ("Sydney", "Australia", "101.160"),
    ("Bangalore", "India", "49.207"),
];
const BROWSERS: &[(&str, &str, &str)] = &[
    (
        "CHROME",
        "Mac OS X",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "FIREFOX",
        "Windows 10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    (
        "SAFARI",
        "iOS",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    (
        "EDGE",
        "Windows 10",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
];
const APPS: &[&str] = &[
    "Salesforce",
    "Slack",
    "GitHub",
    "Workday",
    "Zoom",
    "Google Workspace",
];
const DEVICES: &[(&str, &str)] = &[
    ("iPhone", "IOS"),
    ("Pixel 9", "ANDROID"),
    ("Galaxy S24", "ANDROID"),
    ("iPhone 16", "IOS"),
];

pub struct Generator {
    rng: StdRng,
    engine: Engine,
    domain: String,
    people: Vec<Person>,
    /// Indexes into `people` of the admins and help-desk staff.
    staff: Vec<usize>,
    mfa_ratio: f64,
    counter: u64,
    /// What users will do, when: (due, person, what), kept sorted.
    follow_ups: std::collections::BTreeSet<(DateTime<Utc>, usize, FollowUp)>,
    /// People an attack script is using: ordinary traffic makes no MFA change to them.
    reserved: std::collections::HashSet<usize>,
}

/// One generated event, and the user whose factors it changed (for the Factors API).
pub struct Step {
    pub event: Value,
    pub changed_user: Option<Value>,
}

impl Generator {
    /// `None` for the quiet scenario. `mfa_ratio` is the share of events that change a factor.
    pub fn new(scenario: Scenario, seed: u64, users: usize, mfa_ratio: f64) -> Option<Generator> {
        let engine = match scenario {
            Scenario::None => return None,
            Scenario::Classic => Engine::Classic,
            Scenario::Steady | Scenario::Takeover | Scenario::Attacks => Engine::Identity,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let domain = "example.com".to_owned();
        let mut people = Vec::with_capacity(users.max(2));
        for i in 0..users.max(2) {
            let first = FIRST[i % FIRST.len()];
            let last = LAST[(i / FIRST.len() + i * 7) % LAST.len()];
            let login = if i < FIRST.len() * LAST.len() {
                format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase())
            } else {
                format!(
                    "{}.{}{i}@{domain}",
                    first.to_lowercase(),
                    last.to_lowercase()
                )
            };
            let place = PLACES[rng.gen_range(0..PLACES.len())];
            let mut person = Person {
                id: okta_id("00u", &login),
                name: format!("{first} {last}"),
                login,
                locale: if rng.gen_bool(0.2) { "fr_FR" } else { "en_US" },
                ip: format!(
                    "{}.{}.{}",
                    place.2,
                    rng.gen_range(0..256),
                    rng.gen_range(1..255)
                ),
                city: place.0,
                country: place.1,
                browser: BROWSERS[rng.gen_range(0..BROWSERS.len())],
                mobile_ip: format!(
                    "{}.{}.{}",
                    place.2,
                    rng.gen_range(0..256),
                    rng.gen_range(1..255)
                ),
                mobile_browser: BROWSERS[2],
                trip: None,
                factors: Vec::new(),
            };
            // Most people have Okta Verify; many a phone; a few a security key.
            let mut kinds = vec![0usize];
            for (k, p) in [(1, 0.5), (3, 0.3), (4, 0.2), (5, 0.15), (6, 0.1), (8, 0.03)] {
                if rng.gen_bool(p) {
                    kinds.push(k);
                }
            }
            for k in kinds {
                let f = new_factor(&mut rng, &person, k);
                person.factors.push(f);
            }
            people.push(person);
        }
        // One admin in twenty-five (at least two people on staff).
        let staff = (0..people.len()).step_by(25).chain([1]).collect();
        Some(Generator {
            rng,
            engine,
            domain,
            people,
            staff,
            mfa_ratio,
            counter: 0,
            follow_ups: std::collections::BTreeSet::new(),
            reserved: std::collections::HashSet::new(),
        })
    }

    /// The users as Okta User objects with their factors, for the Users and Factors APIs.
    pub fn users(&self) -> Vec<Value> {
        self.people.iter().map(|p| self.user_json(p)).collect()
    }

    fn user_json(&self, p: &Person) -> Value {
        let (first, last) = p.name.split_once(' ').unwrap_or((&p.name, ""));
        let factors: Vec<Value> = p
            .factors
            .iter()
            .map(|f| {
                let profile = match (f.factor_type, &f.phone, &f.device) {
                    ("sms", Some(phone), _) => json!({ "phoneNumber": phone }),
                    ("call", Some(phone), _) => json!({ "phoneNumber": phone, "phoneExtension": null }),
                    ("email", _, _) => json!({ "email": p.login }),
                    ("push", _, Some((name, platform))) => json!({
                        "credentialId": p.login, "deviceType": if *platform == "IOS" { "SmartPhone_IPhone" } else { "SmartPhone_Android" },
                        "name": name, "platform": platform, "version": "18.1" }),
                    ("question", _, _) => json!({ "question": "favorite_security_question", "questionText": "What is your favorite security question?" }),
                    _ => json!({ "credentialId": p.login }),
                };
                json!({ "id": f.id, "factorType": f.factor_type, "provider": f.provider, "status": "ACTIVE", "profile": profile })
            })
            .collect();
        let second = format!("{}@personal.example.net", first.to_lowercase());
        json!({
            "id": p.id,
            "status": "ACTIVE",
            "profile": {
                "firstName": first, "lastName": last, "login": p.login, "email": p.login,
                "secondEmail": second, "locale": p.locale, "mobilePhone": null,
            },
            "factors": factors,
        })
    }

    /// The next event, published at `published`.
    pub fn next(&mut self, published: DateTime<Utc>) -> Step {
        self.counter += 1;
        if let Some(&due) = self.follow_ups.first()
            && due.0 <= published
        {
            self.follow_ups.remove(&due);
            if let Some(step) = self.follow_up(published, due.1, due.2) {
                return step;
            }
        }
        if self.rng.gen_bool(self.mfa_ratio.clamp(0.0, 1.0)) {
            self.mfa_change(published)
        } else {
            Step {
                event: self.ordinary(published),
                changed_user: None,
            }
        }
    }

    /// The account-takeover script: returns its events, to be published from `start` on.
    pub fn takeover(&mut self, start: DateTime<Utc>) -> Vec<Step> {
        let victim = self.rng.gen_range(0..self.people.len());
        let attacker_ip = format!(
            "185.220.{}.{}",
            self.rng.gen_range(0..256),
            self.rng.gen_range(1..255)
        );
        let mut steps = Vec::new();
        let at = |s: i64| start + chrono::Duration::seconds(s);
        // Signed in from an unfamiliar place with stolen credentials…
        {
            let p = &mut self.people[victim];
            p.ip = attacker_ip;
            p.city = "Unknown";
            p.country = "Romania";
            p.browser = BROWSERS[1];
        }
        let mut e = self.base(at(0), "user.session.start", "User login to Okta", victim);
        e["outcome"] = json!({ "result": "SUCCESS" });
        steps.push(Step {
            event: e,
            changed_user: None,
        });
        // …reset every factor through self service…
        let victim_person = self.people[victim].clone();
        for f in &victim_person.factors {
            let mut e = self.factor_event(
                at(30),
                "user.mfa.factor.deactivate",
                victim,
                victim,
                f,
                "reset",
            );
            e["debugContext"]["debugData"]["requestUri"] = json!("/idp/myaccount/authenticators");
            steps.push(Step {
                event: e,
                changed_user: None,
            });
        }
        self.people[victim].factors.clear();
        // …and enrolled their own phone.
        let phone = Factor {
            phone: Some(format!("+4072{:07}", self.rng.gen_range(0..10_000_000))),
            ..new_factor(&mut self.rng, &self.people[victim], 1)
        };
        let e = self.factor_event(
            at(60),
            "user.mfa.factor.activate",
            victim,
            victim,
            &phone,
            "set up",
        );
        self.people[victim].factors.push(phone);
        let changed = Some(self.user_json(&self.people[victim]));
        steps.push(Step {
            event: e,
            changed_user: changed,
        });
        steps
    }

    /// A user's follow-up: enrolling again a kind they had.
    fn follow_up(&mut self, published: DateTime<Utc>, who: usize, what: FollowUp) -> Option<Step> {
        let FollowUp::ReEnroll(kind) = what;
        if self.reserved.contains(&who)
            || self.people[who]
                .factors
                .iter()
                .any(|f| f.internal == KINDS[kind].2)
        {
            return None;
        }
        let f = new_factor(&mut self.rng, &self.people[who], kind);
        let e = self.factor_event(
            published,
            "user.mfa.factor.activate",
            who,
            who,
            &f,
            "set up",
        );
        self.people[who].factors.push(f);
        Some(Step {
            event: e,
            changed_user: Some(self.user_json(&self.people[who])),
        })
    }

    /// After `who` lost `kinds`: they enroll them again, the strongest first, between `from` and
    /// `to` minutes later (people re-enroll at their next sign-in; a lost key is replaced).
    fn schedule_re_enroll(
        &mut self,
        published: DateTime<Utc>,
        who: usize,
        kinds: &[usize],
        from: i64,
        to: i64,
    ) {
        let mut at = published + chrono::Duration::minutes(self.rng.gen_range(from..to));
        let mut kinds = kinds.to_vec();
        // Phishing-resistant first (webauthn, FastPass), then the rest.
        kinds.sort_by_key(|k| !matches!(KINDS[*k].0, "webauthn" | "signed_nonce"));
        for k in kinds {
            self.follow_ups.insert((at, who, FollowUp::ReEnroll(k)));
            at += chrono::Duration::seconds(self.rng.gen_range(20..120));
        }
    }

    /// The `KINDS` index of a factor.
    fn kind_of(f: &Factor) -> usize {
        KINDS.iter().position(|k| k.2 == f.internal).unwrap_or(0)
    }

    fn mfa_change(&mut self, published: DateTime<Utc>) -> Step {
        let mut who = self.rng.gen_range(0..self.people.len());
        // People an attack script is using are left to it; people about to enroll again after
        // a reset do that first.
        let busy = |g: &Self, who: usize| {
            g.reserved.contains(&who) || g.follow_ups.iter().any(|(_, w, _)| *w == who)
        };
        for _ in 0..8 {
            if !busy(self, who) {
                break;
            }
            who = self.rng.gen_range(0..self.people.len());
        }
        if busy(self, who) {
            return Step {
                event: self.ordinary(published),
                changed_user: None,
            };
        }
        let roll: f64 = self.rng.r#gen();
        let admin = self.staff[self.rng.gen_range(0..self.staff.len())];
        let event = if roll < 0.35 || self.people[who].factors.is_empty() {
            // Enroll a factor the user lacks.
            let have: Vec<&str> = self.people[who]
                .factors
                .iter()
                .map(|f| f.internal)
                .collect();
            let choices: Vec<usize> = (0..KINDS.len() - 1)
                .filter(|&k| !have.contains(&KINDS[k].2))
                .collect();
            let Some(&k) = choices.choose(&mut self.rng) else {
                return self.reset_one(published, who, who);
            };
            let f = new_factor(&mut self.rng, &self.people[who], k);
            let e = self.factor_event(
                published,
                "user.mfa.factor.activate",
                who,
                who,
                &f,
                "set up",
            );
            self.people[who].factors.push(f);
            e
        } else if roll < 0.55 {
            return self.reset_one(published, who, who);
        } else if roll < 0.65 {
            return self.reset_one(published, who, admin);
        } else if roll < 0.75 {
            // An admin (or the help desk) resets everything.
            let mut e = self.base(
                published,
                "user.mfa.factor.reset_all",
                "Reset all factors for user",
                admin,
            );
            e["target"] = json!([self.user_target(who)]);
            e["legacyEventType"] = json!("core.user.factor.reset_all");
            e["debugContext"]["debugData"]["requestUri"] = json!(format!(
                "/api/v1/users/{}/lifecycle/reset_factors",
                self.people[who].id
            ));
            let had: Vec<usize> = self.people[who].factors.iter().map(Self::kind_of).collect();
            self.people[who].factors.clear();
            self.schedule_re_enroll(published, who, &had, 5, 240);
            e
        } else if roll < 0.82 {
            // Update: a new security question, or a re-registered phone.
            let idx = self.rng.gen_range(0..self.people[who].factors.len());
            let f = self.people[who].factors[idx].clone();
            let mut e =
                self.factor_event(published, "user.mfa.factor.update", who, who, &f, "updated");
            e["legacyEventType"] = json!("core.user.factor.update");
            e
        } else if roll < 0.88 {
            // A provisioning app removes a factor.
            let idx = self.rng.gen_range(0..self.people[who].factors.len());
            let f = self.people[who].factors.remove(idx);
            self.after_removal(published, who, &f);
            let mut e = self.factor_event(
                published,
                "user.mfa.factor.deactivate",
                who,
                who,
                &f,
                "reset",
            );
            e["actor"] = json!({ "id": "0oa1provisioner0000x", "type": "PublicClientApp", "alternateId": "acme-provisioner", "displayName": "acme-provisioner", "detailEntry": null });
            e["debugContext"]["debugData"]["requestUri"] = json!(format!(
                "/api/v1/users/{}/factors/{}",
                self.people[who].id, f.id
            ));
            e
        } else if roll < 0.93 && self.engine == Engine::Identity {
            // Okta suspends a factor it suspects compromised.
            let idx = self.rng.gen_range(0..self.people[who].factors.len());
            let f = self.people[who].factors[idx].clone();
            let mut e = self.factor_event(
                published,
                "user.mfa.factor.suspend",
                who,
                who,
                &f,
                "suspended",
            );
            e["actor"] = json!({ "id": "0oasystemprincipal00", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System", "detailEntry": null });
            if let Some(o) = e.as_object_mut() {
                o.remove("legacyEventType");
            }
            e
        } else {
            // Enrolling from Settings after the session's MFA expired.
            let mut e = self.base(
                published,
                "user.mfa.attempt_bypass",
                "Attempted bypass of MFA",
                who,
            );
            e["target"] = json!([self.user_target(who)]);
            e["outcome"] = json!({ "result": "FAILURE", "reason": null });
            e["legacyEventType"] = json!("core.user_auth.mfa_bypass_attempted");
            e
        };
        let changed = Some(self.user_json(&self.people[who]));
        Step {
            event,
            changed_user: changed,
        }
    }

    fn reset_one(&mut self, published: DateTime<Utc>, who: usize, actor: usize) -> Step {
        if self.people[who].factors.is_empty() {
            return Step {
                event: self.ordinary(published),
                changed_user: None,
            };
        }
        let idx = self.rng.gen_range(0..self.people[who].factors.len());
        let f = self.people[who].factors.remove(idx);
        self.after_removal(published, who, &f);
        let mut e = self.factor_event(
            published,
            "user.mfa.factor.deactivate",
            actor,
            who,
            &f,
            "reset",
        );
        if actor != who {
            e["debugContext"]["debugData"]["requestUri"] = json!(format!(
                "/api/v1/users/{}/factors/{}",
                self.people[who].id, f.id
            ));
        }
        Step {
            event: e,
            changed_user: Some(self.user_json(&self.people[who])),
        }
    }

    /// After a factor is removed: a phishing-resistant one is replaced within half an hour; the
    /// last one is enrolled again at the next sign-in.
    fn after_removal(&mut self, published: DateTime<Utc>, who: usize, f: &Factor) {
        if matches!(f.factor_type, "webauthn" | "signed_nonce") {
            self.schedule_re_enroll(published, who, &[Self::kind_of(f)], 1, 30);
        } else if self.people[who].factors.is_empty() {
            self.schedule_re_enroll(published, who, &[Self::kind_of(f)], 5, 240);
        }
    }

    /// A factor lifecycle event in this org's engine's shape.
    fn factor_event(
        &mut self,
        published: DateTime<Utc>,
        event_type: &str,
        actor: usize,
        who: usize,
        f: &Factor,
        verb: &str,
    ) -> Value {
        let display = match event_type {
            "user.mfa.factor.activate" => "Activate factor for user",
            "user.mfa.factor.deactivate" => "Reset factor for user",
            "user.mfa.factor.update" => "Update factor for user",
            "user.mfa.factor.suspend" => "Suspend factor for user",
            _ => "Factor lifecycle",
        };
        let mut e = self.base(published, event_type, display, actor);
        let mut targets = vec![self.user_target(who)];
        match self.engine {
            Engine::Classic => {
                e["outcome"] = json!({ "result": "SUCCESS", "reason": format!("User {verb} {} factor", f.internal) });
            }
            Engine::Identity => {
                e["outcome"] = json!({ "result": "SUCCESS", "reason": null });
                targets.push(
                    json!({ "id": f.id, "type": "AuthenticatorEnrollment", "alternateId": "unknown",
                                     "displayName": f.authenticator, "detailEntry": null }),
                );
                if let Some(phone) = &f.phone {
                    e["debugContext"]["debugData"]["phoneNumber"] = json!(phone);
                }
                if let Some((name, platform)) = &f.device {
                    e["debugContext"]["debugData"]["deviceName"] = json!(name);
                    e["debugContext"]["debugData"]["platform"] = json!(platform);
                }
                e["debugContext"]["debugData"]["requestUri"] = json!("/idp/idx/challenge/answer");
            }
        }
        if let Some(legacy) = match event_type {
            "user.mfa.factor.activate" => Some("core.user.factor.activate"),
            "user.mfa.factor.deactivate" => Some("core.user.factor.deactivate"),
            "user.mfa.factor.update" => Some("core.user.factor.update"),
            _ => None,
        } {
            e["legacyEventType"] = json!(legacy);
        }
        e["target"] = Value::Array(targets);
        e
    }

    /// Sign-ins, verifications, app access and admin work: what most of a log is.
    fn ordinary(&mut self, published: DateTime<Utc>) -> Value {
        let who = self.rng.gen_range(0..self.people.len());
        let roll: f64 = self.rng.r#gen();
        if roll < 0.30 {
            let ok = self.rng.gen_bool(0.93);
            let mut e = self.base(published, "user.session.start", "User login to Okta", who);
            e["outcome"] = if ok {
                json!({ "result": "SUCCESS", "reason": null })
            } else {
                json!({ "result": "FAILURE", "reason": "INVALID_CREDENTIALS" })
            };
            e["legacyEventType"] = json!(if ok {
                "core.user_auth.login_success"
            } else {
                "core.user_auth.login_failed"
            });
            e
        } else if roll < 0.55 {
            let factor = self.people[who]
                .factors
                .first()
                .map_or("PASSWORD_AS_FACTOR", |f| f.internal);
            let mut e = self.base(
                published,
                "user.authentication.auth_via_mfa",
                "Authentication of user via MFA",
                who,
            );
            e["debugContext"]["debugData"]["factor"] = json!(factor);
            e["debugContext"]["debugData"]["factorIntent"] = json!("AUTHENTICATION");
            e["legacyEventType"] = json!("core.user.factor.attempt_success");
            e
        } else if roll < 0.80 {
            let app = APPS[self.rng.gen_range(0..APPS.len())];
            let mut e = self.base(
                published,
                "user.authentication.sso",
                "User single sign on to app",
                who,
            );
            e["target"] = json!([{ "id": okta_id("0oa", app), "type": "AppInstance", "alternateId": app, "displayName": app, "detailEntry": { "signOnModeType": "SAML_2_0" } }]);
            e["legacyEventType"] = json!("app.auth.sso");
            e
        } else if roll < 0.88 {
            self.base(
                published,
                "policy.evaluate_sign_on",
                "Evaluation of sign-on policy",
                who,
            )
        } else if roll < 0.94 {
            self.base(published, "user.session.end", "User logout from Okta", who)
        } else if roll < 0.97 {
            let mut e = self.base(
                published,
                "system.sms.send_factor_verify_message",
                "Send SMS verification message",
                who,
            );
            e["legacyEventType"] = json!("core.user.sms.message_sent.factor");
            e
        } else {
            let admin = self.staff[self.rng.gen_range(0..self.staff.len())];
            let app = APPS[self.rng.gen_range(0..APPS.len())];
            let mut e = self.base(
                published,
                "application.user_membership.add",
                "Add user to application membership",
                admin,
            );
            e["target"] = json!([self.user_target(who), { "id": okta_id("0oa", app), "type": "AppInstance", "alternateId": app, "displayName": app, "detailEntry": null }]);
            e
        }
    }

    fn user_target(&self, who: usize) -> Value {
        let p = &self.people[who];
        json!({ "id": p.id, "type": "User", "alternateId": p.login, "displayName": p.name, "detailEntry": null })
    }

    /// What every event has: actor, client, context, transaction; a `User` target (the actor).
    fn base(
        &mut self,
        published: DateTime<Utc>,
        event_type: &str,
        display: &str,
        actor: usize,
    ) -> Value {
        // Where the person is: mostly at their desk, sometimes on their phone's network, now
        // and then on a trip of a few days (about one person in a hundred sets off each day).
        let roll = self.rng.gen_range(0..1000);
        // A trip begins with a sign-in from where the person arrived.
        let starts_trip = self.rng.gen_bool(0.006) && event_type == "user.session.start";
        let trip_days = self.rng.gen_range(1..6);
        let destination = self.rng.gen_range(0..PLACES.len());
        let p = &mut self.people[actor];
        if p.trip.is_some_and(|(until, _)| until <= published) {
            p.trip = None;
        }
        if p.trip.is_none() && starts_trip {
            p.trip = Some((published + chrono::Duration::days(trip_days), destination));
        }
        let p = &self.people[actor];
        let (ip, city, country, browser) = match p.trip {
            Some((_, to)) => {
                let (city, country, prefix) = PLACES[to];
                (
                    format!("{prefix}.77.{}", actor % 250 + 1),
                    city,
                    country,
                    p.browser,
                )
            }
            None if roll < 180 => (p.mobile_ip.clone(), p.city, p.country, p.mobile_browser),
            None => (p.ip.clone(), p.city, p.country, p.browser),
        };
        let n = self.counter;
        let request_id = okta_id("", &format!("req{n}{}", self.domain))
            .chars()
            .take(27)
            .collect::<String>();
        json!({
            "uuid": uuid_from(&mut self.rng),
            "published": okta_time(published),
            "eventType": event_type,
            "version": "0",
            "severity": "INFO",
            "displayMessage": display,
            "actor": { "id": p.id, "type": "User", "alternateId": p.login, "displayName": p.name, "detailEntry": null },
            "client": {
                "userAgent": { "rawUserAgent": browser.2, "os": browser.1, "browser": browser.0 },
                "zone": "null", "device": "Computer", "id": null, "ipAddress": ip,
                "geographicalContext": { "city": city, "state": null, "country": country, "postalCode": null, "geolocation": null },
            },
            "device": null,
            "authenticationContext": { "authenticationProvider": null, "credentialProvider": null, "credentialType": null,
                                       "issuer": null, "interface": null, "authenticationStep": 0,
                                       "externalSessionId": format!("102{}", &request_id[..20.min(request_id.len())]) },
            "outcome": { "result": "SUCCESS", "reason": null },
            "securityContext": { "asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": false },
            "debugContext": { "debugData": { "requestId": request_id, "requestUri": "/api/v1/authn" } },
            "legacyEventType": null,
            "transaction": { "type": "WEB", "id": request_id, "detail": {} },
            "request": { "ipChain": [{ "ip": ip, "geographicalContext": null, "version": "V4", "source": null }] },
            "target": [{ "id": p.id, "type": "User", "alternateId": p.login, "displayName": p.name, "detailEntry": null }],
        })
    }
}

fn new_factor(rng: &mut StdRng, p: &Person, kind: usize) -> Factor {
    let (factor_type, provider, internal, authenticator) = KINDS[kind];
    let prefix = match factor_type {
        "sms" => "sms",
        "call" => "clf",
        "push" => "opf",
        "question" => "ufs",
        "email" => "emf",
        "token:software:totp" => "ost",
        "webauthn" => "fwf",
        "signed_nonce" => "crp",
        _ => "rsa",
    };
    let phone = matches!(factor_type, "sms" | "call").then(|| {
        format!(
            "+1{}{:07}",
            rng.gen_range(201..990),
            rng.gen_range(0..10_000_000)
        )
    });
    let device = (factor_type == "push").then(|| {
        let (model, platform) = DEVICES[rng.gen_range(0..DEVICES.len())];
        let owner = p.name.split(' ').next().unwrap_or("My");
        (format!("{owner}'s {model}"), platform)
    });
    Factor {
        id: okta_id(
            prefix,
            &format!("{}/{internal}/{}", p.id, rng.r#gen::<u32>()),
        ),
        factor_type,
        provider,
        internal,
        authenticator,
        phone,
        device,
    }
}

fn uuid_from(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.r#gen();
    format!(
        "{:08x}-{:04x}-11f0-{:04x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        (u16::from_be_bytes([b[8], b[9]]) & 0x3fff) | 0x8000,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_time as t0;

    fn run(scenario: Scenario, seed: u64, n: usize) -> Vec<Value> {
        let mut g = Generator::new(scenario, seed, 40, 0.05).unwrap();
        (0..n)
            .map(|i| g.next(t0() + chrono::Duration::seconds(i as i64)).event)
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_org() {
        assert_eq!(run(Scenario::Steady, 7, 300), run(Scenario::Steady, 7, 300));
        assert_ne!(run(Scenario::Steady, 7, 300), run(Scenario::Steady, 8, 300));
        assert!(Generator::new(Scenario::None, 1, 10, 0.1).is_none());
    }

    #[test]
    fn mfa_changes_come_at_the_set_ratio_amid_ordinary_traffic() {
        let events = run(Scenario::Steady, 1, 20_000);
        let mfa = events
            .iter()
            .filter(|e| {
                let t = e["eventType"].as_str().unwrap();
                t.starts_with("user.mfa.factor.") || t == "user.mfa.attempt_bypass"
            })
            .count();
        assert!((800..1200).contains(&mfa), "{mfa} of 20000 at 5%");
        let kinds: std::collections::HashSet<&str> = events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap())
            .collect();
        for t in [
            "user.session.start",
            "user.authentication.sso",
            "user.mfa.factor.activate",
            "user.mfa.factor.deactivate",
            "user.mfa.factor.reset_all",
            "user.mfa.factor.suspend",
        ] {
            assert!(kinds.contains(t), "{t}");
        }
        let uuids: std::collections::HashSet<&str> =
            events.iter().map(|e| e["uuid"].as_str().unwrap()).collect();
        assert_eq!(uuids.len(), events.len());
    }

    #[test]
    fn each_engine_has_its_shape() {
        let is_activate = |e: &&Value| e["eventType"] == "user.mfa.factor.activate";
        let classic = run(Scenario::Classic, 3, 5000);
        let c = classic.iter().find(is_activate).unwrap();
        assert!(
            c["outcome"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("User set up ")
        );
        assert_eq!(c["target"].as_array().unwrap().len(), 1);
        assert_eq!(c["legacyEventType"], "core.user.factor.activate");
        assert!(
            classic
                .iter()
                .all(|e| e["eventType"] != "user.mfa.factor.suspend")
        );

        let oie = run(Scenario::Steady, 3, 5000);
        let o = oie.iter().find(is_activate).unwrap();
        assert_eq!(o["target"][1]["type"], "AuthenticatorEnrollment");
        assert!(oie.iter().filter(is_activate).any(|e| {
            e["debugContext"]["debugData"]["phoneNumber"]
                .as_str()
                .is_some_and(|p| p.starts_with("+1"))
        }));
    }

    #[test]
    fn the_factors_api_follows_the_changes() {
        let mut g = Generator::new(Scenario::Steady, 5, 10, 1.0).unwrap();
        let mut changes = 0;
        for i in 0..50 {
            let step = g.next(t0() + chrono::Duration::seconds(i));
            // A user still due to enroll again is left alone (that step is ordinary traffic);
            // every factor lifecycle event must update the user the Factors API shows.
            let kind = step.event["eventType"].as_str().unwrap();
            if !kind.starts_with("user.mfa.factor.") && !kind.starts_with("system.mfa.factor.") {
                continue;
            }
            changes += 1;
            let user = step
                .changed_user
                .expect("every MFA change updates its user");
            let target_user = step.event["target"][0]["id"].as_str().unwrap();
            if step.event["eventType"] == "user.mfa.factor.activate" {
                let fid = step.event["target"][1]["id"].as_str().unwrap();
                assert_eq!(user["id"], target_user);
                assert!(
                    user["factors"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["id"] == fid)
                );
            }
        }
        assert!(changes >= 10, "only {changes} MFA changes in 50 steps");
    }

    #[test]
    fn the_takeover_resets_then_enrolls_a_foreign_phone() {
        let mut g = Generator::new(Scenario::Takeover, 9, 10, 0.02).unwrap();
        let steps = g.takeover(t0());
        let types: Vec<&str> = steps
            .iter()
            .map(|s| s.event["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(types.first(), Some(&"user.session.start"));
        assert_eq!(types.last(), Some(&"user.mfa.factor.activate"));
        assert!(types.contains(&"user.mfa.factor.deactivate"));
        let last = &steps.last().unwrap().event;
        assert!(
            last["debugContext"]["debugData"]["phoneNumber"]
                .as_str()
                .unwrap()
                .starts_with("+40")
        );
        assert_eq!(last["client"]["geographicalContext"]["country"], "Romania");
    }
}
