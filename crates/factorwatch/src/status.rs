//! How far behind factorwatch is, as numbers: the age of the newest event processed (Okta's logs
//! can lag by hours), and of the oldest delivery still owed. Pure: computed from store stats.

use chrono::{DateTime, Duration, Utc};

use crate::store::Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Now minus the newest `published` of any event read, over all sources.
    pub newest_event_age: Option<Duration>,
    /// Now minus the creation of the oldest outbox row not yet delivered (nor dead).
    pub oldest_undelivered_age: Option<Duration>,
}

pub fn lag(stats: &Stats, now: DateTime<Utc>) -> Lag {
    Lag {
        newest_event_age: stats
            .sources
            .iter()
            .filter_map(|s| s.newest_published)
            .max()
            .map(|t| now - t),
        oldest_undelivered_age: stats.oldest_pending.map(|t| now - t),
    }
}

fn age(d: Option<Duration>) -> String {
    match d {
        None => "none".into(),
        Some(d) if d.num_milliseconds() < 0 => "0.0s".into(),
        Some(d) if d < Duration::minutes(2) => {
            format!("{:.1}s", d.num_milliseconds() as f64 / 1000.0)
        }
        Some(d) if d < Duration::hours(2) => format!("{}m", d.num_minutes()),
        Some(d) => format!("{}h{:02}m", d.num_hours(), d.num_minutes() % 60),
    }
}

/// One line for a person: what was read (per source, summed over the orgs: an MSSP's line
/// listed one unnamed figure per org), found and delivered, and the lag.
pub fn summary(stats: &Stats, now: DateTime<Utc>) -> String {
    let mut sources: Vec<(&str, u64, usize)> = Vec::new();
    for s in &stats.sources {
        match sources.iter_mut().find(|(name, ..)| *name == s.source) {
            Some((_, seen, orgs)) => {
                *seen += s.events_seen;
                *orgs += 1;
            }
            None => sources.push((&s.source, s.events_seen, 1)),
        }
    }
    let read: Vec<String> = sources
        .iter()
        .map(|(source, seen, orgs)| {
            let source = source.replace('_', " ");
            if *orgs > 1 {
                format!("{source} {seen} ({orgs} orgs)")
            } else {
                format!("{source} {seen}")
            }
        })
        .collect();
    let outbox: Vec<String> = stats
        .outbox
        .iter()
        .map(|(d, delivered, pending, dead)| {
            let mut s = format!("{d} {delivered}");
            if *pending > 0 {
                s.push_str(&format!(" (+{pending} pending)"));
            }
            if *dead > 0 {
                s.push_str(&format!(" ({dead} dead)"));
            }
            s
        })
        .collect();
    let lag = lag(stats, now);
    format!(
        "events read: {} | MFA changes: {} | findings: {} | delivered: {} | lag: newest event {}, oldest undelivered {}",
        if read.is_empty() {
            "0".into()
        } else {
            read.join(", ")
        },
        stats.changes,
        stats.findings,
        if outbox.is_empty() {
            "0".into()
        } else {
            outbox.join(", ")
        },
        age(lag.newest_event_age),
        age(lag.oldest_undelivered_age),
    )
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition of the store's numbers and the lag; `lag_threshold` sets
/// `factorwatch_lag_alarm`.
pub fn prometheus(stats: &Stats, now: DateTime<Utc>, lag_threshold: Option<Duration>) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    metric(
        "factorwatch_changes",
        "gauge",
        "MFA changes stored.",
        vec![(String::new(), stats.changes as f64)],
    );
    metric(
        "factorwatch_findings",
        "gauge",
        "Account-takeover findings stored.",
        vec![(String::new(), stats.findings as f64)],
    );
    metric(
        "factorwatch_rejects",
        "gauge",
        "Input values that were not Okta events, kept with their error.",
        vec![(String::new(), stats.rejects as f64)],
    );
    metric(
        "factorwatch_events_read_total",
        "counter",
        "Okta events read, per org and source.",
        stats
            .sources
            .iter()
            .map(|s| {
                (
                    format!(
                        "{{org=\"{}\",source=\"{}\"}}",
                        escape_label(&s.org),
                        escape_label(&s.source)
                    ),
                    s.events_seen as f64,
                )
            })
            .collect(),
    );
    let mut rows = Vec::new();
    for (d, delivered, pending, dead) in &stats.outbox {
        for (state, n) in [
            ("delivered", delivered),
            ("pending", pending),
            ("dead", dead),
        ] {
            rows.push((
                format!("{{destination=\"{}\",state=\"{state}\"}}", escape_label(d)),
                *n as f64,
            ));
        }
    }
    metric(
        "factorwatch_outbox_rows",
        "gauge",
        "Outbox rows per destination and state (dead = dead letters).",
        rows,
    );
    let lag = lag(stats, now);
    let secs = |d: Option<Duration>| d.map_or(0.0, |d| d.num_milliseconds().max(0) as f64 / 1000.0);
    metric(
        "factorwatch_lag_newest_event_seconds",
        "gauge",
        "Age of the newest Okta event processed.",
        vec![(String::new(), secs(lag.newest_event_age))],
    );
    metric(
        "factorwatch_lag_oldest_undelivered_seconds",
        "gauge",
        "Age of the oldest delivery still owed.",
        vec![(String::new(), secs(lag.oldest_undelivered_age))],
    );
    let alarm = match (lag_threshold, lag.newest_event_age) {
        (Some(t), Some(age)) => age > t,
        _ => false,
    };
    metric(
        "factorwatch_lag_alarm",
        "gauge",
        "1 when the newest event processed is older than the configured threshold.",
        vec![(String::new(), if alarm { 1.0 } else { 0.0 })],
    );
    out
}

/// The lag alarm's state: raised when the newest event processed is older than the threshold,
/// lowered when it is not. Pure: fed the age at each check, it says when the state changes.
#[derive(Debug, Clone)]
pub struct LagAlarm {
    threshold: Duration,
    raised: bool,
}

impl LagAlarm {
    pub fn new(threshold: Duration) -> LagAlarm {
        LagAlarm {
            threshold,
            raised: false,
        }
    }

    /// The message to send if the alarm is raised or lowered by this reading (`None`: no news).
    /// No reading (nothing processed yet) changes nothing.
    pub fn update(&mut self, newest_event_age: Option<Duration>) -> Option<String> {
        let age = newest_event_age?;
        let late = age > self.threshold;
        if late == self.raised {
            return None;
        }
        self.raised = late;
        let (age_s, limit_s) = (age.num_seconds(), self.threshold.num_seconds());
        Some(if late {
            format!(
                "factorwatch lag alarm: the newest Okta event processed is {} old (threshold {}). Okta's log may be behind, or factorwatch is: check `factorwatch check` and its log. MFA changes since then are not yet known.",
                human(age_s),
                human(limit_s)
            )
        } else {
            format!(
                "factorwatch lag alarm over: the newest Okta event processed is {} old (threshold {}).",
                human(age_s),
                human(limit_s)
            )
        })
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{:.1} h", s as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SourceState;

    #[test]
    fn lag_is_measured_from_the_newest_event_and_the_oldest_debt() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .to_utc();
        let stats = Stats {
            changes: 3,
            findings: 1,
            rejects: 0,
            outbox: vec![("email".into(), 1, 2, 0), ("siem:file".into(), 3, 0, 1)],
            oldest_pending: Some(now - Duration::seconds(90)),
            sources: vec![
                SourceState {
                    org: "o".into(),
                    source: "system_log".into(),
                    position: None,
                    newest_published: Some(now - Duration::hours(3)),
                    events_seen: 10,
                    updated_at: None,
                },
                SourceState {
                    org: "o".into(),
                    source: "event_hook".into(),
                    position: None,
                    newest_published: Some(now - Duration::seconds(2)),
                    events_seen: 4,
                    updated_at: None,
                },
            ],
        };
        let l = lag(&stats, now);
        assert_eq!(l.newest_event_age, Some(Duration::seconds(2)));
        assert_eq!(l.oldest_undelivered_age, Some(Duration::seconds(90)));
        let line = summary(&stats, now);
        assert!(line.contains("system log 10, event hook 4"), "{line}");
        assert!(
            line.contains("email 1 (+2 pending)") && line.contains("siem:file 3 (1 dead)"),
            "{line}"
        );
        assert!(
            line.contains("newest event 2.0s") && line.contains("oldest undelivered 90.0s"),
            "{line}"
        );
        assert!(summary(&Stats::default(), now).contains("newest event none"));
        let mut many = stats.clone();
        many.sources.push(SourceState {
            org: "p".into(),
            events_seen: 5,
            ..stats.sources[0].clone()
        });
        let line = summary(&many, now);
        assert!(
            line.contains("events read: system log 15 (2 orgs), event hook 4 |"),
            "summed per source over the orgs: {line}"
        );
        let text = prometheus(&stats, now, Some(Duration::seconds(1)));
        assert!(text.contains("factorwatch_changes 3\n"));
        assert!(text.contains("factorwatch_findings 1\n"));
        assert!(
            text.contains("factorwatch_events_read_total{org=\"o\",source=\"system_log\"} 10\n")
        );
        assert!(
            text.contains("factorwatch_outbox_rows{destination=\"siem:file\",state=\"dead\"} 1\n")
        );
        assert!(text.contains("factorwatch_lag_newest_event_seconds 2\n"));
        assert!(text.contains("factorwatch_lag_alarm 1\n"));
        assert!(
            prometheus(&stats, now, Some(Duration::seconds(10)))
                .contains("factorwatch_lag_alarm 0\n")
        );
    }

    #[test]
    fn the_lag_alarm_speaks_when_it_is_raised_and_when_it_is_lowered_only() {
        let mut alarm = LagAlarm::new(Duration::minutes(30));
        assert_eq!(alarm.update(None), None, "nothing processed yet");
        assert_eq!(alarm.update(Some(Duration::minutes(5))), None);
        let raised = alarm.update(Some(Duration::minutes(45))).unwrap();
        assert!(raised.contains("45 min old (threshold 30 min)"), "{raised}");
        assert_eq!(alarm.update(Some(Duration::hours(3))), None, "still raised");
        let lowered = alarm.update(Some(Duration::seconds(20))).unwrap();
        assert!(
            lowered.contains("over") && lowered.contains("20 s old"),
            "{lowered}"
        );
        assert_eq!(alarm.update(Some(Duration::seconds(10))), None);
    }
}
