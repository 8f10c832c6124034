//! The lines of the access audit log: one JSON object per line, its field names a
//! contract (documented in the README, "Access audit log"; kept in this order).
//!
//! ```text
//! {"time":"…","event":"open","uid":0,"gid":0,"pid":4242,"process":"cat","guid":"…","key":"transcript.json","tier":"api","bytes":5120,"result":"ok"}
//! {"time":"…","event":"erase","uid":0,"gid":0,"pid":4243,"process":"vccfs","guid":"…","removed":{…EraseReport…}}
//! {"time":"…","event":"refresh","uid":0,"gid":0,"pid":4244,"process":"vccfs","days":["2026-11-02"],"result":"ok"}
//! ```
//!
//! Invariants:
//! - `time` is RFC 3339 in UTC: of the open for `open` lines (the line is written at
//!   release), of the request for the others.
//! - `tier` is one of [`Tier::name`]'s words; `result` is `ok` or an errno name.
//! - Everything here is formatting only: no I/O but the best-effort read of
//!   `/proc/<pid>/comm` ([`Caller::of`]), which never fails (an empty name instead).

use serde::Serialize;
use time::OffsetDateTime;

/// Which tier served the first byte a handle read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tier {
    /// Nothing read (yet).
    None = 0,
    Memory = 1,
    Disk = 2,
    Redis = 3,
    Api = 4,
    /// The kernel reads a local file itself: vccfs sees no bytes.
    Passthrough = 5,
}

impl Tier {
    /// The word in the log.
    pub fn name(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Memory => "memory",
            Tier::Disk => "disk",
            Tier::Redis => "redis",
            Tier::Api => "api",
            Tier::Passthrough => "passthrough",
        }
    }

    /// Back from [`Tier`]`as u8` (unknown values are `None`).
    pub fn from_u8(v: u8) -> Tier {
        match v {
            1 => Tier::Memory,
            2 => Tier::Disk,
            3 => Tier::Redis,
            4 => Tier::Api,
            5 => Tier::Passthrough,
            _ => Tier::None,
        }
    }

    /// The tier of a block store or source, by its short name (`disk`, `shared`).
    pub fn of_store(name: &str) -> Tier {
        match name {
            "disk" => Tier::Disk,
            "shared" | "redis" => Tier::Redis,
            _ => Tier::Api,
        }
    }
}

/// Who asked: from the FUSE request (or the socket's `SO_PEERCRED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// `/proc/<pid>/comm`, read when asked (empty if it cannot be read).
    pub process: String,
}

impl Caller {
    /// The caller `uid`/`gid`/`pid`, with its process name read now.
    pub fn of(uid: u32, gid: u32, pid: u32) -> Caller {
        Caller {
            uid,
            gid,
            pid,
            process: process_name(pid),
        }
    }
}

/// `/proc/<pid>/comm` without its newline; empty for pid 0 or a process gone.
pub fn process_name(pid: u32) -> String {
    if pid == 0 {
        return String::new();
    }
    std::fs::read(format!("/proc/{pid}/comm"))
        .map(|b| {
            let b = b.strip_suffix(b"\n").unwrap_or(&b);
            String::from_utf8_lossy(b).into_owned()
        })
        .unwrap_or_default()
}

/// One open of a content or metadata file, as logged at its release.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLine<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub event: &'static str,
    #[serde(flatten)]
    pub caller: &'a Caller,
    pub guid: &'a str,
    pub key: &'a str,
    pub tier: &'static str,
    pub bytes: u64,
    pub result: &'static str,
}

/// One `erase GUID` request on the status socket.
#[derive(Debug, Clone, Serialize)]
pub struct EraseLine<'a, R: Serialize> {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub event: &'static str,
    #[serde(flatten)]
    pub caller: &'a Caller,
    pub guid: &'a str,
    /// What each tier removed (the `EraseReport`), or null when refused.
    pub removed: Option<&'a R>,
    pub result: &'a str,
}

/// One `refresh [DAY...]` request on the status socket.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshLine<'a> {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub event: &'static str,
    #[serde(flatten)]
    pub caller: &'a Caller,
    /// The days asked for; empty: the recent tail.
    pub days: &'a [&'a str],
    pub result: &'a str,
}

/// `line` as one JSON line (with its newline).
pub fn to_line(line: &impl Serialize) -> Option<String> {
    let mut s = serde_json::to_string(line).ok()?;
    s.push('\n');
    Some(s)
}
