//! Refresh by age: what to re-list, and when, so a big window costs few searches.
//!
//! New calls are found by re-listing the recent *tail* of the window at every refresh:
//! `[now - tail, now]`, stretched back to where the last successful tail ended (less
//! a margin) if that is older. Content that arrives after a call (transcripts, AI
//! results) changes recent days most, so a day listed whole is listed again once it
//! is older than its *staleness*, which grows with how long ago the day ended:
//!
//! | the day ended          | re-listed whole every |
//! |------------------------|-----------------------|
//! | not yet, or < 24 h ago | 1 hour                |
//! | 24 h – 72 h ago        | 6 hours               |
//! | longer ago             | 24 hours              |
//!
//! (never more often than `--refresh`). Whole-day re-lists run one page at a time at
//! [`Policy::relist_rpm`] searches a minute, so they never come in bursts; the first
//! listing of days not listed yet runs at [`Policy::background_share`] of `--max-rpm`.
//!
//! Cost, at 1,000 interactions a page: at 1M interactions in 30 days (33k a day,
//! 1.4k an hour) the tail is 3 pages a refresh; today, yesterday and the 28 older days
//! add about 0.3 + 0.6 + 0.2 + 0.6 pages a minute: about 4.7 searches a minute with
//! `--refresh 60`, and never more than 3 + `relist_rpm` = 12 in any minute.
//! [`tests::a_million_interactions_cost_under_fifteen_searches_a_minute`] checks the
//! figure by simulation.
//!
//! Invariants: the plan depends only on its inputs (no clock, no I/O); a tail never
//! starts before the window nor ends after it; only days listed whole are ever due.

use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::listing::DayState;

/// How the catalog keeps itself up to date.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `--refresh`: how often the tail is re-listed (`None`: never; days are still
    /// listed once in the background).
    pub every: Option<Duration>,
    /// How far back each refresh re-lists.
    pub tail: Duration,
    /// Overlap with the previous tail, for calls the API lists a little late.
    pub margin: Duration,
    /// `(ended less than this long ago, re-list after)`, youngest first; older days
    /// use `old`.
    pub ages: Vec<(Duration, Duration)>,
    pub old: Duration,
    /// Whole-day re-lists: searches a minute (0: unpaced).
    pub relist_rpm: u32,
    /// First listings of days: this share of `--max-rpm` (unpaced without one).
    pub background_share: f64,
}

const HOUR: Duration = Duration::from_secs(3600);

impl Policy {
    /// The documented policy, refreshing the tail every `every`.
    pub fn new(every: Option<Duration>) -> Policy {
        Policy {
            every,
            tail: 2 * HOUR,
            margin: Duration::from_secs(300),
            ages: vec![(24 * HOUR, HOUR), (72 * HOUR, 6 * HOUR)],
            old: 24 * HOUR,
            relist_rpm: 9,
            background_share: 0.5,
        }
    }

    /// The tail to re-list now: `[a, b)`, within the window `[from, to)`.
    pub fn tail(
        &self,
        now: OffsetDateTime,
        (from, to): (OffsetDateTime, OffsetDateTime),
        last_tail_end: Option<OffsetDateTime>,
    ) -> Option<(OffsetDateTime, OffsetDateTime)> {
        self.every?;
        let mut a = now - self.tail;
        if let Some(end) = last_tail_end {
            a = a.min(end - self.margin);
        }
        let a = a.max(from);
        (a < to).then_some((a, to))
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

    /// The listed day most overdue for a whole re-list, if any is due.
    pub fn due(
        &self,
        now: OffsetDateTime,
        days: impl IntoIterator<Item = (Date, DayState)>,
    ) -> Option<Date> {
        self.every?;
        days.into_iter()
            .filter_map(|(day, state)| match state {
                DayState::Listed { at } => {
                    let since = Duration::try_from(now - at).unwrap_or(Duration::ZERO);
                    let stale = self.staleness(now, day);
                    (since >= stale).then(|| (since.as_secs_f64() / stale.as_secs_f64(), day))
                }
                DayState::Saved | DayState::Partial => None,
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, day)| day)
    }

    /// Pause after each page of a paced listing (`rpm` searches a minute).
    pub fn pace(rpm: f64) -> Option<Duration> {
        (rpm > 0.0 && rpm.is_finite()).then(|| Duration::from_secs_f64(60.0 / rpm))
    }
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
        let (a, b) = p.tail(now, window, None).expect("a tail");
        assert_eq!((a, b), (datetime!(2026-12-01 10:00 UTC), window.1));
        let long_ago = datetime!(2026-12-01 07:00 UTC);
        let (a, _) = p.tail(now, window, Some(long_ago)).expect("a tail");
        assert_eq!(a, datetime!(2026-12-01 06:55 UTC));
        let (a, _) = p
            .tail(now, window, Some(datetime!(2026-11-01 00:00 UTC)))
            .expect("a tail");
        assert_eq!(a, window.0, "never before the window");
        assert_eq!(Policy::new(None).tail(now, window, None), None);
        let past = (
            datetime!(2026-11-01 00:00 UTC),
            datetime!(2026-11-02 00:00 UTC),
        );
        assert_eq!(p.tail(now, past, None), None, "a window long over");
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
        assert_eq!(p.due(now, [(today, DayState::Saved)]), None);
        assert_eq!(Policy::new(None).due(now, [(today, listed(99))]), None);
        let slow = Policy::new(Some(3 * HOUR));
        assert_eq!(
            slow.staleness(now, today),
            3 * HOUR,
            "never above --refresh"
        );
    }

    /// Three simulated hours of an idle mount of 1M interactions in 30 days, with
    /// `--refresh 60`, every day listed whole at a different time: searches a minute,
    /// counting pages of 1,000 as the API serves them and pacing whole-day re-lists
    /// as the refresher does.
    #[test]
    fn a_million_interactions_cost_under_fifteen_searches_a_minute() {
        let p = Policy::new(Some(Duration::from_secs(60)));
        let per_day = 1_000_000.0 / 30.0;
        let pages = |secs: f64| ((per_day * secs / 86_400.0) / 1000.0).ceil().max(1.0) as u64;
        let start = datetime!(2026-12-01 09:00 UTC);
        let window_from = start - time::Duration::days(30);
        let mut days: Vec<(Date, DayState)> = (0..=30)
            .map(|n| {
                let day = start.date() - time::Duration::days(n);
                // Listed at some point of the last day, spread out.
                let at = start - time::Duration::minutes(n * 47 % 1440);
                (day, DayState::Listed { at })
            })
            .collect();
        let mut per_minute = Vec::new();
        let mut last_tail = Some(start);
        let mut relist_pages_left = 0u64;
        for minute in 0..180 {
            let now = start + time::Duration::minutes(minute);
            let window = (window_from, now + time::Duration::MINUTE);
            let mut n = 0;
            if let Some((a, b)) = p.tail(now, window, last_tail) {
                n += pages((b - a).as_seconds_f64());
                last_tail = Some(b);
            }
            if relist_pages_left == 0 {
                if let Some(day) = p.due(now, days.iter().copied()) {
                    let whole = if day == now.date() {
                        (now - day.midnight().assume_utc()).as_seconds_f64()
                    } else {
                        86_400.0
                    };
                    relist_pages_left = pages(whole);
                    for d in &mut days {
                        if d.0 == day {
                            d.1 = DayState::Listed { at: now };
                        }
                    }
                }
            }
            let paced = relist_pages_left.min(u64::from(p.relist_rpm));
            relist_pages_left -= paced;
            n += paced;
            per_minute.push(n);
        }
        let worst = per_minute.iter().max().copied().unwrap_or(0);
        let mean = per_minute.iter().sum::<u64>() as f64 / per_minute.len() as f64;
        assert!(worst <= 15, "worst minute {worst} searches");
        assert!(mean <= 8.0, "mean {mean:.1} searches a minute");
        assert!(mean >= 3.0, "the tail alone is 3 pages a minute: {mean:.1}");
    }
}
