//! FUSE passthrough: an open file whose version the disk tier holds as one checked
//! local file (see `source::disk`) is opened with that file as its backing, and the
//! kernel then serves its reads (and mmaps) itself, at local-disk speed, without a
//! round trip to this process.
//!
//! The kernel's rules (Linux ≥ 6.9) shape the bookkeeping here: while an inode has
//! passthrough opens, every new open of it must be passthrough too, with the same
//! backing (else `EINVAL` / `EBUSY`), and while it has ordinary (cached) opens, a
//! passthrough open fails (`ETXTBSY`). So each inode is in one mode while it has opens:
//!
//! Invariants:
//! - **One mode per open inode.** The first open decides — passthrough when a local
//!   file is offered and the kernel takes it, else ordinary — and later opens follow
//!   it until the last is released. A later open of a passthrough inode gets the same
//!   backing only if it is of the same version (the backing's bytes are that
//!   version's, checked at its open, and stay readable through the held descriptor
//!   even if the disk tier deletes the file); of another version it fails with
//!   `EBUSY` rather than serve bytes of the wrong version.
//! - **The backing outlives its opens.** A backing id is registered with the kernel
//!   once per inode and closed (dropped) only when the inode's last open is
//!   released, so the kernel never looks up an id that is gone.
//! - **Decided and replied under one lock**, so two racing opens of one inode never
//!   see different modes.
//! - **Best effort.** If the kernel refuses a backing (no `CAP_SYS_ADMIN`, a cache
//!   directory stacked too deep), passthrough is switched off for the mount, said
//!   once, and reads go through the daemon as they always could.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, Mutex, MutexGuard};
use crate::version::ContentKey;

/// How one open inode is served.
#[derive(Debug)]
enum Mode<B> {
    /// By the kernel from `backing`, a local file of `version`.
    Kernel {
        backing: B,
        version: ContentKey,
        opens: u32,
    },
    /// By this process.
    Daemon { opens: u32 },
}

/// How to answer one open.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Via<'a, B> {
    Daemon,
    Kernel(&'a B),
    /// Open in passthrough mode on another version: refuse.
    Busy,
}

/// What an open offers: its version and, if a tier has one, a checked local file.
#[derive(Debug, Default)]
pub(super) struct Offer {
    pub version: Option<ContentKey>,
    pub file: Option<File>,
}

/// The modes of the open inodes (see the module essay); `B` is the kernel's backing
/// id (`fuser::BackingId`).
#[derive(Debug)]
pub(super) struct Passthrough<B> {
    enabled: AtomicBool,
    inodes: Mutex<HashMap<u64, Mode<B>>>,
}

/// The lock held while one open is decided and replied to.
pub(super) struct Deciding<'a, B>(MutexGuard<'a, HashMap<u64, Mode<B>>>, &'a AtomicBool);

impl<B> Passthrough<B> {
    pub fn new(enabled: bool) -> Self {
        Passthrough {
            enabled: AtomicBool::new(enabled),
            inodes: Mutex::default(),
        }
    }

    /// Is passthrough still on for this mount?
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }

    /// Start deciding an open; reply before dropping the result.
    pub fn lock(&self) -> Deciding<'_, B> {
        Deciding(self.inodes.lock(), &self.enabled)
    }

    /// An open of `ino` was released (or refused after it was counted).
    pub fn release(&self, ino: u64) {
        let mut inodes = self.inodes.lock();
        let last = match inodes.get_mut(&ino) {
            Some(Mode::Kernel { opens, .. } | Mode::Daemon { opens }) => {
                *opens = opens.saturating_sub(1);
                *opens == 0
            }
            None => false,
        };
        if last {
            inodes.remove(&ino); // drops the backing: the kernel closes it
        }
    }

    /// Inodes served by the kernel now (tests, status).
    #[cfg(test)]
    pub fn kernel_inodes(&self) -> usize {
        let inodes = self.inodes.lock();
        inodes
            .values()
            .filter(|m| matches!(m, Mode::Kernel { .. }))
            .count()
    }
}

impl<B> Deciding<'_, B> {
    /// How to answer an open of `ino` offering `offer`; `register` makes a backing of
    /// a local file. Counts the open (unless `Busy`).
    pub fn decide(
        &mut self,
        ino: u64,
        offer: Offer,
        register: impl FnOnce(&File) -> io::Result<B>,
    ) -> Via<'_, B> {
        let enabled = self.1;
        let mode = self.0.entry(ino).or_insert_with(|| {
            match (enabled.load(Ordering::Relaxed), offer.file, offer.version) {
                (true, Some(file), Some(version)) => match register(&file) {
                    Ok(backing) => Mode::Kernel {
                        backing,
                        version,
                        opens: 0,
                    },
                    Err(e) => {
                        enabled.store(false, Ordering::Relaxed);
                        tracing::warn!(error = %e,
                            "the kernel refused a passthrough file: reads go through vccfs from now on");
                        Mode::Daemon { opens: 0 }
                    }
                },
                _ => Mode::Daemon { opens: 0 },
            }
        });
        match mode {
            Mode::Kernel {
                backing,
                version,
                opens,
            } => {
                if offer.version != Some(*version) {
                    return Via::Busy;
                }
                *opens += 1;
                Via::Kernel(backing)
            }
            Mode::Daemon { opens } => {
                *opens += 1;
                Via::Daemon
            }
        }
    }
}

#[cfg(all(feature = "shuttle", test))]
#[path = "passthrough_shuttle.rs"]
mod shuttle_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::TenantId;

    fn key(n: u64) -> ContentKey {
        ContentKey::new(TenantId::new("u", "c"), "g", "k", n, None)
    }

    fn file() -> Option<File> {
        File::open("/dev/null").ok()
    }

    fn offer(n: u64, with_file: bool) -> Offer {
        Offer {
            version: Some(key(n)),
            file: if with_file { file() } else { None },
        }
    }

    #[test]
    fn the_first_open_decides_and_later_opens_follow_until_the_last_release() {
        let pt = Passthrough::<u32>::new(true);
        let mut made = 0;
        let via = |pt: &Passthrough<u32>, o, made: &mut u32| {
            let mut d = pt.lock();
            let v = d.decide(7, o, |_| {
                *made += 1;
                Ok(40 + *made)
            });
            match v {
                Via::Kernel(b) => Some(*b),
                Via::Daemon => None,
                Via::Busy => Some(0),
            }
        };
        assert_eq!(via(&pt, offer(1, true), &mut made), Some(41));
        // A later open with no file of its own still goes through the same backing.
        assert_eq!(via(&pt, offer(1, false), &mut made), Some(41));
        // Another version while the backing is in use: refused, not counted.
        assert_eq!(via(&pt, offer(2, true), &mut made), Some(0));
        assert_eq!(made, 1, "one backing per inode");
        pt.release(7);
        assert_eq!(pt.kernel_inodes(), 1);
        pt.release(7);
        assert_eq!(pt.kernel_inodes(), 0, "the last release drops the backing");
        // Ordinary first: later opens stay ordinary even with a file to offer.
        assert_eq!(via(&pt, offer(1, false), &mut made), None);
        assert_eq!(via(&pt, offer(1, true), &mut made), None);
        assert_eq!(made, 1);
        pt.release(7);
        pt.release(7);
        assert_eq!(via(&pt, offer(2, true), &mut made), Some(42));
    }

    #[test]
    fn a_refused_backing_turns_passthrough_off_for_the_mount() {
        let pt = Passthrough::<u32>::new(true);
        {
            let mut d = pt.lock();
            let v = d.decide(1, offer(1, true), |_| Err(io::Error::other("EPERM")));
            assert_eq!(v, Via::Daemon);
        }
        assert!(!pt.enabled());
        let mut d = pt.lock();
        assert_eq!(d.decide(2, offer(1, true), |_| Ok(5)), Via::Daemon);
    }
}
