//! The reference model of the reference-model test (`reftest`): the API's tenant
//! (`server`), what the catalog shows (`listed`, `looked_up`, `missing`), and the tree
//! that follows from it, computed the simple way (every name from scratch).
//!
//! Invariants: the model changes only through the methods named after what the
//! system does (`relist`, `lookup_guid`, `revalidate`, `erase`), each a few lines of
//! the documented semantics; every name and inode of the tree is derived from the
//! model's interactions alone.

use std::collections::{BTreeMap, BTreeSet};

use time::{Date, OffsetDateTime};

use crate::catalog::{ino, views::Facet, META_NAME};
use crate::model::Interaction;

/// How many guids the test plays with.
pub(super) const UNIVERSE: u32 = 6;
/// The content keys of every interaction, their `type` and their name under `calls/`.
pub(super) const KEYS: [(&str, &str, &str, &str, u64); 2] = [
    (
        "callRecording",
        "CALL_RECORDING",
        "audio/wav",
        "CALL_RECORDING.wav",
        150_000,
    ),
    (
        "transcript",
        "TRANSCRIPT",
        "application/json",
        "TRANSCRIPT.json",
        3_000,
    ),
];

pub(super) fn guid(n: u32) -> String {
    crate::meta::mock::guid(n)
}

/// One interaction as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inter {
    pub n: u32,
    pub start: OffsetDateTime,
    /// Bumped when `connectFrom` changes (the call's name changes).
    pub party: u32,
    /// Per key: bumped when the file changes (size and `lastModified`).
    pub versions: [u32; 2],
    /// Has it a transcript (key 1)? The recording (key 0) is always there.
    pub transcript: bool,
}

impl Inter {
    pub fn day(&self) -> Date {
        self.start.date()
    }

    /// Has it content key `k`?
    pub fn has(&self, k: usize) -> bool {
        k == 0 || self.transcript
    }

    /// The content keys it has.
    pub fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        (0..KEYS.len()).filter(|k| self.has(*k))
    }

    pub fn size(&self, k: usize) -> u64 {
        KEYS[k].4 + u64::from(self.versions[k]) * 100
    }

    pub fn last_modified(&self, k: usize) -> i64 {
        self.start.unix_timestamp() + 3600 + i64::from(self.versions[k]) * 60
    }

    pub fn from(&self) -> String {
        format!("+1555{}0{}", self.n, self.party)
    }

    pub fn agent(&self) -> String {
        format!("a{}", self.n % 2)
    }

    pub fn facet_keys(&self, facet: Facet) -> Vec<String> {
        match facet {
            Facet::Agent => vec![self.agent()],
            Facet::Number => vec![self.from(), "+44200".into()],
        }
    }

    /// Its name under `calls/<day>/` by the default template.
    pub fn name(&self) -> String {
        let t = self.start.time();
        format!(
            "{:02}-{:02}-{:02}_inbound_{}_+44200_{}_{:08x}",
            t.hour(),
            t.minute(),
            t.second(),
            self.from(),
            self.agent(),
            self.n
        )
    }

    /// As the API serves it.
    pub fn json(&self) -> Interaction {
        let content: Vec<_> = self
            .keys()
            .map(|k| {
                let (key, kind, ct, _, _) = KEYS[k];
                let lm =
                    OffsetDateTime::from_unix_timestamp(self.last_modified(k)).expect("a time");
                serde_json::json!({"contentKey": key, "type": kind, "contentType": ct,
                    "contentLength": self.size(k),
                    "lastModified": crate::util::format_rfc3339(lm)})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "guid": guid(self.n),
            "start": crate::util::format_rfc3339(self.start),
            "direction": "Inbound",
            "connectFrom": self.from(),
            "connectTo": "+44200",
            "handlingAgents": [{"id": self.agent()}],
            "content": content,
        }))
        .expect("a valid interaction")
    }
}

/// A directory of the tree, as the model names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dir {
    Root,
    Interactions,
    Interaction(u32),
    ByDate,
    Day(Date),
    Calls,
    CallsDay(Date),
    Call(u32),
    Facets(Facet),
    Facet(Facet, String),
    FacetDay(Facet, String, Date),
}

/// What a name in a directory is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kid {
    Dir(Dir),
    /// File `k` (or `None`: the metadata) of interaction `n`.
    File(u32, Option<usize>),
    Link,
}

#[derive(Debug, Default)]
pub(super) struct Model {
    pub server: BTreeMap<u32, Inter>,
    pub listed: BTreeMap<u32, Inter>,
    /// Looked up by name and not (yet) listed.
    pub looked_up: BTreeMap<u32, Inter>,
    /// "No such guid", remembered.
    pub missing: BTreeSet<u32>,
    /// How many times each guid was erased.
    pub erasures: BTreeMap<u32, u64>,
    /// How many times each file was erased alone (the API dropped that content key).
    pub content_erasures: BTreeMap<(u32, usize), u64>,
    pub days: Vec<Date>,
}

impl Model {
    pub fn known(&self, n: u32) -> Option<&Inter> {
        self.listed.get(&n).or_else(|| self.looked_up.get(&n))
    }

    pub fn erasures(&self, n: u32) -> u64 {
        self.erasures.get(&n).copied().unwrap_or(0)
    }

    pub fn content_erasures(&self, n: u32, k: usize) -> u64 {
        self.content_erasures.get(&(n, k)).copied().unwrap_or(0)
    }

    /// The catalog learns `new` of an interaction it knew as `old`: each file `old`
    /// had and `new` has not is erased alone.
    fn files_gone(&mut self, old: Option<&Inter>, new: &Inter) {
        let Some(old) = old else { return };
        for k in old.keys().filter(|k| !new.has(*k)).collect::<Vec<_>>() {
            *self.content_erasures.entry((new.n, k)).or_default() += 1;
        }
    }

    /// The catalog forgets `n` (an erasure).
    pub fn erase(&mut self, n: u32) {
        self.listed.remove(&n);
        self.looked_up.remove(&n);
        self.missing.insert(n);
        *self.erasures.entry(n).or_default() += 1;
    }

    /// A listing of what `inside` selects: it shows the server's; what it no longer
    /// shows is erased.
    pub fn relist(&mut self, inside: impl Fn(&Inter) -> bool) {
        let gone: Vec<u32> = self
            .listed
            .values()
            .filter(|i| inside(i) && !self.server.contains_key(&i.n))
            .map(|i| i.n)
            .collect();
        let shown: Vec<Inter> = self
            .server
            .values()
            .filter(|i| inside(i))
            .cloned()
            .collect();
        for i in shown {
            let old = self.known(i.n).cloned();
            self.files_gone(old.as_ref(), &i);
            self.looked_up.remove(&i.n);
            self.missing.remove(&i.n);
            self.listed.insert(i.n, i);
        }
        for n in gone {
            self.erase(n);
        }
    }

    /// `interactions/<guid>` looked up: does it exist?
    pub fn lookup_guid(&mut self, n: u32) -> bool {
        if self.missing.contains(&n) {
            return false;
        }
        if self.known(n).is_some() {
            return true;
        }
        match self.server.get(&n) {
            Some(i) => {
                self.looked_up.insert(n, i.clone());
                true
            }
            None => {
                // 404: remembered, and erased from every tier.
                self.erase(n);
                false
            }
        }
    }

    /// A read failed (changed or gone): `n` is looked up again.
    pub fn revalidate(&mut self, n: u32) {
        if self.known(n).is_none() {
            return;
        }
        let old = self.known(n).cloned();
        match self.server.get(&n).cloned() {
            Some(i) => {
                self.files_gone(old.as_ref(), &i);
                match self.listed.contains_key(&n) {
                    true => self.listed.insert(n, i),
                    false => self.looked_up.insert(n, i),
                };
            }
            None => self.erase(n),
        }
    }

    fn listed_on(&self, day: Date) -> impl Iterator<Item = &Inter> {
        self.listed.values().filter(move |i| i.day() == day)
    }

    fn facet_keys(&self, facet: Facet) -> BTreeSet<String> {
        let days = &self.days;
        self.listed
            .values()
            .filter(|i| days.contains(&i.day()))
            .flat_map(|i| i.facet_keys(facet))
            .collect()
    }

    /// What `readdir` of `dir` lists (without `.` and `..`): name → (inode, kind);
    /// `None` when the directory is gone.
    pub fn readdir(&self, dir: &Dir) -> Option<BTreeMap<String, (u64, Kid)>> {
        let mut out = BTreeMap::new();
        let mut put = |name: String, ino: u64, kid: Kid| {
            out.insert(name, (ino, kid));
        };
        match dir {
            Dir::Root => {
                put(
                    "interactions".into(),
                    ino::INTERACTIONS,
                    Kid::Dir(Dir::Interactions),
                );
                put("by-date".into(), ino::BY_DATE, Kid::Dir(Dir::ByDate));
                put("calls".into(), ino::CALLS, Kid::Dir(Dir::Calls));
                for f in [Facet::Agent, Facet::Number] {
                    put(f.tag().into(), f.root(), Kid::Dir(Dir::Facets(f)));
                }
            }
            Dir::Interactions => {
                for n in self.listed.keys() {
                    put(
                        guid(*n),
                        ino::interaction(&guid(*n)),
                        Kid::Dir(Dir::Interaction(*n)),
                    );
                }
            }
            Dir::Interaction(n) | Dir::Call(n) => {
                let g = guid(*n);
                let meta = if matches!(dir, Dir::Call(_)) {
                    "interaction.json"
                } else {
                    META_NAME
                };
                let known = self.known(*n)?.clone();
                put(meta.into(), ino::meta(&g), Kid::File(*n, None));
                for (k, (key, _, _, shown, _)) in KEYS.iter().enumerate() {
                    if !known.has(k) {
                        continue;
                    }
                    let name = if matches!(dir, Dir::Call(_)) {
                        shown
                    } else {
                        key
                    };
                    put(name.to_string(), ino::file(&g, key), Kid::File(*n, Some(k)));
                }
            }
            Dir::ByDate | Dir::Calls => {
                for d in &self.days {
                    let (ino, kid) = match dir {
                        Dir::ByDate => (ino::day(*d), Dir::Day(*d)),
                        _ => (ino::calls_day(*d), Dir::CallsDay(*d)),
                    };
                    put(d.to_string(), ino, Kid::Dir(kid));
                }
            }
            Dir::Day(d) => {
                for i in self.listed_on(*d) {
                    put(guid(i.n), ino::link(*d, &guid(i.n)), Kid::Link);
                }
            }
            Dir::CallsDay(d) => {
                for i in self.listed_on(*d) {
                    put(i.name(), ino::call(&guid(i.n)), Kid::Dir(Dir::Call(i.n)));
                }
            }
            Dir::Facets(f) => {
                for key in self.facet_keys(*f) {
                    let kid = Kid::Dir(Dir::Facet(*f, key.clone()));
                    put(key.clone(), ino::facet(*f, &key), kid);
                }
            }
            Dir::Facet(f, key) => {
                for d in &self.days {
                    if self.listed_on(*d).any(|i| i.facet_keys(*f).contains(key)) {
                        let kid = Kid::Dir(Dir::FacetDay(*f, key.clone(), *d));
                        put(d.to_string(), ino::facet_day(*f, key, *d), kid);
                    }
                }
            }
            Dir::FacetDay(f, key, d) => {
                for i in self.listed_on(*d) {
                    if i.facet_keys(*f).contains(key) {
                        let ino = ino::facet_link(*f, key, *d, &guid(i.n));
                        put(i.name(), ino, Kid::Link);
                    }
                }
            }
        }
        Some(out)
    }

    /// The names worth looking up in `dir`: what it lists, and some it may not.
    pub fn candidates(&self, dir: &Dir) -> Vec<String> {
        let mut names: Vec<String> = self
            .readdir(dir)
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        match dir {
            Dir::Interactions | Dir::Day(_) => names.extend((1..=UNIVERSE).map(guid)),
            Dir::Interaction(_) => names.extend(KEYS.iter().map(|k| k.0.to_string())),
            Dir::CallsDay(_) => names.extend(self.server.values().map(Inter::name)),
            _ => {}
        }
        names.push("nope".into());
        names.sort();
        names.dedup();
        names
    }
}
