//! What an inode is. Inode numbers are stable hashes of what the node names
//! (`catalog::ino`), so a node is remembered by number while the kernel holds it
//! (from its lookup to its forget, see `ops`) and can be rebuilt by a later lookup;
//! its attributes are always read fresh from the catalog.

use fuser::FileType;
use time::Date;

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Root,
    Interactions,
    ByDate,
    /// `/interactions/<guid>`.
    Interaction {
        guid: String,
    },
    /// `/interactions/<guid>/.interaction.json`.
    Meta {
        guid: String,
    },
    /// `/interactions/<guid>/<key>`.
    File {
        guid: String,
        key: String,
    },
    /// `/by-date/<day>`.
    Day {
        day: Date,
    },
    /// `/by-date/<day>/<guid>`, a symlink to `../../interactions/<guid>`.
    Link {
        day: Date,
        guid: String,
    },
    /// `calls/`, `by-agent/`, `by-number/` and what is below them (`views`); the
    /// files of `calls/<day>/<name>/` are `File` and `Meta`.
    View(super::views::ViewNode),
}

/// One directory entry: inode, type, name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: String,
    /// Offset of the entry after this one (what the kernel passes back to continue).
    pub next: u64,
}

pub(crate) fn link_target(guid: &str) -> String {
    format!("../../interactions/{guid}")
}

/// `YYYY-MM-DD`, as `/by-date` names days.
pub(crate) fn parse_day(name: &str) -> Option<Date> {
    if name.len() != 10 {
        return None;
    }
    Date::parse(
        name,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}
