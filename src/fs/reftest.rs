//! The reference-model property test of `fs::ops` (issue 26): random sequences of
//! what the kernel does (lookup, open, read, release, forget) and of what happens at
//! the API (an interaction added, changed, deleted; a content key dropped or
//! added back; the tail re-listed; a day re-listed), applied to the real [`Ops`] (over a [`Catalog`] fed by the scriptable
//! `MockMeta`, the real prefetcher and memory cache, a [`VersionedSource`] whose bytes
//! differ per version, and the real [`Eraser`] driven by the catalog's hook) and to a
//! simple model (`model`).
//!
//! After every step:
//! - **the tree is the model's**: every directory the kernel holds (and the fixed
//!   ones) lists exactly the model's names and inodes — `interactions/`, `by-date/`,
//!   `calls/<day>/<name>/` (the same inodes as `interactions/`), `by-agent/`,
//!   `by-number/`; files and directories the kernel holds have the model's sizes, or
//!   are `ENOENT` when their interaction is gone;
//! - **a read returns the model's bytes**: exactly the version opened while the API
//!   still serves it; after a change, those bytes or `ESTALE` (`ENOENT` if the API
//!   no longer has it); after an erasure, `ENOENT`, never bytes;
//! - **the node table is the kernel's**: it holds exactly the inodes the kernel model
//!   still references, each with its lookup count.
//!
//! Cases: `VCCFS_REFTEST_CASES` (default 200), steps per case up to 40. A failure is
//! shrunk by proptest to a minimal sequence of steps.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Arc;

use bytes::Bytes;
use fuser::Errno;
use parking_lot::Mutex;
use proptest::prelude::*;
use time::OffsetDateTime;

use super::errno::FsError;
use super::ops::Ops;
use crate::cache::BlockCache;
use crate::catalog::views::Facet;
use crate::catalog::{ino, Catalog, Change};
use crate::erase::{Eraser, Inval};
use crate::meta::mock::MockMeta;
use crate::prefetch::{Prefetcher, ReadAheadConfig};
use crate::source::mock::{versioned_byte, VersionedSource};

mod model;

use model::{guid, Dir, Inter, Kid, Model, KEYS, UNIVERSE};

/// One step of a case.
#[derive(Debug, Clone)]
enum Step {
    Lookup {
        dir: u8,
        name: u8,
    },
    Open {
        file: u8,
    },
    /// `cat interactions/<guid>/<key>`: the lookups down the path, then an open.
    OpenPath {
        n: u8,
        key: u8,
    },
    Read {
        handle: u8,
        at: u8,
    },
    Release {
        handle: u8,
    },
    Forget {
        ino: u8,
        all: bool,
    },
    Add {
        n: u8,
    },
    /// `what`: 0, 1 a file changes; 2 `connectFrom` changes (the call's name); 3 the
    /// transcript (key 1) goes, or comes back as a new version.
    Change {
        n: u8,
        what: u8,
    },
    Delete {
        n: u8,
    },
    Tail,
    Relist {
        recent: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>()).prop_map(|(dir, name)| Step::Lookup { dir, name }),
        3 => any::<u8>().prop_map(|file| Step::Open { file }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(n, key)| Step::OpenPath { n, key }),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(handle, at)| Step::Read { handle, at }),
        1 => any::<u8>().prop_map(|handle| Step::Release { handle }),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(ino, all)| Step::Forget { ino, all }),
        1 => any::<u8>().prop_map(|n| Step::Add { n }),
        3 => (any::<u8>(), 0u8..4).prop_map(|(n, what)| Step::Change { n, what }),
        1 => any::<u8>().prop_map(|n| Step::Delete { n }),
        1 => Just(Step::Tail),
        1 => any::<bool>().prop_map(|recent| Step::Relist { recent }),
    ]
}

/// What the kernel holds of an inode: what it is, and its lookups.
#[derive(Debug, Clone)]
struct Held {
    kid: Kid,
    lookups: u64,
}

/// An open file, as the model sees it.
#[derive(Debug)]
struct Open {
    fh: u64,
    n: u32,
    key: Option<usize>,
    /// The interaction as the catalog showed it at the open.
    at_open: Inter,
    erasures: u64,
    /// Erasures of this file alone when it was opened.
    content_erasures: u64,
    /// `.interaction.json`: what its first read returned.
    meta: Option<Bytes>,
}

struct Rig {
    rt: tokio::runtime::Runtime,
    ops: Ops,
    catalog: Arc<Catalog>,
    api: Arc<MockMeta>,
    source: Arc<VersionedSource>,
    eraser: Arc<Eraser>,
    changes: Arc<Mutex<Vec<Change>>>,
    model: Model,
    kernel: BTreeMap<u64, Held>,
    open: Vec<Open>,
    old_day: time::Date,
    recent_from: OffsetDateTime,
    log: Vec<String>,
}

impl Rig {
    fn new() -> Rig {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let now = crate::util::now_secs();
        let from = (now - time::Duration::days(3))
            .date()
            .midnight()
            .assume_utc();
        let to = now + time::Duration::MINUTE;
        let old_day = (now - time::Duration::days(2)).date();
        let recent_from = now - time::Duration::HOUR;
        let mut model = Model::default();
        let mut day = from.date();
        while day <= to.date() {
            model.days.push(day);
            day = day.next_day().expect("a day");
        }
        let api = Arc::new(MockMeta::new(Vec::new()));
        let source = Arc::new(VersionedSource::default());
        let catalog = Arc::new(Catalog::with_mock(from, to, Arc::clone(&api)));
        let cache = Arc::new(BlockCache::new(16 << 20, 64 << 10));
        let prefetcher = Arc::new(Prefetcher::new(
            Arc::clone(&source) as Arc<dyn crate::source::BlockSource>,
            Arc::clone(&cache),
            ReadAheadConfig::default(),
            rt.handle().clone(),
        ));
        let ops = Ops::new(Arc::clone(&catalog), prefetcher);
        let eraser = Arc::new(Eraser::new(
            Arc::clone(&catalog),
            cache,
            |i| {
                if let Inval::Barrier(done) = i {
                    done.fire();
                }
            },
            Vec::new(),
            None,
        ));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&changes);
        catalog.on_change(move |c| seen.lock().push(c));
        let mut rig = Rig {
            rt,
            ops,
            catalog,
            api,
            source,
            eraser,
            changes,
            model,
            kernel: BTreeMap::new(),
            open: Vec::new(),
            old_day,
            recent_from,
            log: Vec::new(),
        };
        // Four interactions exist, and the window is listed.
        for n in 1..=4 {
            rig.add(n);
        }
        rig.rt
            .block_on(rig.catalog.list_window())
            .expect("list the window");
        rig.model.relist(|_| true);
        rig.settle();
        rig
    }

    /// Interaction `n`: odd ones on the old day, even ones in the recent tail.
    fn start_of(&self, n: u32) -> OffsetDateTime {
        match n % 2 {
            1 => self.old_day.midnight().assume_utc() + time::Duration::minutes(480 + i64::from(n)),
            _ => self.recent_from + time::Duration::minutes(10 + i64::from(n)),
        }
    }

    /// The API serves `i` from now on.
    fn serve(&mut self, i: Inter) {
        let g = guid(i.n);
        for (k, key) in KEYS.iter().enumerate() {
            match i.has(k) {
                true => self.source.set(&g, key.0, i.size(k), i.last_modified(k)),
                false => self.source.remove_key(&g, key.0),
            }
        }
        self.api.put(i.json());
        self.model.server.insert(i.n, i);
    }

    fn add(&mut self, n: u32) {
        if !self.model.server.contains_key(&n) {
            let start = self.start_of(n);
            // A guid that comes back comes back changed.
            let v = self.model.erasures(n) as u32;
            let i = Inter {
                n,
                start,
                party: v,
                versions: [v, v],
                transcript: true,
            };
            self.serve(i);
        }
    }

    /// Erase what the catalog's hook asked (as `mount::serve` does, but to the end).
    fn settle(&mut self) {
        loop {
            let pending: Vec<Change> = std::mem::take(&mut *self.changes.lock());
            if pending.is_empty() {
                return;
            }
            for c in pending {
                match c {
                    Change::Gone { guid, entry } => {
                        self.rt.block_on(self.eraser.erase_gone(&guid, entry));
                    }
                    Change::ContentGone { guid, key, version } => {
                        self.rt
                            .block_on(self.eraser.erase_content(&guid, &key, version));
                    }
                    _ => {}
                }
            }
        }
    }

    /// The directories the kernel can name: the fixed ones and those it holds.
    fn dirs(&self) -> Vec<(u64, Dir)> {
        let mut out = vec![
            (ino::ROOT, Dir::Root),
            (ino::INTERACTIONS, Dir::Interactions),
            (ino::BY_DATE, Dir::ByDate),
            (ino::CALLS, Dir::Calls),
            (ino::BY_AGENT, Dir::Facets(Facet::Agent)),
            (ino::BY_NUMBER, Dir::Facets(Facet::Number)),
        ];
        for (ino, h) in &self.kernel {
            if let Kid::Dir(d) = &h.kid {
                out.push((*ino, d.clone()));
            }
        }
        out
    }

    fn files(&self) -> Vec<(u64, u32, Option<usize>)> {
        self.kernel
            .iter()
            .filter_map(|(ino, h)| match h.kid {
                Kid::File(n, k) => Some((*ino, n, k)),
                _ => None,
            })
            .collect()
    }

    fn apply(&mut self, s: &Step) -> Result<(), String> {
        self.log.push(format!("{s:?}"));
        let pick = |i: u8, len: usize| (len > 0).then(|| usize::from(i) % len);
        let member = |n: u8| u32::from(n) % UNIVERSE + 1;
        match *s {
            Step::Lookup { dir, name } => {
                // Half the time one the kernel looked up (deeper in the tree).
                let dirs = self.dirs();
                let held = &dirs[6..];
                let (pino, d) = match held.len() {
                    h if h > 0 && dir % 2 == 0 => held[usize::from(dir / 2) % h].clone(),
                    _ => dirs[usize::from(dir) % dirs.len()].clone(),
                };
                let names = self.model.candidates(&d);
                let name = names[usize::from(name) % names.len()].clone();
                self.lookup_in(pino, &d, &name)?;
            }
            Step::Open { file } => {
                let files = self.files();
                let Some(i) = pick(file, files.len()) else {
                    return Ok(());
                };
                let (ino, n, key) = files[i];
                self.open_file(ino, n, key)?;
            }
            Step::OpenPath { n, key } => {
                let (n, k) = (member(n), usize::from(key) % KEYS.len());
                let g = guid(n);
                let Some(dir) = self.lookup_in(ino::INTERACTIONS, &Dir::Interactions, &g)? else {
                    return self.settle_and_check();
                };
                let Some(file) = self.lookup_in(dir, &Dir::Interaction(n), KEYS[k].0)? else {
                    return self.settle_and_check();
                };
                self.open_file(file, n, Some(k))?;
            }
            Step::Read { handle, at } => {
                let Some(i) = pick(handle, self.open.len()) else {
                    return Ok(());
                };
                self.read(i, at)?;
            }
            Step::Release { handle } => {
                if let Some(i) = pick(handle, self.open.len()) {
                    let o = self.open.remove(i);
                    self.ops.release(o.fh);
                }
            }
            Step::Forget { ino, all } => {
                let inos: Vec<u64> = self.kernel.keys().copied().collect();
                if let Some(i) = pick(ino, inos.len()) {
                    let ino = inos[i];
                    let n = if all { self.kernel[&ino].lookups } else { 1 };
                    self.ops.forget(ino, n);
                    if let Some(h) = self.kernel.get_mut(&ino) {
                        h.lookups -= n;
                        if h.lookups == 0 {
                            self.kernel.remove(&ino);
                        }
                    }
                }
            }
            Step::Add { n } => self.add(member(n)),
            Step::Change { n, what } => {
                if let Some(mut i) = self.model.server.get(&member(n)).cloned() {
                    match what {
                        2 => i.party += 1,
                        3 => {
                            i.transcript = !i.transcript;
                            if i.transcript {
                                i.versions[1] += 1;
                            }
                        }
                        k => i.versions[usize::from(k)] += 1,
                    }
                    self.serve(i);
                }
            }
            Step::Delete { n } => {
                let n = member(n);
                if self.model.server.remove(&n).is_some() {
                    self.api.remove(&guid(n));
                    self.source.remove(&guid(n));
                }
            }
            Step::Tail => {
                self.rt
                    .block_on(self.catalog.relist(&[]))
                    .map_err(|e| format!("tail: {e}"))?;
                let from = self.recent_from;
                self.model.relist(|i| i.start >= from);
            }
            Step::Relist { recent } => {
                let day = if recent {
                    self.start_of(2).date()
                } else {
                    self.old_day
                };
                self.rt
                    .block_on(self.catalog.relist(&[day]))
                    .map_err(|e| format!("relist {day}: {e}"))?;
                self.model.relist(|i| i.day() == day);
            }
        }
        self.settle_and_check()
    }

    fn settle_and_check(&mut self) -> Result<(), String> {
        self.settle();
        self.check()
    }

    /// The kernel looks `name` up in `pino` (the model's `d`); the inode, if found.
    fn lookup_in(&mut self, pino: u64, d: &Dir, name: &str) -> Result<Option<u64>, String> {
        let want = self.expect_lookup(d, name);
        let got = self.rt.block_on(self.ops.lookup(pino, OsStr::new(name)));
        match (want, got) {
            (Some((ino, kid)), Ok(e)) if e.attr.ino.0 == ino => {
                if !is_fixed(ino) {
                    let h = self.kernel.entry(ino).or_insert(Held { kid, lookups: 0 });
                    h.lookups += 1;
                }
                Ok(Some(ino))
            }
            (None, Err(e)) if e.errno() == Errno::ENOENT => Ok(None),
            (want, got) => Err(format!("lookup {d:?}/{name}: want {want:?}, got {got:?}")),
        }
    }

    /// The kernel opens file `ino` (`key` of interaction `n`, or its metadata).
    fn open_file(&mut self, ino: u64, n: u32, key: Option<usize>) -> Result<(), String> {
        let got = self.ops.open(ino, libc::O_RDONLY);
        // A file whose key the catalog no longer shows is gone, as its interaction is.
        let known = self.model.known(n).cloned();
        let known = known.filter(|i| key.is_none_or(|k| i.has(k)));
        match (known, got) {
            (Some(at_open), Ok(fh)) => {
                self.open.push(Open {
                    fh,
                    n,
                    key,
                    at_open,
                    erasures: self.model.erasures(n),
                    content_erasures: key.map_or(0, |k| self.model.content_erasures(n, k)),
                    meta: None,
                });
                Ok(())
            }
            (None, Err(e)) if e.errno() == Errno::ENOENT => Ok(()),
            (want, got) => Err(format!("open {n} {key:?}: want {want:?}, got {got:?}")),
        }
    }
}

fn is_fixed(ino: u64) -> bool {
    [
        ino::ROOT,
        ino::INTERACTIONS,
        ino::BY_DATE,
        ino::CALLS,
        ino::BY_AGENT,
        ino::BY_NUMBER,
    ]
    .contains(&ino)
}

mod check;

/// How many cases: `VCCFS_REFTEST_CASES`, else 200.
fn cases() -> u32 {
    std::env::var("VCCFS_REFTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ops_follow_the_reference_model(steps in proptest::collection::vec(step(), 1..40)) {
        let mut rig = Rig::new();
        for s in &steps {
            if let Err(why) = rig.apply(s) {
                prop_assert!(false, "{why}\nsteps: {:#?}", rig.log);
            }
        }
    }
}

/// Expected bytes `[offset, offset + len)` of file `k` of `i` (clamped to its size).
fn truth(i: &Inter, k: usize, offset: u64, len: u64) -> Vec<u8> {
    let end = (offset + len).min(i.size(k));
    let lm = i.last_modified(k);
    (offset..end.max(offset))
        .map(|j| versioned_byte(&guid(i.n), KEYS[k].0, lm, j))
        .collect()
}

fn errno_of(e: &FsError) -> Errno {
    e.errno()
}

/// The sequence behind the first finding, spelled out: a handle of a version the
/// catalog has since replaced, whose interaction is then deleted and erased.
#[test]
fn an_erased_interactions_old_version_reads_no_bytes() {
    let mut rig = Rig::new();
    let dir = rig.lookup_path(ino::INTERACTIONS, &guid(1), Kid::Dir(Dir::Interaction(1)));
    let file = rig.lookup_path(dir, "callRecording", Kid::File(1, Some(0)));
    let fh = rig.ops.open(file, libc::O_RDONLY).expect("open");
    let mut v1 = rig.model.known(1).cloned().expect("known");
    let want = truth(&v1, 0, 0, 4096);
    assert_eq!(
        rig.rt.block_on(rig.ops.read(fh, 0, 4096)).expect("read")[..],
        want[..]
    );
    v1.versions[0] += 1;
    rig.serve(v1);
    rig.apply(&Step::Relist { recent: false }).expect("relist");
    rig.apply(&Step::Delete { n: 0 }).expect("delete");
    rig.apply(&Step::Relist { recent: false }).expect("relist");
    let e = rig.rt.block_on(rig.ops.read(fh, 0, 4096));
    assert_eq!(
        e.map_err(|e| e.errno()).map(|b| b.len()),
        Err(Errno::ENOENT)
    );
}

/// A content key the API drops: an open handle of it reads no more bytes (not even
/// those cached), the file leaves its directory, and when the key comes back it is a
/// new version, read exactly.
#[test]
fn a_dropped_files_open_handle_reads_no_bytes() {
    let mut rig = Rig::new();
    let dir = rig.lookup_path(ino::INTERACTIONS, &guid(1), Kid::Dir(Dir::Interaction(1)));
    let file = rig.lookup_path(dir, "transcript", Kid::File(1, Some(1)));
    let fh = rig.ops.open(file, libc::O_RDONLY).expect("open");
    let v = rig.model.known(1).cloned().expect("known");
    let want = truth(&v, 1, 0, 4096);
    assert_eq!(
        rig.rt.block_on(rig.ops.read(fh, 0, 4096)).expect("read")[..],
        want[..]
    );
    rig.apply(&Step::Change { n: 0, what: 3 })
        .expect("drop the transcript");
    rig.apply(&Step::Relist { recent: false }).expect("relist");
    assert_eq!(rig.model.content_erasures(1, 1), 1);
    let e = rig.rt.block_on(rig.ops.read(fh, 0, 4096));
    assert_eq!(
        e.map_err(|e| e.errno()).map(|b| b.len()),
        Err(Errno::ENOENT)
    );
    let got = rig
        .rt
        .block_on(rig.ops.lookup(dir, OsStr::new("transcript")));
    assert_eq!(
        got.map(|e| e.attr.ino.0).map_err(|e| e.errno()),
        Err(Errno::ENOENT)
    );
    rig.ops.release(fh);
    rig.apply(&Step::Change { n: 0, what: 3 })
        .expect("the transcript back");
    rig.apply(&Step::Relist { recent: false }).expect("relist");
    let v = rig.model.known(1).cloned().expect("known");
    assert_eq!(v.versions[1], 1, "a new version");
    let fh = rig.ops.open(file, libc::O_RDONLY).expect("open again");
    assert_eq!(
        rig.rt.block_on(rig.ops.read(fh, 0, 4096)).expect("read")[..],
        truth(&v, 1, 0, 4096)[..]
    );
}

impl Rig {
    /// Look `name` up in `parent` (it must exist), as the kernel does.
    fn lookup_path(&mut self, parent: u64, name: &str, kid: Kid) -> u64 {
        let e = self.rt.block_on(self.ops.lookup(parent, OsStr::new(name)));
        let ino = e.expect("lookup").attr.ino.0;
        self.kernel
            .entry(ino)
            .or_insert(Held { kid, lookups: 0 })
            .lookups += 1;
        ino
    }
}
