//! Requests on the status socket that change what a mount serves — `erase GUID...`
//! and `refresh [DAY...]` — each logged as one line of the access audit log
//! (`--audit-log`; format in `audit::line`), with the requester's uid, gid and pid
//! from the socket's `SO_PEERCRED` (zeros if the kernel did not say).
//!
//! Invariants: logging only queues a line (never waits); without an audit log nothing
//! is done; a request refused before it ran (not GUIDs, a day outside the window) is
//! logged too, with its error as the result.

use time::OffsetDateTime;

use super::Sources;
use crate::audit::line::{EraseLine, RefreshLine};
use crate::audit::Caller;
use crate::erase::EraseReport;

/// Who is at the other end of `conn`.
pub(crate) fn peer(conn: &tokio::net::UnixStream) -> Caller {
    match conn.peer_cred() {
        Ok(c) => {
            let pid = c.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
            Caller::of(c.uid(), c.gid(), pid)
        }
        Err(_) => Caller::of(0, 0, 0),
    }
}

/// An `erase` request: one line per guid (`removed`: its report, if it ran).
pub(crate) fn erase(
    sources: &Sources,
    caller: &Caller,
    guid: &str,
    removed: Option<&EraseReport>,
    result: &str,
) {
    if let Some(log) = &sources.audit {
        log.log(&EraseLine {
            time: OffsetDateTime::now_utc(),
            event: "erase",
            caller,
            guid,
            removed,
            result,
        });
    }
}

/// A `refresh` request of `days` (none: the recent tail).
pub(crate) fn refresh(
    sources: &Sources,
    caller: &Caller,
    days: &[&str],
    answer: &super::refresh::Answer,
) {
    if let Some(log) = &sources.audit {
        log.log(&RefreshLine {
            time: OffsetDateTime::now_utc(),
            event: "refresh",
            caller,
            days,
            result: answer.error.as_deref().unwrap_or("ok"),
        });
    }
}
