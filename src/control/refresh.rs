//! `vccfs refresh MOUNTPOINT [DAY...]`: the running mount re-lists its recent tail now
//! (as its next `--refresh` would), or the named days whole, and says what changed.
//!
//! On the status socket: the request line `refresh` or `refresh YYYY-MM-DD ...`, the
//! answer one line of JSON [`Answer`]: `{"ok":true,"days":[{"day":"2026-11-02",
//! "added":[guid...],"removed":[...],"changed":[...]}]}` (every asked day, changed or
//! not; for the tail only the days that changed), or `{"ok":false,"error":"..."}`.
//!
//! Invariants: a day outside the mount's window (or not a day) is refused before any
//! request is sent; the re-list is the catalog's own (`Catalog::relist`), so what it
//! changes is invalidated and purged exactly as the refresher's changes are.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::Date;

use super::status::{ask_within, StatusError};
use super::Sources;
use crate::catalog::DayDiff;

/// How long `vccfs refresh` waits for the mount's answer (a day can be many pages).
const WAIT: Duration = Duration::from_secs(300);
/// Guids shown per kind of change and day; the rest are counted.
const SHOWN: usize = 10;

/// What changed in one day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DayChanges {
    pub day: String,
    #[serde(flatten)]
    pub diff: DayDiff,
}

/// The mount's answer to `refresh`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<DayChanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why `vccfs refresh` failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("{0}")]
    Refused(String),
}

/// `YYYY-MM-DD`, or a one-line reason.
pub fn parse_day(s: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, format).map_err(|_| format!("{s:?} is not a day (YYYY-MM-DD)"))
}

fn failed(error: String) -> Answer {
    Answer {
        ok: false,
        days: Vec::new(),
        error: Some(error),
    }
}

/// The mount's side: re-list the tail (no `words`) or those days.
pub(crate) async fn answer<'a>(sources: &Sources, words: impl Iterator<Item = &'a str>) -> Answer {
    let days: Result<Vec<Date>, String> = words.map(parse_day).collect();
    let days = match days {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    match sources.catalog.relist(&days).await {
        Ok(mut r) => {
            for d in &days {
                r.days.entry(*d).or_default();
            }
            let days = r
                .days
                .into_iter()
                .map(|(day, diff)| DayChanges {
                    day: day.to_string(),
                    diff,
                })
                .collect();
            Answer {
                ok: true,
                days,
                error: None,
            }
        }
        Err(e) if sources.client.is_revoked() => failed(format!("access revoked: {e}")),
        Err(e) => failed(e.to_string()),
    }
}

/// Ask the mount at `mountpoint` to re-list (`days` empty: the tail).
pub fn refresh(mountpoint: &Path, days: &[String]) -> Result<Answer, RefreshError> {
    for d in days {
        parse_day(d).map_err(RefreshError::Refused)?;
    }
    let question = std::iter::once("refresh")
        .chain(days.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let line = ask_within(mountpoint, &question, WAIT)
        .ok_or_else(|| StatusError::Dead(mountpoint.to_path_buf()))?;
    let answer: Answer = serde_json::from_str(&line).map_err(|e| StatusError::Garbled {
        path: mountpoint.to_path_buf(),
        detail: e.to_string(),
    })?;
    match (&answer.ok, &answer.error) {
        (true, _) => Ok(answer),
        (false, e) => Err(RefreshError::Refused(format!(
            "refresh failed: {}",
            e.as_deref().unwrap_or("no reason given")
        ))),
    }
}

/// The answer for people: one line per day, then up to [`SHOWN`] guids per change.
pub fn render(a: &Answer, tail: bool) -> String {
    let mut out = String::new();
    if a.days.is_empty() {
        out.push_str(if tail {
            "the recent tail: nothing changed\n"
        } else {
            "nothing changed\n"
        });
    }
    for d in &a.days {
        let DayDiff {
            added,
            removed,
            changed,
        } = &d.diff;
        out.push_str(&format!(
            "{}: {} added, {} removed, {} changed\n",
            d.day,
            added.len(),
            removed.len(),
            changed.len()
        ));
        for (what, guids) in [("added", added), ("removed", removed), ("changed", changed)] {
            for g in guids.iter().take(SHOWN) {
                out.push_str(&format!("  {what:<8}{g}\n"));
            }
            if guids.len() > SHOWN {
                out.push_str(&format!(
                    "  {what:<8}... and {} more\n",
                    guids.len() - SHOWN
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_rendering() {
        assert!(parse_day("2026-11-02").is_ok());
        assert_eq!(
            parse_day("2026-13-02").unwrap_err(),
            "\"2026-13-02\" is not a day (YYYY-MM-DD)"
        );
        let a = Answer {
            ok: true,
            days: vec![DayChanges {
                day: "2026-11-02".into(),
                diff: DayDiff {
                    added: (0..12).map(|i| format!("g{i}")).collect(),
                    removed: vec![],
                    changed: vec!["c".into()],
                },
            }],
            error: None,
        };
        let text = render(&a, false);
        assert!(text.starts_with("2026-11-02: 12 added, 0 removed, 1 changed\n"));
        assert!(text.contains("  added   ... and 2 more\n"));
        assert!(text.contains("  changed c\n"));
        let json = serde_json::to_string(&a).expect("json");
        assert!(
            json.contains(r#""day":"2026-11-02","added":["g0""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Answer>(&json).expect("back"), a);
    }
}
