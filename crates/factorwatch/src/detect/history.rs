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

/// A place's key: FNV-1a of its kind and value (stable across builds and machines, which the
/// standard hasher is not, so a history rebuilt after a restart or on another replica hashes
/// alike), with the kind in its two low bits so that keys of different kinds never meet.
fn key(kind: Element, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.as_str().bytes().chain([0]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & !3) | kind as u64
}

fn kind_of(key: u64) -> u64 {
    key & 3
}

const MS_PER_DAY: i64 = 86_400_000;

/// A place seen on a day: 16 bytes. An MSSP's process remembers millions of these, so each
/// user's sightings are one flat, sorted `Vec` of them rather than a `Vec` of places each with
/// its own `Vec` of days.
#[derive(Debug, Clone, Copy)]
struct Seen {
    key: u64,
    day: i32,
    /// The earliest time seen that day, in ms into the day.
    first_ms: u32,
}

impl Seen {
    fn earliest_ms(&self) -> i64 {
        i64::from(self.day) * MS_PER_DAY + i64::from(self.first_ms)
    }
}

/// One user's memory.
#[derive(Debug, Clone, Default)]
pub struct UserHistory {
    /// Sorted by (key, day): a place's days are adjacent, oldest first.
    seen: Vec<Seen>,
    /// Factors the user is known to have, by kind (enrolled minus removed, as far as seen).
    factors: Vec<(FactorKind, u32)>,
    /// Whether any factor event was seen (else the inventory says nothing).
    factors_known: bool,
    /// Whether every factor the user has was seen enrolled: true from a reset of all factors on
    /// (factors enrolled before factorwatch's history began are unknown to it).
    factors_complete: bool,
}

impl UserHistory {
    /// The rows of the place `key`.
    fn place(&self, key: u64) -> std::ops::Range<usize> {
        let start = self.seen.partition_point(|s| s.key < key);
        let end = start + self.seen[start..].partition_point(|s| s.key == key);
        start..end
    }

    /// Makes room for a new place of `kind`: past [`MAX_PLACES`], the one seen least recently
    /// goes (the last row of each place is its latest day).
    fn evict_for(&mut self, kind: u64) {
        let mut places = 0;
        let mut oldest: Option<(i32, u64)> = None;
        for (i, s) in self.seen.iter().enumerate() {
            let last_of_place = self.seen.get(i + 1).is_none_or(|n| n.key != s.key);
            if kind_of(s.key) == kind && last_of_place {
                places += 1;
                if oldest.is_none_or(|(day, _)| s.day < day) {
                    oldest = Some((s.day, s.key));
                }
            }
        }
        if places >= MAX_PLACES
            && let Some((_, key)) = oldest
        {
            let rows = self.place(key);
            self.seen.drain(rows);
        }
    }

    /// Records `kind`'s `key` seen on `day` at `ms` into it; whether that taught anything.
    fn sighting(&mut self, key: u64, day: i32, ms: u32) -> bool {
        if self.place(key).is_empty() {
            self.evict_for(kind_of(key));
        }
        let rows = self.place(key);
        let start = rows.start;
        match self.seen[rows.clone()].binary_search_by_key(&day, |s| s.day) {
            Ok(i) => {
                let s = &mut self.seen[start + i];
                let earlier = ms < s.first_ms;
                s.first_ms = s.first_ms.min(ms);
                earlier
            }
            Err(i) => {
                let seen = Seen {
                    key,
                    day,
                    first_ms: ms,
                };
                self.seen.insert(start + i, seen);
                if rows.len() > PLACE_DAYS as usize {
                    self.seen.remove(start);
                }
                true
            }
        }
    }
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
    users: HashMap<Box<str>, UserHistory>,
}

/// Day number and ms into that day (days before 1970 are negative; out of `i32`'s ±5.8 million
/// years, clamped).
fn day_ms(t: DateTime<Utc>) -> (i32, u32) {
    let ms = t.timestamp_millis();
    let day = ms.div_euclid(MS_PER_DAY);
    let day = i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX });
    // rem_euclid is in [0, MS_PER_DAY), which u32 holds.
    (day, u32::try_from(ms.rem_euclid(MS_PER_DAY)).unwrap_or(0))
}

fn day(t: DateTime<Utc>) -> i32 {
    day_ms(t).0
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
        let k = key(kind, value);
        self.users.get(user).is_some_and(|u| {
            let rows = u.place(k);
            within(&u.seen[rows], from, to)
        })
    }

    /// Whether the user was seen on at least [`BASELINE_DAYS`] distinct days in `[from, to)`:
    /// without an established history, nothing can be called new.
    pub fn has_baseline(&self, user: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        let (from_day, to_ms) = (day(from), to.timestamp_millis());
        let mut days: Vec<i32> = u
            .seen
            .iter()
            .filter(|s| s.day >= from_day && s.earliest_ms() < to_ms)
            .map(|s| s.day)
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
        let counts = matches!(
            s.what,
            What::SignIn
                | What::Enrolled { .. }
                | What::Updated { .. }
                | What::Removed { .. }
                | What::ResetAll
                | What::PasswordReset
        ) && (s.by_self() || s.what == What::SignIn);
        if !s.what.is_change() && !counts {
            return false;
        }
        // A known user's key is not allocated again.
        let entry = match self.users.get_mut(user) {
            Some(entry) => entry,
            None => self.users.entry(user.into()).or_default(),
        };
        let mut learnt = false;
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
        if !counts {
            return learnt;
        }
        let (d, ms) = day_ms(s.published);
        for kind in Element::ALL {
            if let Some(value) = kind.of(&s.place) {
                learnt |= entry.sighting(key(kind, &value), d, ms);
            }
        }
        learnt
    }

    /// Forgets places not seen for [`PLACE_DAYS`] before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = i64::from(day(now)) - PLACE_DAYS;
        self.users.retain(|_, u| {
            u.seen.retain(|s| i64::from(s.day) >= horizon);
            !u.seen.is_empty() || u.factors_known
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
                k.len()
                    + std::mem::size_of::<(Box<str>, UserHistory)>()
                    + u.factors.capacity() * std::mem::size_of::<(FactorKind, u32)>()
                    + u.seen.capacity() * std::mem::size_of::<Seen>()
            })
            .sum()
    }
}

/// Whether a place's rows fall in `[from, to)`: exact at `to` (the earliest time of each day is
/// kept), to the day at `from`.
fn within(rows: &[Seen], from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (from_day, to_ms) = (day(from), to.timestamp_millis());
    rows.iter()
        .any(|s| s.day >= from_day && s.earliest_ms() < to_ms)
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
            user: Some(
                Party {
                    id: Some("u".into()),
                    login: None,
                    display_name: None,
                    kind: None,
                }
                .into(),
            ),
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
    fn the_least_recently_seen_place_goes_first_and_each_keeps_its_last_days() {
        let mut h = History::default();
        // MAX_PLACES + 1 networks, one a day: the first is forgotten, the rest kept.
        for i in 0..=MAX_PLACES as i64 {
            h.learn(&sign_in(24 * i, &format!("10.0.{i}.1")));
        }
        let (from, to) = (at(-24), at(24 * 100));
        assert!(!h.seen("u", Element::Network, "10.0.0.0/24", from, to));
        for i in 1..=MAX_PLACES {
            let net = format!("10.0.{i}.0/24");
            assert!(h.seen("u", Element::Network, &net, from, to), "{net}");
        }
        // The country, another kind, is one place seen every day, and is not evicted by them;
        // only its last PLACE_DAYS + 1 days are kept.
        let last = MAX_PLACES as i64;
        assert!(h.seen("u", Element::Country, "france", at(24 * last), to));
        let first_kept = last - PLACE_DAYS;
        assert!(h.seen(
            "u",
            Element::Country,
            "france",
            at(24 * first_kept),
            at(24 * first_kept + 1)
        ));
        assert!(!h.seen("u", Element::Country, "france", from, at(24 * first_kept)));
    }

    #[test]
    fn times_before_1970_and_far_ahead_are_days_too() {
        let mut h = History::default();
        let mut s = sign_in(0, "198.51.100.7");
        s.published = DateTime::<Utc>::from_timestamp(-86_400 * 3 + 5, 0).unwrap_or_default();
        assert!(h.learn(&s));
        let before = DateTime::<Utc>::from_timestamp(-86_400 * 4, 0).unwrap_or_default();
        assert!(h.seen("u", Element::Country, "france", before, at(0)));
        assert!(!h.seen("u", Element::Country, "france", before, s.published));
        s.published = DateTime::<Utc>::MAX_UTC;
        assert!(h.learn(&s));
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
