//! Model-checked passthrough decide/release (issue 26): opens and releases of one
//! inode, of two versions, race under shuttle's scheduler through the production
//! [`Passthrough`] (its lock is shuttle's `Mutex`). Each open is decided and answered
//! to a model of the kernel while the decision's lock is held, as `fuse.rs` does; each
//! release is told to the kernel model first (the file closed), then to
//! [`Passthrough::release`], as the kernel sends `FUSE_RELEASE` after the close.
//!
//! The kernel model enforces the kernel's rules (the module essay of `passthrough`):
//! - while an inode has passthrough opens, a new open is passthrough on the same
//!   backing (and, ours, of the same version); while it has ordinary opens, no open
//!   is passthrough;
//! - a backing is closed (dropped) only when no open uses it, once, and every backing
//!   made is closed once every open is released;
//! - `EBUSY` only while the inode has passthrough opens of another version whose
//!   release has not reached the daemon yet (no misfire; the kernel sends
//!   `FUSE_RELEASE` after the close, so a close alone does not end the mode).

use std::collections::HashSet;
use std::fs::File;
use std::sync::{Arc, Mutex as StdMutex};

use super::{Offer, Passthrough, Via};
use crate::version::{ContentKey, TenantId};

const INO: u64 = 7;

/// What the kernel holds: the opens of `INO` (backing id, version) and the backings
/// registered.
#[derive(Debug, Default)]
struct Kernel {
    opens: Vec<(Option<u32>, u64)>,
    /// Opens answered whose release has not reached the daemon yet.
    unreleased: Vec<(Option<u32>, u64)>,
    registered: HashSet<u32>,
    made: u32,
    closed: u32,
}

/// A backing id: closing it (its drop) is checked against the kernel model.
#[derive(Debug)]
struct Backing(u32, Arc<StdMutex<Kernel>>);

impl Drop for Backing {
    fn drop(&mut self) {
        let mut k = self.1.lock().expect("kernel model");
        assert!(
            !k.opens.iter().any(|(b, _)| *b == Some(self.0)),
            "backing {} closed while an open uses it: {:?}",
            self.0,
            k.opens
        );
        assert!(
            k.registered.remove(&self.0),
            "backing {} closed twice",
            self.0
        );
        k.closed += 1;
    }
}

fn key(version: u64) -> ContentKey {
    ContentKey::new(TenantId::new("u", "c"), "g", "k", version, None)
}

/// One open of `version` (with a checked local file to offer or not), answered under
/// the decision's lock; then, unless refused, its release. Returns whether it was
/// refused.
fn open_and_release(
    pt: &Passthrough<Backing>,
    kernel: &Arc<StdMutex<Kernel>>,
    version: u64,
    with_file: bool,
) -> bool {
    let offer = Offer {
        version: Some(key(version)),
        file: with_file.then(|| File::open("/dev/null").expect("/dev/null")),
    };
    {
        let mut deciding = pt.lock();
        let via = deciding.decide(INO, offer, |_| {
            let mut k = kernel.lock().expect("kernel model");
            k.made += 1;
            let id = k.made;
            k.registered.insert(id);
            Ok(Backing(id, Arc::clone(kernel)))
        });
        let mut k = kernel.lock().expect("kernel model");
        match via {
            Via::Kernel(backing) => {
                assert!(
                    k.opens
                        .iter()
                        .all(|&(b, v)| b == Some(backing.0) && v == version),
                    "passthrough open on backing {} of version {version} beside {:?}",
                    backing.0,
                    k.opens
                );
                assert!(k.registered.contains(&backing.0), "a closed backing");
                k.opens.push((Some(backing.0), version));
                k.unreleased.push((Some(backing.0), version));
            }
            Via::Daemon => {
                assert!(
                    k.opens.iter().all(|(b, _)| b.is_none()),
                    "an ordinary open beside passthrough ones: {:?}",
                    k.opens
                );
                k.opens.push((None, version));
                k.unreleased.push((None, version));
            }
            Via::Busy => {
                assert!(
                    k.unreleased
                        .iter()
                        .any(|&(b, v)| b.is_some() && v != version),
                    "EBUSY for version {version} with no passthrough open of another: {:?}",
                    k.unreleased
                );
                return true;
            }
        }
    }
    shuttle::thread::yield_now();
    {
        let mut k = kernel.lock().expect("kernel model");
        let at = k
            .opens
            .iter()
            .position(|&(_, v)| v == version)
            .expect("the open is the kernel's");
        k.opens.remove(at);
    }
    pt.release(INO);
    let mut k = kernel.lock().expect("kernel model");
    let at = k
        .unreleased
        .iter()
        .position(|&(_, v)| v == version)
        .expect("answered");
    k.unreleased.remove(at);
    false
}

fn opens() {
    let pt = Arc::new(Passthrough::<Backing>::new(true));
    let kernel = Arc::new(StdMutex::new(Kernel::default()));
    // (version, offers a file): two opens of version 1 (one with nothing to offer),
    // one of version 2; each thread opens twice.
    let who = [(1, true), (1, false), (2, true)];
    let handles: Vec<_> = who
        .into_iter()
        .map(|(version, with_file)| {
            let (pt, kernel) = (Arc::clone(&pt), Arc::clone(&kernel));
            shuttle::thread::spawn(move || {
                (0..2)
                    .filter(|_| open_and_release(&pt, &kernel, version, with_file))
                    .count()
            })
        })
        .collect();
    for h in handles {
        h.join().expect("an opener panicked");
    }
    let k = kernel.lock().expect("kernel model");
    assert!(k.opens.is_empty());
    assert_eq!(k.made, k.closed, "every backing made is closed once");
    assert!(k.registered.is_empty());
    drop(k);
    assert!(pt.enabled(), "no backing was refused");
}

#[test]
fn shuttle_passthrough_decide_and_release() {
    shuttle::check_random(opens, crate::sync::iterations(2000));
}
