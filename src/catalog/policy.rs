//! Refresh by age: what to re-list, and when, so that the idle cost of a mount has a
//! ceiling whatever its window (a week or two years).
//!
//! New calls are found by re-listing the recent *tail* of the window at every refresh.
//! A tail reaches back to where the last one ended, less a margin (calls the API
//! lists a little late), so at `--refresh 60` it is one page. Every
//! [`Policy::reach_every`] (15 minutes) a tail reaches back the whole
//! [`Policy::tail`] (2 hours) instead, for calls the API lists long after they started
//! (a long call, listed once it ends): those appear within 15 minutes plus
//! `--refresh`. A tenant quiet enough that the whole reach is one page anyway reaches
//! back the whole 2 hours at every refresh.
//!
//! Content that arrives after a call (transcripts, AI results) and deletions change
//! recent days most, so a day listed whole is listed again once it is older than its
//! *staleness*, which grows with how long ago the day ended:
//!
//! | the day ended          | re-listed whole every |
//! |------------------------|-----------------------|
//! | not yet, or < 24 h ago | 1 hour                |
//! | 24 h – 72 h ago        | 6 hours               |
//! | 3 – 7 days ago         | 1 day                 |
//! | 7 – 30 days ago        | 3 days                |
//! | 30 – 90 days ago       | 7 days                |
//! | longer ago             | 30 days               |
//!
//! (never more often than `--refresh`), the most overdue first. So a change or a
//! deletion in an old day is seen by the time its staleness has passed, or earlier
//! when a read meets it (a changed version fails its check, a deleted one answers 404:
//! both act at once). Whole-day re-lists run one page at a time at
//! [`Policy::relist_rpm`] searches a minute (3), for only a [`Policy::relist_duty`]
//! share of the time (all of it by default: a steady trickle, never a burst): so they
//! never cost more than 3 searches in any minute, however many days the window holds.
//! A window too long for that re-lists its oldest days later than their staleness,
//! never more often. The first listing of days not listed yet runs at
//! [`Policy::background_share`] of `--max-rpm`.
//!
//! Cost, at 1,000 interactions a page and 1M interactions a month (33k a day, ten
//! times busier in business hours 08:00–18:00 UTC than outside, as the emulator's
//! tenant): a tail is one page a minute, and the whole reach, 6 pages in the busiest
//! hours, every 15 minutes; the schedule above asks about 1.5 pages a minute for a
//! 30-day window, 1.8 for 365 days and 2.0 for 730 (under the trickle's 3). With
//! `--refresh 60` that is under 4 searches a minute on average, and never more than
//! 6 + 3 + 1 = 10 in a minute. [`simulated_idle_cost`] simulates it and
//! [`tests::idle_cost_has_a_ceiling_whatever_the_window`] checks it for 30, 365 and 730 days.
//!
//! Invariants: the plan depends only on its inputs (no clock, no I/O); a tail never
//! starts before the window nor ends after it; only days listed whole are ever due.

use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::listing::DayState;

/// What the last tails did: where the next one starts from, and whether it reaches
/// back the whole [`Policy::tail`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailMark {
    /// End of the last tail re-listed.
    pub end: Option<OffsetDateTime>,
    /// When the last tail that reached back the whole [`Policy::tail`] ran, and how
    /// many interactions it listed.
    pub reached: Option<(OffsetDateTime, usize)>,
}

/// A tail to re-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub range: (OffsetDateTime, OffsetDateTime),
    /// It reaches back the whole [`Policy::tail`].
    pub whole: bool,
}

/// How the catalog keeps itself up to date.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `--refresh`: how often the tail is re-listed (`None`: never; days are still
    /// listed once in the background).
    pub every: Option<Duration>,
    /// How far back a tail reaches every [`Policy::reach_every`] (calls listed long
    /// after they started).
    pub tail: Duration,
    /// How often a tail reaches back the whole [`Policy::tail`].
    pub reach_every: Duration,
    /// Overlap with the previous tail, for calls the API lists a little late.
    pub margin: Duration,
    /// `(ended less than this long ago, re-list after)`, youngest first; older days
    /// use `old`.
    pub ages: Vec<(Duration, Duration)>,
    pub old: Duration,
    /// Whole-day re-lists: searches a minute (0: unpaced).
    pub relist_rpm: u32,
    /// The share of the time whole-day re-lists may take (1: no rest between them).
    pub relist_duty: f64,
    /// First listings of days: this share of `--max-rpm` (unpaced without one).
    pub background_share: f64,
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Policy {
    /// The documented policy, refreshing the tail every `every`.
    pub fn new(every: Option<Duration>) -> Policy {
        Policy {
            every,
            tail: 2 * HOUR,
            reach_every: Duration::from_secs(15 * 60),
            margin: Duration::from_secs(300),
            ages: vec![
                (DAY, HOUR),
                (3 * DAY, 6 * HOUR),
                (7 * DAY, DAY),
                (30 * DAY, 3 * DAY),
                (90 * DAY, 7 * DAY),
            ],
            old: 30 * DAY,
            relist_rpm: 3,
            relist_duty: 1.0,
            background_share: 0.5,
        }
    }

    /// The tail to re-list now, within the window `[from, to)`, after the tails of
    /// `last`.
    pub fn tail(
        &self,
        now: OffsetDateTime,
        (from, to): (OffsetDateTime, OffsetDateTime),
        last: TailMark,
    ) -> Option<Tail> {
        self.every?;
        let whole = match last.reached {
            None => true,
            Some((at, listed)) => {
                listed <= crate::model::MAX_PAGE_LIMIT as usize
                    || now - at >= self.reach_every
                    || at > now
            }
        };
        let mut a = now - self.tail;
        if let Some(end) = last.end {
            let since_last = end - self.margin;
            a = if whole { a.min(since_last) } else { since_last };
        }
        let a = a.max(from);
        (a < to).then_some(Tail {
            range: (a, to),
            whole,
        })
    }

    /// How long after its last whole listing day `day` is due again.
    pub fn staleness(&self, now: OffsetDateTime, day: Date) -> Duration {
        let ended = day.next_day().unwrap_or(day).midnight().assume_utc();
        let ago = if ended > now {
            Duration::ZERO
        } else {
            Duration::try_from(now - ended).unwrap_or(Duration::MAX)
        };
        let by_age = self
            .ages
            .iter()
            .find(|(younger_than, _)| ago < *younger_than)
            .map_or(self.old, |(_, every)| *every);
        by_age.max(self.every.unwrap_or(Duration::ZERO))
    }

    /// The listed day most overdue for a whole re-list, if any is due. A saved day
    /// whose listing time is known counts as listed then.
    pub fn due(
        &self,
        now: OffsetDateTime,
        days: impl IntoIterator<Item = (Date, DayState)>,
    ) -> Option<Date> {
        self.every?;
        days.into_iter()
            .filter_map(|(day, state)| match state {
                DayState::Listed { at } | DayState::Saved { listed: Some(at) } => {
                    let since = Duration::try_from(now - at).unwrap_or(Duration::ZERO);
                    let stale = self.staleness(now, day);
                    (since >= stale).then(|| (since.as_secs_f64() / stale.as_secs_f64(), day))
                }
                DayState::Saved { listed: None } | DayState::Partial => None,
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, day)| day)
    }

    /// Does a day in `state` wait for its first listing since the mount? A saved day
    /// does unless its saved listing is known and not yet stale: a remount re-lists
    /// what the policy would have re-listed had the mount never stopped, not the whole
    /// window. (With `--refresh 0` every saved day is listed once, as before.)
    pub fn first_listing_due(
        &self,
        now: OffsetDateTime,
        day: Date,
        state: Option<DayState>,
    ) -> bool {
        match state {
            Some(DayState::Listed { .. }) => false,
            Some(DayState::Saved { listed: Some(at) }) if self.every.is_some() => {
                let since = Duration::try_from(now - at).unwrap_or(Duration::ZERO);
                at > now || since >= self.staleness(now, day)
            }
            _ => true,
        }
    }

    /// The rest after a whole-day re-list that took `took`, so that re-lists take at
    /// most [`Policy::relist_duty`] of the time.
    pub fn rest_after(&self, took: Duration) -> Duration {
        if !(self.relist_duty > 0.0 && self.relist_duty < 1.0) {
            return Duration::ZERO;
        }
        took.mul_f64(1.0 / self.relist_duty - 1.0)
    }

    /// Pause after each page of a paced listing (`rpm` searches a minute).
    pub fn pace(rpm: f64) -> Option<Duration> {
        (rpm > 0.0 && rpm.is_finite()).then(|| Duration::from_secs_f64(60.0 / rpm))
    }
}

/// An idle mount of 1M interactions a month with `--refresh 60`, simulated minute by
/// minute for three days, with every day of the window listed whole once at a time
/// spread over its staleness (the steady state): searches a minute, counting pages
/// of 1,000 as the API serves them, with calls ten times as frequent in business hours
/// (08:00–18:00 UTC) as outside (the emulator's tenant), pacing whole-day re-lists
/// and resting after each as the refresher does. Returns (mean searches a minute,
/// the worst minute). Also printed by the hidden `vccfs policy-cost` (for
/// `scripts/bench.sh window`).
pub fn simulated_idle_cost(window_days: i64) -> (f64, u64) {
    let p = Policy::new(Some(Duration::from_secs(60)));
    let per_day = 1_000_000.0 / 30.0;
    // Calls a second at second `s` of a UTC day: weight 10 in business hours, 1 outside.
    let (open, close): (i32, i32) = (8 * 3600, 18 * 3600);
    let day_weight = f64::from(86_400 - (close - open)) + 10.0 * f64::from(close - open);
    let weight = |s: i32| {
        if (open..close).contains(&s) {
            10.0
        } else {
            1.0
        }
    };
    let calls = |a: OffsetDateTime, b: OffsetDateTime| {
        // Whole minutes are exact: business hours begin and end on one.
        let (mut t, mut n) = (a, 0.0);
        while t < b {
            let next = (t + time::Duration::MINUTE).min(b);
            let s = i32::from(t.time().hour()) * 3600 + i32::from(t.time().minute()) * 60;
            n += weight(s) * (next - t).as_seconds_f64();
            t = next;
        }
        n * per_day / day_weight
    };
    let pages = |calls: f64| (calls / 1000.0).ceil().max(1.0) as u64;
    let start = time::macros::datetime!(2026-12-01 09:00 UTC);
    let window_from = start - time::Duration::days(window_days);
    let mut days: Vec<(Date, DayState)> = (0..=window_days)
        .map(|n| {
            let day = start.date() - time::Duration::days(n);
            let stale = p.staleness(start, day).as_secs() as i64 / 60;
            let at = start - time::Duration::minutes((n * 7919) % stale.max(1));
            (day, DayState::Listed { at })
        })
        .collect();
    let mut per_minute = Vec::new();
    let mut mark = TailMark::default();
    let (mut relist_pages_left, mut took, mut rest_until) = (0u64, 0i64, 0i64);
    for minute in 0..3 * 24 * 60 {
        let now = start + time::Duration::minutes(minute);
        let window = (window_from, now + time::Duration::MINUTE);
        let mut n = 0;
        if let Some(tail) = p.tail(now, window, mark) {
            let listed = calls(tail.range.0, now);
            n += pages(listed);
            mark.end = Some(tail.range.1);
            if tail.whole {
                mark.reached = Some((now, listed as usize));
            }
        }
        if relist_pages_left == 0 && minute >= rest_until {
            if let Some(day) = p.due(now, days.iter().copied()) {
                let midnight = day.midnight().assume_utc();
                let end = (midnight + time::Duration::DAY).min(now);
                relist_pages_left = pages(calls(midnight, end));
                took = 0;
                for d in &mut days {
                    if d.0 == day {
                        d.1 = DayState::Listed { at: now };
                    }
                }
            }
        }
        if relist_pages_left > 0 {
            let paced = relist_pages_left.min(u64::from(p.relist_rpm));
            relist_pages_left -= paced;
            n += paced;
            took += 1;
            if relist_pages_left == 0 {
                let rest = p.rest_after(Duration::from_secs(60 * took as u64));
                rest_until = minute + 1 + (rest.as_secs() / 60) as i64;
            }
        }
        per_minute.push(n);
    }
    let worst = per_minute.iter().max().copied().unwrap_or(0);
    let mean = per_minute.iter().sum::<u64>() as f64 / per_minute.len() as f64;
    (mean, worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_tail_reaches_back_to_the_last_one_and_stays_in_the_window() {
        let p = Policy::new(Some(Duration::from_secs(60)));
        let now = datetime!(2026-12-01 12:00 UTC);
        let window = (
            datetime!(2026-11-24 12:00 UTC),
            now + time::Duration::MINUTE,
        );
        let first = p.tail(now, window, TailMark::default()).expect("a tail");
        assert_eq!(first.range, (datetime!(2026-12-01 10:00 UTC), window.1));
        assert!(first.whole, "the first tail reaches back the whole 2 hours");
        // A busy tenant: the whole reach was more than a page, 5 minutes ago.
        let busy = |end| TailMark {
            end: Some(end),
            reached: Some((now - time::Duration::minutes(5), 5_000)),
        };
        let short = p
            .tail(now, window, busy(datetime!(2026-12-01 11:59 UTC)))
            .expect("a tail");
        assert_eq!(short.range.0, datetime!(2026-12-01 11:54 UTC));
        assert!(!short.whole, "since the last tail, less the margin");
        let long_ago = datetime!(2026-12-01 07:00 UTC);
        let gap = p.tail(now, window, busy(long_ago)).expect("a tail");
        assert_eq!(gap.range.0, datetime!(2026-12-01 06:55 UTC), "no gap");
        // Every 15 minutes, or whenever the whole reach is one page anyway, it is whole.
        let due = TailMark {
            end: Some(datetime!(2026-12-01 11:59 UTC)),
            reached: Some((now - time::Duration::minutes(15), 5_000)),
        };
        let again = p.tail(now, window, due).expect("a tail");
        assert!(again.whole);
        assert_eq!(again.range.0, datetime!(2026-12-01 10:00 UTC));
        let quiet = TailMark {
            end: Some(datetime!(2026-12-01 11:59 UTC)),
            reached: Some((now - time::Duration::minutes(1), 400)),
        };
        assert!(p.tail(now, window, quiet).expect("a tail").whole);
        let far = p
            .tail(now, window, busy(datetime!(2026-11-01 00:00 UTC)))
            .expect("a tail");
        assert_eq!(far.range.0, window.0, "never before the window");
        assert_eq!(
            Policy::new(None).tail(now, window, TailMark::default()),
            None
        );
        let past = (
            datetime!(2026-11-01 00:00 UTC),
            datetime!(2026-11-02 00:00 UTC),
        );
        assert_eq!(
            p.tail(now, past, TailMark::default()),
            None,
            "a window long over"
        );
    }

    #[test]
    fn older_days_are_due_less_often() {
        let p = Policy::new(Some(Duration::from_secs(60)));
        let now = datetime!(2026-12-01 12:00 UTC);
        let today = now.date();
        let day = |n: i64| today - time::Duration::days(n);
        assert_eq!(p.staleness(now, today), HOUR);
        assert_eq!(p.staleness(now, day(1)), HOUR, "ended 12 h ago");
        assert_eq!(p.staleness(now, day(2)), 6 * HOUR, "ended 36 h ago");
        assert_eq!(p.staleness(now, day(4)), 24 * HOUR);
        assert_eq!(p.staleness(now, day(10)), 3 * DAY);
        assert_eq!(p.staleness(now, day(60)), 7 * DAY);
        assert_eq!(p.staleness(now, day(400)), 30 * DAY);
        let listed = |h: i64| DayState::Listed {
            at: now - time::Duration::hours(h),
        };
        // Listed 2 h ago: today is due, the day before yesterday is not.
        assert_eq!(
            p.due(now, [(day(2), listed(2)), (today, listed(2))]),
            Some(today)
        );
        assert_eq!(
            p.due(now, [(day(2), listed(2)), (day(5), listed(23))]),
            None
        );
        // The most overdue first.
        assert_eq!(
            p.due(now, [(today, listed(2)), (day(5), listed(72))]),
            Some(day(5))
        );
        assert_eq!(
            p.due(now, [(today, DayState::Saved { listed: None })]),
            None
        );
        assert_eq!(Policy::new(None).due(now, [(today, listed(99))]), None);
        let slow = Policy::new(Some(3 * HOUR));
        assert_eq!(
            slow.staleness(now, today),
            3 * HOUR,
            "never above --refresh"
        );
    }

    #[test]
    fn a_saved_day_waits_for_its_staleness_like_a_listed_one() {
        let p = Policy::new(Some(Duration::from_secs(60)));
        let now = datetime!(2026-12-01 12:00 UTC);
        let day = |n: i64| now.date() - time::Duration::days(n);
        let saved = |h: i64| {
            Some(DayState::Saved {
                listed: Some(now - time::Duration::hours(h)),
            })
        };
        // Ended 9 days ago (stale after 3 days): saved 2 days ago waits, 4 days ago not.
        assert!(!p.first_listing_due(now, day(10), saved(48)));
        assert!(p.first_listing_due(now, day(10), saved(96)));
        // Today (stale after an hour).
        assert!(!p.first_listing_due(now, day(0), saved(0)));
        assert!(p.first_listing_due(now, day(0), saved(2)));
        // Unknown or future listing times, days never listed: listed first.
        let unknown = Some(DayState::Saved { listed: None });
        assert!(p.first_listing_due(now, day(10), unknown));
        assert!(p.first_listing_due(now, day(10), saved(-5)));
        assert!(p.first_listing_due(now, day(10), None));
        assert!(p.first_listing_due(now, day(10), Some(DayState::Partial)));
        assert!(!p.first_listing_due(now, day(10), Some(DayState::Listed { at: now })));
        // --refresh 0: every saved day is listed once.
        assert!(Policy::new(None).first_listing_due(now, day(10), saved(48)));
        // Once listed in the first lane, or waiting: due like a listed day.
        let stale = DayState::Saved {
            listed: Some(now - time::Duration::days(4)),
        };
        assert_eq!(p.due(now, [(day(10), stale)]), Some(day(10)));
        let fresh = DayState::Saved {
            listed: Some(now - time::Duration::days(2)),
        };
        assert_eq!(p.due(now, [(day(10), fresh)]), None);
    }

    #[test]
    fn idle_cost_has_a_ceiling_whatever_the_window() {
        for window in [30, 365, 730] {
            let (mean, worst) = super::simulated_idle_cost(window);
            eprintln!("{window} days: mean {mean:.2} searches a minute, worst minute {worst}");
            assert!(worst <= 12, "{window} days: worst minute {worst} searches");
            assert!(
                mean <= 6.0,
                "{window} days: mean {mean:.2} searches a minute"
            );
            assert!(
                mean >= 1.0,
                "{window} days: a tail is at least a page a minute: {mean:.2}"
            );
        }
    }

    #[test]
    fn re_lists_rest_to_keep_their_share_of_the_time() {
        let p = Policy {
            relist_duty: 1.0 / 3.0,
            ..Policy::new(Some(Duration::from_secs(60)))
        };
        assert_eq!(
            p.rest_after(Duration::from_secs(60)),
            Duration::from_secs(120)
        );
        let trickle = Policy::new(None);
        assert_eq!(
            trickle.rest_after(Duration::from_secs(60)),
            Duration::ZERO,
            "by default a steady trickle, with no rest"
        );
    }
}
