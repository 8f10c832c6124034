//! The views' part of the tree, as functions `ops` calls for [`Node::View`] nodes:
//!
//! ```text
//! /calls/<YYYY-MM-DD>/<name>/<type><ext>          the same inode as interactions/<guid>/<key>
//! /calls/<YYYY-MM-DD>/<name>/interaction.json     the same inode as .interaction.json
//! /by-agent/<agentId>/<YYYY-MM-DD>/<name>         symlink to ../../../calls/<day>/<name>
//! /by-number/<number>/<YYYY-MM-DD>/<name>         symlink to ../../../calls/<day>/<name>
//! ```
//!
//! Invariants:
//! - **One inode per file.** A call's files are [`Node::File`] and [`Node::Meta`],
//!   the very nodes (and inode numbers) of `interactions/<guid>/`: one cache, one
//!   page cache, one audit line naming guid and content key, whichever path opened it;
//!   files say `nlink` 2 (`attr`).
//! - **Names from the catalog's day views** (`catalog::views`): a view lookup or
//!   listing costs no request once its day is listed; a day not listed yet is listed
//!   as `by-date/<day>` is. `by-agent/` and `by-number/` (and one agent's or number's
//!   days) list the window first, as `ls interactions` does.
//! - **Links never leave the mount.** A link's target is `../../../calls/<day>/<name>`
//!   with a sanitised name (no `/`, never `.` or `..`), three levels up from
//!   `by-*/<key>/<day>/`, i.e. the mount's root.
//! - **Short-lived names.** Entries below the fixed view directories are given
//!   [`SHORT_TTL`]: a name a re-list changes is also invalidated explicitly
//!   (`catalog::views`), this bounds what a lost invalidation could leave.

use std::time::Duration;

use fuser::{FileAttr, FileType};
use time::{Date, OffsetDateTime};

use super::access::Access;
use super::attr;
use super::errno::FsError;
use super::node::{parse_day, Node};
use super::ops::{SHORT_TTL, TTL};
use super::page::Page;
use crate::catalog::views::{files_of, Facet, CALL_META};
use crate::catalog::{ino, Catalog};

/// A node of the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ViewNode {
    /// `/calls`.
    Calls,
    /// `/by-agent` or `/by-number`.
    Facets(Facet),
    /// `/calls/<day>`.
    CallsDay { day: Date },
    /// `/calls/<day>/<name>`.
    Call { day: Date, guid: String },
    /// `/by-agent/<id>`, `/by-number/<n>`.
    Facet { facet: Facet, key: String },
    /// `/by-agent/<id>/<day>`, `/by-number/<n>/<day>`.
    FacetDay {
        facet: Facet,
        key: String,
        day: Date,
    },
    /// `/by-agent/<id>/<day>/<name>`: a symlink to the call of `guid`.
    Link {
        facet: Facet,
        key: String,
        day: Date,
        guid: String,
    },
}

/// The views' directories at the root: inode, name.
pub(super) const ROOT: [(u64, &str); 3] = [
    (ino::CALLS, "calls"),
    (ino::BY_AGENT, "by-agent"),
    (ino::BY_NUMBER, "by-number"),
];

/// The fixed view directories (never counted or dropped).
pub(super) fn fixed(ino: u64) -> Option<Node> {
    Some(Node::View(match ino {
        ino::CALLS => ViewNode::Calls,
        ino::BY_AGENT => ViewNode::Facets(Facet::Agent),
        ino::BY_NUMBER => ViewNode::Facets(Facet::Number),
        _ => return None,
    }))
}

/// `name` at the root, if it is a view's directory.
pub(super) fn root(name: &str) -> Option<(u64, Node)> {
    let &(ino, _) = ROOT.iter().find(|(_, n)| *n == name)?;
    Some((ino, fixed(ino)?))
}

fn view(v: ViewNode) -> Node {
    Node::View(v)
}

/// How long the kernel may keep a view node's entry and attributes.
pub(super) fn ttl(v: &ViewNode) -> Duration {
    match v {
        ViewNode::Calls | ViewNode::Facets(_) => TTL,
        _ => SHORT_TTL,
    }
}

/// The inode of the directory holding `v` (`None`: `v` is not a directory).
pub(super) fn parent(v: &ViewNode) -> Option<u64> {
    Some(match v {
        ViewNode::Calls | ViewNode::Facets(_) => ino::ROOT,
        ViewNode::CallsDay { .. } => ino::CALLS,
        ViewNode::Call { day, .. } => ino::calls_day(*day),
        ViewNode::Facet { facet, .. } => facet.root(),
        ViewNode::FacetDay { facet, key, .. } => ino::facet(*facet, key),
        ViewNode::Link { .. } => return None,
    })
}

/// The name of `guid`'s call in `day`'s view (built already: no request).
fn call_name(catalog: &Catalog, day: Date, guid: &str) -> Option<String> {
    let v = catalog.cached_view(day)?;
    v.of_guid(guid).map(|c| c.name.to_string())
}

fn target(day: Date, name: &str) -> String {
    format!("../../../calls/{day}/{name}")
}

/// A link's target, from the day's view as it is now.
pub(super) fn readlink(catalog: &Catalog, v: &ViewNode) -> Result<String, FsError> {
    match v {
        ViewNode::Link { day, guid, .. } => call_name(catalog, *day, guid)
            .map(|n| target(*day, &n))
            .ok_or(FsError::NotFound),
        _ => Err(FsError::NotLink),
    }
}

fn midnight(day: Date) -> OffsetDateTime {
    day.midnight().assume_utc()
}

/// Attributes of `v`, or `None` if it no longer exists.
pub(super) fn attr(
    catalog: &Catalog,
    o: Access,
    mounted_at: OffsetDateTime,
    v: &ViewNode,
) -> Option<FileAttr> {
    Some(match v {
        ViewNode::Calls => attr::dir(o, ino::CALLS, mounted_at),
        ViewNode::Facets(f) => attr::dir(o, f.root(), mounted_at),
        ViewNode::CallsDay { day } => attr::dir(o, ino::calls_day(*day), midnight(*day)),
        ViewNode::Call { guid, .. } => attr::dir(o, ino::call(guid), catalog.known(guid)?.start),
        ViewNode::Facet { facet, key } => attr::dir(o, ino::facet(*facet, key), mounted_at),
        ViewNode::FacetDay { facet, key, day } => {
            attr::dir(o, ino::facet_day(*facet, key, *day), midnight(*day))
        }
        ViewNode::Link {
            facet,
            key,
            day,
            guid,
        } => {
            let len = target(*day, &call_name(catalog, *day, guid)?).len() as u64;
            let start = catalog.known(guid).map_or(midnight(*day), |e| e.start);
            attr::symlink(o, ino::facet_link(*facet, key, *day, guid), len, start)
        }
    })
}

/// The node `name` in view directory `v`: its inode, the node, its entry's lifetime.
pub(super) async fn lookup(
    catalog: &Catalog,
    v: &ViewNode,
    name: &str,
) -> Result<(u64, Node, Duration), FsError> {
    let day_of = |name: &str| parse_day(name).ok_or(FsError::NotFound);
    Ok(match v {
        ViewNode::Calls => {
            let day = day_of(name)?;
            (
                ino::calls_day(day),
                view(ViewNode::CallsDay { day }),
                SHORT_TTL,
            )
        }
        ViewNode::CallsDay { day } => {
            let view_ = catalog.day_view(*day).await?;
            let call = view_.get(name).ok_or(FsError::NotFound)?;
            let guid = call.entry.guid().to_string();
            let node = view(ViewNode::Call { day: *day, guid });
            (ino::call(&call.entry.guid()), node, SHORT_TTL)
        }
        ViewNode::Call { guid, .. } => {
            let e = catalog.known(guid).ok_or(FsError::NotFound)?;
            if name == CALL_META {
                let node = Node::Meta { guid: guid.clone() };
                return Ok((e.meta_ino(), node, SHORT_TTL));
            }
            let (_, key) = files_of(&e)
                .into_iter()
                .find(|(n, _)| n == name)
                .ok_or(FsError::NotFound)?;
            let node = Node::File {
                guid: guid.clone(),
                key: key.clone(),
            };
            (ino::file(guid, &key), node, SHORT_TTL)
        }
        ViewNode::Facets(facet) => {
            if catalog.facet_days(*facet, name).await?.is_empty() {
                return Err(FsError::NotFound);
            }
            let key = name.to_string();
            let node = view(ViewNode::Facet {
                facet: *facet,
                key: key.clone(),
            });
            (ino::facet(*facet, &key), node, SHORT_TTL)
        }
        ViewNode::Facet { facet, key } => {
            let day = day_of(name)?;
            if !catalog.day_view(day).await?.has(*facet, key) {
                return Err(FsError::NotFound);
            }
            let node = view(ViewNode::FacetDay {
                facet: *facet,
                key: key.clone(),
                day,
            });
            (ino::facet_day(*facet, key, day), node, SHORT_TTL)
        }
        ViewNode::FacetDay { facet, key, day } => {
            let view_ = catalog.day_view(*day).await?;
            let call = view_
                .facet(*facet, key)
                .find(|c| *c.name == *name)
                .ok_or(FsError::NotFound)?;
            let guid = call.entry.guid().to_string();
            let ino = ino::facet_link(*facet, key, *day, &guid);
            let node = view(ViewNode::Link {
                facet: *facet,
                key: key.clone(),
                day: *day,
                guid,
            });
            (ino, node, SHORT_TTL)
        }
        ViewNode::Link { .. } => return Err(FsError::NotDir),
    })
}

/// The entries of view directory `v` (after `.` and `..`) into `page`.
pub(super) async fn readdir(
    catalog: &Catalog,
    v: &ViewNode,
    page: &mut Page,
) -> Result<(), FsError> {
    match v {
        ViewNode::Calls => {
            for day in catalog.window_days() {
                page.push(ino::calls_day(day), FileType::Directory, &day.to_string());
            }
        }
        ViewNode::CallsDay { day } => {
            for c in catalog.day_view(*day).await?.calls() {
                page.push(ino::call(&c.entry.guid()), FileType::Directory, &c.name);
            }
        }
        ViewNode::Call { guid, .. } => {
            let e = catalog.known(guid).ok_or(FsError::NotFound)?;
            page.push(e.meta_ino(), FileType::RegularFile, CALL_META);
            for (name, key) in files_of(&e) {
                page.push(ino::file(guid, &key), FileType::RegularFile, &name);
            }
        }
        ViewNode::Facets(facet) => {
            // Only the part asked for (a page at a time of a list kept for the next).
            let keys = catalog.window_facet_keys(*facet).await?;
            let from = page.skip_to().min(keys.len());
            page.advance(from);
            for key in keys[from..].iter().take(super::ops::READDIR_BATCH) {
                page.push(ino::facet(*facet, key), FileType::Directory, key);
            }
        }
        ViewNode::Facet { facet, key } => {
            for day in catalog.facet_days(*facet, key).await? {
                let ino = ino::facet_day(*facet, key, day);
                page.push(ino, FileType::Directory, &day.to_string());
            }
        }
        ViewNode::FacetDay { facet, key, day } => {
            for c in catalog.day_view(*day).await?.facet(*facet, key) {
                let ino = ino::facet_link(*facet, key, *day, &c.entry.guid());
                page.push(ino, FileType::Symlink, &c.name);
            }
        }
        ViewNode::Link { .. } => return Err(FsError::NotDir),
    }
    Ok(())
}
