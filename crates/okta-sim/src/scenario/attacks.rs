//! Named attack scripts, one per kind of MFA-centred takeover factorwatch's detections look for,
//! to mix into ordinary traffic: each returns its events with their `published` times (from
//! `start` on) and the people it used, who ordinary traffic then leaves alone.
//!
//! Sources for the shapes: Okta's advisory of 31 August 2023 and CISA AA23-320A (help-desk
//! resets, then the attacker's own factor; mass resets by a taken-over admin), the 2022 LAPSUS$
//! intrusion through Okta Support, and Okta's documentation of bypass attempts and of users'
//! suspicious-activity reports.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{Generator, KINDS, Step, new_factor};

/// The attacks there are, each named after what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Attack {
    /// The help desk is talked into resetting a user's factors; twenty minutes later the attacker
    /// signs in from abroad and enrolls their own phone.
    HelpDeskTakeover,
    /// The user's security key is removed from their session and SMS enrolled instead.
    FactorDowngrade,
    /// A taken-over admin account resets the factors of eight users in ten minutes.
    MassReset,
    /// One phone number enrolled on two accounts.
    SharedPhone,
    /// One Okta Verify device bound to two accounts.
    SharedDevice,
    /// Okta Support (impersonating an admin) resets a user's factors; Okta's system account
    /// resets another's.
    SupportReset,
    /// Every factor of a user reset by an admin, and nothing enrolled again.
    MfaLeftOff,
    /// Four attempts to bypass MFA on one account within five minutes.
    BypassBurst,
    /// A phone enrolled on a user's account from abroad; two hours later the user reports it.
    ReportedNotMe,
}

impl Attack {
    pub const ALL: [Attack; 9] = [
        Attack::HelpDeskTakeover,
        Attack::FactorDowngrade,
        Attack::MassReset,
        Attack::SharedPhone,
        Attack::SharedDevice,
        Attack::SupportReset,
        Attack::MfaLeftOff,
        Attack::BypassBurst,
        Attack::ReportedNotMe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::HelpDeskTakeover => "help-desk-takeover",
            Attack::FactorDowngrade => "factor-downgrade",
            Attack::MassReset => "mass-reset",
            Attack::SharedPhone => "shared-phone",
            Attack::SharedDevice => "shared-device",
            Attack::SupportReset => "support-reset",
            Attack::MfaLeftOff => "mfa-left-off",
            Attack::BypassBurst => "bypass-burst",
            Attack::ReportedNotMe => "reported-not-me",
        }
    }

    /// The factorwatch rule meant to find it.
    pub fn rule(self) -> &'static str {
        match self {
            Attack::HelpDeskTakeover => "reset_then_enroll_new_place",
            Attack::FactorDowngrade => "factor_downgrade",
            Attack::MassReset => "bulk_admin_reset",
            Attack::SharedPhone => "shared_phone",
            Attack::SharedDevice => "shared_device",
            Attack::SupportReset => "support_initiated_reset",
            Attack::MfaLeftOff => "mfa_left_off",
            Attack::BypassBurst => "bypass_burst",
            Attack::ReportedNotMe => "reported_not_me",
        }
    }

    /// How long after `start` its last event comes (a caller keeps the org's traffic going at
    /// least that long, plus the rule's window for the rules that wait).
    pub fn span(self) -> chrono::Duration {
        match self {
            Attack::ReportedNotMe => chrono::Duration::hours(3),
            Attack::FactorDowngrade => chrono::Duration::hours(1),
            _ => chrono::Duration::minutes(30),
        }
    }
}

/// An attack's events and whom it used.
pub struct Script {
    pub attack: Attack,
    /// (published, step), in time order.
    pub steps: Vec<(DateTime<Utc>, Step)>,
    /// The users attacked (Okta ids).
    pub victims: Vec<String>,
}

/// Where an attacker comes from: an address on a hosting network abroad, another browser.
struct Origin {
    ip: String,
    country: &'static str,
    city: &'static str,
}

const ABROAD: &[(&str, &str, &str)] = &[
    ("Bucharest", "Romania", "185.220"),
    ("Lagos", "Nigeria", "102.89"),
    ("Jakarta", "Indonesia", "103.152"),
    ("Sao Paulo", "Brazil", "177.54"),
];

impl Generator {
    fn origin(&mut self) -> Origin {
        let (city, country, prefix) = ABROAD[self.rng.gen_range(0..ABROAD.len())];
        Origin {
            ip: format!(
                "{prefix}.{}.{}",
                self.rng.gen_range(0..256),
                self.rng.gen_range(1..255)
            ),
            country,
            city,
        }
    }

    /// An event seen as coming from `o` with a Windows Firefox.
    fn at_origin(e: &mut Value, o: &Origin) {
        e["client"]["ipAddress"] = json!(o.ip);
        e["client"]["geographicalContext"] = json!({ "city": o.city, "state": null, "country": o.country, "postalCode": null, "geolocation": null });
        e["client"]["userAgent"] = json!({ "rawUserAgent": super::BROWSERS[1].2, "os": super::BROWSERS[1].1, "browser": super::BROWSERS[1].0 });
        e["request"]["ipChain"] =
            json!([{ "ip": o.ip, "geographicalContext": null, "version": "V4", "source": null }]);
    }

    /// An event seen as coming from the person's own desk.
    fn at_home(&self, e: &mut Value, who: usize) {
        let p = &self.people[who];
        e["client"]["ipAddress"] = json!(p.ip);
        e["client"]["geographicalContext"] = json!({ "city": p.city, "state": null, "country": p.country, "postalCode": null, "geolocation": null });
        e["client"]["userAgent"] =
            json!({ "rawUserAgent": p.browser.2, "os": p.browser.1, "browser": p.browser.0 });
        e["request"]["ipChain"] =
            json!([{ "ip": p.ip, "geographicalContext": null, "version": "V4", "source": null }]);
    }

    /// Someone not yet used by an attack (and not on staff), now reserved.
    fn victim(&mut self) -> usize {
        for _ in 0..10_000 {
            let who = self.rng.gen_range(0..self.people.len());
            if !self.reserved.contains(&who) && !self.staff.contains(&who) {
                self.reserved.insert(who);
                return who;
            }
        }
        0
    }

    fn admin(&mut self) -> usize {
        self.staff[self.rng.gen_range(0..self.staff.len())]
    }

    fn user_step(&self, event: Value, who: usize) -> Step {
        Step {
            event,
            changed_user: Some(self.user_json(&self.people[who])),
        }
    }

    fn enroll(
        &mut self,
        at: DateTime<Utc>,
        who: usize,
        kind: usize,
        phone: Option<String>,
    ) -> Step {
        let mut f = new_factor(&mut self.rng, &self.people[who], kind);
        if phone.is_some() {
            f.phone = phone;
        }
        let e = self.factor_event(at, "user.mfa.factor.activate", who, who, &f, "set up");
        self.people[who].factors.push(f);
        self.user_step(e, who)
    }

    fn reset_all(&mut self, at: DateTime<Utc>, who: usize, actor: usize) -> Step {
        let mut e = self.base(
            at,
            "user.mfa.factor.reset_all",
            "Reset all factors for user",
            actor,
        );
        e["target"] = json!([self.user_target(who)]);
        e["legacyEventType"] = json!("core.user.factor.reset_all");
        e["debugContext"]["debugData"]["requestUri"] = json!(format!(
            "/api/v1/users/{}/lifecycle/reset_factors",
            self.people[who].id
        ));
        self.at_home(&mut e, actor);
        self.people[who].factors.clear();
        self.user_step(e, who)
    }

    /// The attack's script, its first event at `start`.
    pub fn attack(&mut self, attack: Attack, start: DateTime<Utc>) -> Script {
        let at = |m: i64| start + chrono::Duration::minutes(m);
        let mut steps: Vec<(DateTime<Utc>, Step)> = Vec::new();
        let mut victims = Vec::new();
        let sms = KINDS.iter().position(|k| k.0 == "sms").unwrap_or(1);
        let webauthn = KINDS.iter().position(|k| k.0 == "webauthn").unwrap_or(6);
        let push = KINDS.iter().position(|k| k.0 == "push").unwrap_or(0);
        match attack {
            Attack::HelpDeskTakeover => {
                let v = self.victim();
                victims.push(v);
                let helpdesk = self.admin();
                steps.push((at(0), self.reset_all(at(0), v, helpdesk)));
                let o = self.origin();
                let mut e = self.base(at(15), "user.session.start", "User login to Okta", v);
                Self::at_origin(&mut e, &o);
                steps.push((
                    at(15),
                    Step {
                        event: e,
                        changed_user: None,
                    },
                ));
                let phone = format!("+4072{:07}", self.rng.gen_range(0..10_000_000));
                let mut step = self.enroll(at(20), v, sms, Some(phone));
                Self::at_origin(&mut step.event, &o);
                steps.push((at(20), step));
            }
            Attack::FactorDowngrade => {
                let v = self.victim();
                victims.push(v);
                // The key the user had…
                let mut step = self.enroll(at(0), v, webauthn, None);
                self.at_home(&mut step.event, v);
                steps.push((at(0), step));
                // …removed from a stolen session, and SMS put in its place.
                let idx = self.people[v]
                    .factors
                    .iter()
                    .position(|f| f.factor_type == "webauthn")
                    .unwrap_or(0);
                let f = self.people[v].factors.remove(idx);
                let mut e =
                    self.factor_event(at(40), "user.mfa.factor.deactivate", v, v, &f, "reset");
                self.at_home(&mut e, v);
                steps.push((at(40), self.user_step(e, v)));
                let mut step = self.enroll(at(45), v, sms, None);
                self.at_home(&mut step.event, v);
                steps.push((at(45), step));
            }
            Attack::MassReset => {
                let admin = self.admin();
                let o = self.origin();
                for i in 0..8 {
                    let v = self.victim();
                    victims.push(v);
                    let mut step = self.reset_all(at(i), v, admin);
                    Self::at_origin(&mut step.event, &o);
                    steps.push((at(i), step));
                    // Each user enrolls again from their desk, as after any reset.
                    let mut again = self.enroll(at(30 + i), v, push, None);
                    self.at_home(&mut again.event, v);
                    steps.push((at(30 + i), again));
                }
            }
            Attack::SharedPhone => {
                let phone = format!("+2348{:09}", self.rng.gen_range(0..1_000_000_000u64));
                for i in 0..2 {
                    let v = self.victim();
                    victims.push(v);
                    let mut step = self.enroll(at(i * 10), v, sms, Some(phone.clone()));
                    self.at_home(&mut step.event, v);
                    steps.push((at(i * 10), step));
                }
            }
            Attack::SharedDevice => {
                let device = format!("guo{:017x}", self.rng.r#gen::<u64>());
                for i in 0..2 {
                    let v = self.victim();
                    victims.push(v);
                    let mut e = self.base(at(i * 10), "device.user.add", "Add device to user", v);
                    e["target"] = json!([
                        { "id": device, "type": "Device", "alternateId": "unknown", "displayName": "Pixel 9", "detailEntry": null },
                        self.user_target(v),
                    ]);
                    self.at_home(&mut e, v);
                    steps.push((
                        at(i * 10),
                        Step {
                            event: e,
                            changed_user: None,
                        },
                    ));
                }
            }
            Attack::SupportReset => {
                // Okta Support impersonates an admin, who then resets a user's factors…
                let admin = self.admin();
                let v = self.victim();
                victims.push(v);
                let mut imp = self.base(
                    at(0),
                    "user.session.impersonation.initiate",
                    "Initiate impersonation session",
                    admin,
                );
                imp["actor"] = json!({ "id": "0oasupport000000000", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System", "detailEntry": null });
                imp["target"] = json!([self.user_target(admin)]);
                steps.push((
                    at(0),
                    Step {
                        event: imp,
                        changed_user: None,
                    },
                ));
                steps.push((at(5), self.reset_all(at(5), v, admin)));
                // …and Okta's system account resets another's.
                let w = self.victim();
                victims.push(w);
                let mut step = self.reset_all(at(10), w, admin);
                step.event["actor"] = json!({ "id": "0oasupport000000000", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System", "detailEntry": null });
                steps.push((at(10), step));
            }
            Attack::MfaLeftOff => {
                let v = self.victim();
                victims.push(v);
                let admin = self.admin();
                steps.push((at(0), self.reset_all(at(0), v, admin)));
            }
            Attack::BypassBurst => {
                let v = self.victim();
                victims.push(v);
                let o = self.origin();
                for i in 0..4 {
                    let mut e = self.base(
                        at(i),
                        "user.mfa.attempt_bypass",
                        "Attempted bypass of MFA",
                        v,
                    );
                    e["target"] = json!([self.user_target(v)]);
                    e["outcome"] = json!({ "result": "FAILURE", "reason": null });
                    e["legacyEventType"] = json!("core.user_auth.mfa_bypass_attempted");
                    Self::at_origin(&mut e, &o);
                    steps.push((
                        at(i),
                        Step {
                            event: e,
                            changed_user: None,
                        },
                    ));
                }
            }
            Attack::ReportedNotMe => {
                let v = self.victim();
                victims.push(v);
                let o = self.origin();
                let mut step = self.enroll(at(0), v, sms, None);
                Self::at_origin(&mut step.event, &o);
                steps.push((at(0), step));
                let mut e = self.base(
                    at(120),
                    "user.account.report_suspicious_activity_by_enduser",
                    "User report suspicious activity",
                    v,
                );
                self.at_home(&mut e, v);
                steps.push((
                    at(120),
                    Step {
                        event: e,
                        changed_user: None,
                    },
                ));
            }
        }
        steps.sort_by_key(|(t, _)| *t);
        Script {
            attack,
            steps,
            victims: victims.iter().map(|v| self.people[*v].id.clone()).collect(),
        }
    }
}
