//! The start-up scan, on a thread of its own: first deletes what was set aside at open
//! (a tree and catalog of another key or mode: counted `crypto_erased`) and the old
//! plaintext `v1` tree (counted `legacy_removed`); then walks the tree
//! (`<g[..2]>/<g>/<key hex>/`), hands every block file
//! (length, mtime) to the index — a version's committed whole file as one entry —
//! deletes temporary files left by an earlier process, stray files (among them the
//! leftovers of an interrupted promotion) and empty directories. The writer waits for it, so the usage it
//! admits against is the whole tree's; readers do not (block paths are computable).
//! It walks through the tenant directory's descriptor ([`crate::safe_fs::Anchor`]):
//! a symbolic link anywhere in the tree is removed as a link, never followed.

use std::path::Path;
use std::time::SystemTime;

use std::sync::atomic::Ordering;

use super::admin::parse_hex;
use super::at_rest;
use super::index::{Key, StoredBlock};
use super::whole::{WHOLE, WHOLE_FILE, WHOLE_IDX};
use super::Shared;
use crate::safe_fs::{Entry, Kind};

/// What one scan did.
#[derive(Debug, Default)]
struct Report {
    files: u64,
    bytes: u64,
    removed_tmp: u64,
    removed_other: u64,
    removed_dirs: u64,
}

/// Scan, index what was found, and let the writer start.
pub(super) fn run(s: &Shared) {
    let started = std::time::Instant::now();
    let erased = at_rest::remove_set_aside(&s.fs);
    s.n.crypto_erased.fetch_add(erased, Ordering::Relaxed);
    if s.set_aside || erased > 0 {
        tracing::info!(dir = %s.dir.display(), files = erased,
            "disk tier: deleted the cache kept under another key or encryption mode");
    }
    let legacy = at_rest::remove_all(&s.fs, &s.dir.join(at_rest::LEGACY_TREE));
    s.n.legacy_removed.fetch_add(legacy, Ordering::Relaxed);
    if legacy > 0 {
        tracing::info!(dir = %s.dir.display(), files = legacy,
            "disk tier: deleted the old plaintext layout (v1)");
    }
    let mut report = Report::default();
    let found = wait_for_test_gate(s)
        .then(|| walk(s, &mut report))
        .flatten();
    let aborted = found.is_none();
    if let Some(found) = found {
        s.index.lock().scanned(found);
        tracing::info!(
            dir = %s.dir.display(), files = report.files, bytes = report.bytes,
            removed_tmp = report.removed_tmp, removed_other = report.removed_other,
            removed_dirs = report.removed_dirs, ms = started.elapsed().as_millis() as u64,
            "disk tier: scanned"
        );
    }
    let mut q = s.queue.lock();
    q.scan_done = true;
    q.scan_aborted = aborted;
    // Busy until the writer takes over (it trims first): a flush waits for that.
    q.busy = true;
    drop(q);
    s.work.notify_all();
    s.idle.notify_all();
}

#[cfg(test)]
fn wait_for_test_gate(s: &Shared) -> bool {
    let until = std::time::Instant::now() + s.cfg.scan_delay;
    while std::time::Instant::now() < until {
        if s.stopping() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

#[cfg(not(test))]
fn wait_for_test_gate(_: &Shared) -> bool {
    true
}

/// Every block file of the tree; `None` if the store shut down meanwhile.
fn walk(s: &Shared, report: &mut Report) -> Option<Vec<(StoredBlock, u64, SystemTime)>> {
    let mut found = Vec::new();
    for prefix in entries(s, &s.tree) {
        if s.stopping() {
            return None;
        }
        if unlink_if_link(s, &prefix, report) {
            continue;
        }
        let name = prefix.file_name();
        let Some(pname) = name.to_str().filter(|n| parse_hex::<1>(n).is_some()) else {
            continue;
        };
        let mut kept = 0;
        for guid in entries(s, prefix.path()) {
            if unlink_if_link(s, &guid, report) {
                continue;
            }
            let name = guid.file_name();
            let g = name
                .to_str()
                .filter(|n| n.starts_with(pname))
                .and_then(parse_hex::<16>);
            let Some(g) = g else {
                kept += 1;
                continue;
            };
            if scan_guid(s, guid.path(), g, &mut found, report) > 0 {
                kept += 1;
            } else if s.fs.remove_dir(guid.path()).is_ok() {
                report.removed_dirs += 1;
            } else {
                kept += 1;
            }
        }
        if kept == 0 && s.fs.remove_dir(prefix.path()).is_ok() {
            report.removed_dirs += 1;
        }
    }
    Some(found)
}

/// The versions of one interaction's directory; how many entries stay in it.
fn scan_guid(
    s: &Shared,
    dir: &Path,
    g: [u8; 16],
    found: &mut Vec<(StoredBlock, u64, SystemTime)>,
    report: &mut Report,
) -> usize {
    let mut kept = 0;
    for version in entries(s, dir) {
        if unlink_if_link(s, &version, report) {
            continue;
        }
        let name = version.file_name();
        let Some(id) = name.to_str().and_then(parse_hex::<16>) else {
            kept += 1;
            continue;
        };
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&g);
        key[16..].copy_from_slice(&id);
        let path = version.path();
        if scan_version(s, path, key, found, report) > 0 {
            kept += 1;
        } else if s.fs.remove_dir(path).is_ok() {
            report.removed_dirs += 1;
        } else {
            kept += 1;
        }
    }
    kept
}

/// The block files of one version's directory; how many entries stay in it. A
/// committed whole file (`whole` and `whole.idx`) is one entry; the blocks beside it
/// are what a promotion had not deleted yet, and go; a `whole` without its index is
/// an unfinished one, and goes.
fn scan_version(
    s: &Shared,
    dir: &Path,
    key: Key,
    found: &mut Vec<(StoredBlock, u64, SystemTime)>,
    report: &mut Report,
) -> usize {
    let all = entries(s, dir);
    let meta_of = |name: &str| all.iter().find(|e| e.file_name() == name && e.is_file());
    let whole = meta_of(WHOLE_FILE).zip(meta_of(WHOLE_IDX));
    if let Some((data, idx)) = &whole {
        let mtime = idx.modified;
        let len = data.len + idx.len;
        found.push((StoredBlock { key, index: WHOLE }, len, mtime));
        report.files += 2;
        report.bytes += len;
    }
    let mut kept = 0;
    for e in &all {
        // A link goes as a link (counted with the stray files).
        let is_file = e.is_file() || e.kind == Kind::Symlink;
        let name = e.file_name().to_str().unwrap_or("");
        let index = name.parse::<u64>().ok().filter(|i| i.to_string() == name);
        match (is_file, index) {
            (true, _)
                if e.is_file() && whole.is_some() && (name == WHOLE_FILE || name == WHOLE_IDX) =>
            {
                kept += 1
            }
            (true, Some(index)) if e.is_file() && whole.is_none() => {
                found.push((StoredBlock { key, index }, e.len, e.modified));
                report.files += 1;
                report.bytes += e.len;
                kept += 1;
            }
            // Ours (this process's): never, as the writer waits for the scan; kept.
            (true, _) if e.is_file() && name.starts_with(&s.tmp_prefix) => kept += 1,
            (true, _) => {
                if s.fs.remove_file(e.path()).is_ok() {
                    if name.starts_with(".tmp") {
                        report.removed_tmp += 1;
                    } else {
                        report.removed_other += 1;
                    }
                } else {
                    kept += 1;
                }
            }
            _ => kept += 1,
        }
    }
    kept
}

/// Remove `e` if it is a symbolic link (as a link: never followed); true if it was
/// one.
fn unlink_if_link(s: &Shared, e: &Entry, report: &mut Report) -> bool {
    if e.kind != Kind::Symlink {
        return false;
    }
    if s.fs.remove_file(e.path()).is_ok() {
        report.removed_other += 1;
    }
    true
}

/// The entries of `dir` (none if it cannot be read: the scan never fails the store;
/// nor if it is reached through a link).
fn entries(s: &Shared, dir: &Path) -> Vec<Entry> {
    match s.fs.read_dir(dir) {
        Ok(all) => all,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "disk tier: cannot scan");
            }
            Vec::new()
        }
    }
}
