//! What the detections remember of each user, bounded: the places they acted from (networks,
//! countries, devices), by day, for the baseline window; and the factors they are known to have.
//! Pure.
//!
//! A place is kept as a 64-bit hash of its value with, per day it was seen, the earliest time
//! that day: enough to answer "seen in [from, to)?" exactly at `to` (the reset) and to the day at
//! `from` (30 days earlier).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::signal::{Place, Signal, What};
use crate::classify::factor::{Kind as FactorKind, Strength};

/// Days a place is remembered (the baseline is 30 days; one more for the day it began).
pub const PLACE_DAYS: i64 = 31;
/// Distinct days a user must have been seen on for a place to be judged new.
pub const BASELINE_DAYS: usize = 3;
/// Distinct places of each kind kept per user; the least recently seen go first.
pub const MAX_PLACES: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Element {
    Network,
    Country,
    Device,
}

impl Element {
    pub const ALL: [Element; 3] = [Element::Network, Element::Country, Element::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            Element::Network => "network",
            Element::Country => "country",
            Element::Device => "device",
        }
    }

    /// The value of this element in a place, normalised.
    pub fn of(self, place: &Place) -> Option<String> {
        let v = match self {
            Element::Network => place.network(),
            Element::Country => place.country.clone(),
            Element::Device => place.device.clone(),
        }?;
        let v = v.trim().to_lowercase();
        (!v.is_empty()).then_some(v)
    }
}

/// FNV-1a: stable across builds and machines (the standard hasher is not), so a history rebuilt
/// after a restart or on another replica hashes alike.
fn fnv(kind: Element, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.as_str().bytes().chain([0]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone)]
struct Sighting {
    kind: Element,
    hash: u64,
    /// (day number, earliest time that day in ms), oldest first.
    days: Vec<(i64, i64)>,
}

/// One user's memory.
#[derive(Debug, Clone, Default)]
pub struct UserHistory {
    places: Vec<Sighting>,
    /// Factors the user is known to have, by kind (enrolled minus removed, as far as seen).
    factors: Vec<(FactorKind, u32)>,
    /// Whether any factor event was seen (else the inventory says nothing).
    factors_known: bool,
    /// Whether every factor the user has was seen enrolled: true from a reset of all factors on
    /// (factors enrolled before factorwatch's history began are unknown to it).
    factors_complete: bool,
}

/// What the detections know of a user's factors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub factors: Vec<(FactorKind, u32)>,
    pub known: bool,
    /// Every factor the user has is in `factors` (seen since a reset of all of them).
    pub complete: bool,
}

impl Inventory {
    pub fn has(&self, strength: Strength) -> bool {
        self.factors
            .iter()
            .any(|(k, n)| *n > 0 && k.strength() == strength)
    }

    pub fn is_empty(&self) -> bool {
        self.factors.iter().all(|(_, n)| *n == 0)
    }

    /// The inventory once `what` is applied.
    pub fn after(&self, what: &What) -> Inventory {
        let mut next = self.clone();
        match what {
            What::Enrolled { factor, .. } => {
                next.known = true;
                match next.factors.iter_mut().find(|(k, _)| k == factor) {
                    Some((_, n)) => *n += 1,
                    None => next.factors.push((*factor, 1)),
                }
            }
            What::Removed { factor } => {
                next.known = true;
                if let Some((_, n)) = next.factors.iter_mut().find(|(k, _)| k == factor) {
                    *n = n.saturating_sub(1);
                }
                next.factors.retain(|(_, n)| *n > 0);
            }
            What::ResetAll => {
                next.known = true;
                next.complete = true;
                next.factors.clear();
            }
            _ => {}
        }
        next
    }

    /// The kinds held, for a sentence ("sms, email").
    pub fn kinds(&self) -> Vec<&'static str> {
        self.factors
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct History {
    users: HashMap<String, UserHistory>,
}

fn day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl History {
    /// Whether the user was seen at `value` of `kind` in `[from, to)`.
    pub fn seen(
        &self,
        user: &str,
        kind: Element,
        value: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> bool {
        let h = fnv(kind, value);
        self.users.get(user).is_some_and(|u| {
            u.places
                .iter()
                .filter(|s| s.kind == kind && s.hash == h)
                .any(|s| within(&s.days, from, to))
        })
    }

    /// Whether the user was seen on at least [`BASELINE_DAYS`] distinct days in `[from, to)`:
    /// without an established history, nothing can be called new.
    pub fn has_baseline(&self, user: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        let (from_day, to_ms) = (day(from), to.timestamp_millis());
        let mut days: Vec<i64> = u
            .places
            .iter()
            .flat_map(|s| s.days.iter())
            .filter(|(d, earliest)| *d >= from_day && *earliest < to_ms)
            .map(|(d, _)| *d)
            .collect();
        days.sort_unstable();
        days.dedup();
        days.len() >= BASELINE_DAYS
    }

    pub fn inventory(&self, user: &str) -> Inventory {
        self.users
            .get(user)
            .map(|u| Inventory {
                factors: u.factors.clone(),
                known: u.factors_known,
                complete: u.factors_complete,
            })
            .unwrap_or_default()
    }

    /// Learns from a signal (after the rules have seen it); whether it taught anything (a sign-in
    /// from a place already seen that day teaches nothing). A place counts only when the user
    /// acted themself: an admin's reset is made from the admin's desk, not the user's.
    pub fn learn(&mut self, s: &Signal) -> bool {
        let Some(user) = s.user_key() else {
            return false;
        };
        let mut learnt = false;
        let entry = self.users.entry(user.to_owned()).or_default();
        if s.what.is_change() {
            let inv = Inventory {
                factors: std::mem::take(&mut entry.factors),
                known: entry.factors_known,
                complete: entry.factors_complete,
            }
            .after(&s.what);
            entry.factors = inv.factors;
            entry.factors_known = inv.known;
            entry.factors_complete = inv.complete;
            learnt = true;
        }
        let counts = matches!(
            s.what,
            What::SignIn
                | What::Enrolled { .. }
                | What::Updated { .. }
                | What::Removed { .. }
                | What::ResetAll
                | What::PasswordReset
        ) && (s.by_self() || s.what == What::SignIn);
        if !counts {
            return learnt;
        }
        let (d, ms) = (day(s.published), s.published.timestamp_millis());
        for kind in Element::ALL {
            let Some(value) = kind.of(&s.place) else {
                continue;
            };
            let h = fnv(kind, &value);
            match entry
                .places
                .iter_mut()
                .find(|p| p.kind == kind && p.hash == h)
            {
                Some(p) => match p.days.binary_search_by_key(&d, |(day, _)| *day) {
                    Ok(i) => {
                        if ms < p.days[i].1 {
                            p.days[i].1 = ms;
                            learnt = true;
                        }
                    }
                    Err(i) => {
                        p.days.insert(i, (d, ms));
                        learnt = true;
                        if p.days.len() > PLACE_DAYS as usize + 1 {
                            p.days.remove(0);
                        }
                    }
                },
                None => {
                    if entry.places.iter().filter(|p| p.kind == kind).count() >= MAX_PLACES
                        && let Some(oldest) = entry
                            .places
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| p.kind == kind)
                            .min_by_key(|(_, p)| p.days.last().map(|x| x.0))
                            .map(|(i, _)| i)
                    {
                        entry.places.swap_remove(oldest);
                    }
                    entry.places.push(Sighting {
                        kind,
                        hash: h,
                        days: vec![(d, ms)],
                    });
                    learnt = true;
                }
            }
        }
        learnt
    }

    /// Forgets places not seen for [`PLACE_DAYS`] before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = day(now) - PLACE_DAYS;
        self.users.retain(|_, u| {
            u.places.retain_mut(|p| {
                p.days.retain(|(d, _)| *d >= horizon);
                !p.days.is_empty()
            });
            !u.places.is_empty() || u.factors_known
        });
    }

    /// Users remembered.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Bytes held, approximately (for the benchmark's memory figure).
    pub fn approx_bytes(&self) -> usize {
        self.users
            .iter()
            .map(|(k, u)| {
                k.capacity()
                    + std::mem::size_of::<UserHistory>()
                    + 48
                    + u.factors.capacity() * std::mem::size_of::<(FactorKind, u32)>()
                    + u.places
                        .iter()
                        .map(|p| std::mem::size_of::<Sighting>() + p.days.capacity() * 16)
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Whether a sighting falls in `[from, to)`: exact at `to` (the earliest time of its day is
/// kept), to the day at `from`.
fn within(days: &[(i64, i64)], from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (from_day, to_ms) = (day(from), to.timestamp_millis());
    days.iter()
        .any(|(d, earliest)| *d >= from_day && *earliest < to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::signal::Party;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600 + h * 3600, 0).unwrap_or_default()
    }

    fn sign_in(h: i64, ip: &str) -> Signal {
        Signal {
            id: format!("s{h}"),
            published: at(h),
            event_type: "user.session.start".into(),
            what: What::SignIn,
            user: Some(Party {
                id: Some("u".into()),
                login: None,
                display_name: None,
                kind: None,
            }),
            actor: None,
            place: Place {
                ip: Some(ip.into()),
                country: Some("France".into()),
                ..Place::default()
            },
            session: None,
            by_user: false,
        }
    }

    #[test]
    fn a_place_is_seen_only_before_the_time_asked() {
        let mut h = History::default();
        assert!(h.learn(&sign_in(10, "198.51.100.7")));
        let net = "198.51.100.0/24";
        assert!(h.seen("u", Element::Network, net, at(0), at(11)));
        assert!(
            !h.seen("u", Element::Network, net, at(0), at(10)),
            "not before itself"
        );
        assert!(h.seen("u", Element::Country, "france", at(0), at(11)));
        assert!(!h.seen("u", Element::Network, "203.0.113.0/24", at(0), at(11)));
        assert!(!h.seen("v", Element::Network, net, at(0), at(11)));
        assert!(
            !h.has_baseline("u", at(0), at(11)),
            "one day is not a history"
        );
        h.learn(&sign_in(34, "198.51.100.7"));
        h.learn(&sign_in(58, "198.51.100.7"));
        assert!(h.has_baseline("u", at(0), at(59)));
        assert!(
            !h.has_baseline("u", at(0), at(58)),
            "not before the third day's sighting"
        );
        // Another sighting the same day, later, does not move the earliest time: nothing learnt.
        assert!(!h.learn(&sign_in(12, "198.51.100.9")));
        assert!(!h.seen("u", Element::Network, net, at(0), at(10)));
        h.prune(at(24 * 40));
        assert!(!h.has_baseline("u", at(0), at(24 * 40)));
        assert!(!h.seen("u", Element::Country, "france", at(0), at(24 * 40)));
    }

    #[test]
    fn the_inventory_counts_enrollments_and_removals() {
        let i = Inventory::default();
        assert!(!i.known);
        let i = i.after(&What::Enrolled {
            factor: FactorKind::Webauthn,
            phone: None,
            device: None,
        });
        let i = i.after(&What::Enrolled {
            factor: FactorKind::Sms,
            phone: None,
            device: None,
        });
        assert!(i.has(Strength::PhishingResistant) && i.has(Strength::Weak));
        let i = i.after(&What::Removed {
            factor: FactorKind::Webauthn,
        });
        assert!(!i.has(Strength::PhishingResistant) && i.has(Strength::Weak));
        assert!(i.after(&What::ResetAll).is_empty());
    }
}
