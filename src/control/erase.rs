//! `vccfs erase MOUNTPOINT GUID...` over the status socket: the daemon answers the
//! request line `erase GUID...` with one line of JSON, `{"erased": [report...]}` (one
//! [`EraseReport`] per guid, in order) or `{"error": "..."}`.
//!
//! Invariants: nothing is erased unless every word is GUID-shaped (the command
//! checks before asking, the daemon again); an answer is always one line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::status::{ask, StatusError};
use super::Sources;
use crate::erase::EraseReport;

/// The daemon's answer to `erase GUID...`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EraseAnswer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<EraseReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Daemon side: erase each of `guids` on this mount (and the fleet, once wired).
/// Each guid asked for is logged to the audit log as asked by `caller`.
pub(crate) async fn answer<'a>(
    sources: &Sources,
    guids: impl Iterator<Item = &'a str>,
    caller: &crate::audit::Caller,
) -> Vec<u8> {
    let guids: Vec<&str> = guids.collect();
    let answer = match guids.iter().find(|g| !crate::model::is_guid(g)) {
        _ if guids.is_empty() => EraseAnswer {
            error: Some("usage: erase GUID...".into()),
            ..EraseAnswer::default()
        },
        Some(bad) => EraseAnswer {
            error: Some(format!("not a GUID: {bad}")),
            ..EraseAnswer::default()
        },
        None => {
            let mut erased = Vec::with_capacity(guids.len());
            for &g in &guids {
                let report = sources.eraser.erase(g).await;
                super::audited::erase(sources, caller, g, Some(&report), "ok");
                erased.push(report);
            }
            EraseAnswer {
                erased,
                error: None,
            }
        }
    };
    if let Some(e) = &answer.error {
        for g in &guids {
            super::audited::erase(sources, caller, g, None, e);
        }
    }
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// Command side: ask the mount at `mountpoint` to erase `guid`.
pub fn erase(mountpoint: &Path, guid: &str) -> Result<EraseReport, StatusError> {
    let line = ask(mountpoint, &format!("erase {guid}"))
        .ok_or_else(|| StatusError::Dead(mountpoint.to_path_buf()))?;
    let garbled = |detail: String| StatusError::Garbled {
        path: mountpoint.to_path_buf(),
        detail,
    };
    let answer: EraseAnswer = serde_json::from_str(&line).map_err(|e| garbled(e.to_string()))?;
    if let Some(e) = answer.error {
        return Err(garbled(e));
    }
    answer
        .erased
        .into_iter()
        .next()
        .ok_or_else(|| garbled("no report".into()))
}

/// One line for people: what each tier removed.
pub fn render(r: &EraseReport) -> String {
    let mut parts = vec![
        format!("catalog {}", r.catalog_entries),
        format!("memory {} blocks", r.memory_blocks),
        format!("kernel {} inodes", r.inodes_invalidated),
    ];
    for t in &r.tiers {
        parts.push(match &t.error {
            None => format!("{} {}", t.tier, t.removed),
            Some(e) => format!("{} failed ({e})", t.tier),
        });
    }
    if let Some(f) = &r.fleet {
        parts.push(format!("fleet {f}"));
    }
    format!("erased {}: {}", r.guid, parts.join(", "))
}
