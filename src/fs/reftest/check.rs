//! What the reference-model test expects of a lookup and a read, and the checks made
//! after every step (the tree, the sizes, the node table). Invariant: every
//! expectation comes from the model (`model`) and the documented semantics, never
//! from the system under test.

use fuser::Errno;

use super::model::{guid, Dir, Kid, UNIVERSE};
use super::{errno_of, truth, Rig};
use crate::catalog::ino;

impl Rig {
    /// What a lookup of `name` in `dir` finds (and does to the model).
    pub(super) fn expect_lookup(&mut self, dir: &Dir, name: &str) -> Option<(u64, Kid)> {
        let n = (1..=UNIVERSE).find(|n| guid(*n) == name);
        match dir {
            Dir::Interactions => {
                let n = n?;
                self.model
                    .lookup_guid(n)
                    .then(|| (ino::interaction(name), Kid::Dir(Dir::Interaction(n))))
            }
            Dir::Day(d) => {
                let i = self.model.known(n?)?;
                (i.day() == *d).then(|| (ino::link(*d, name), Kid::Link))
            }
            _ => self.model.readdir(dir)?.get(name).cloned(),
        }
    }

    /// Read open file `i` at a place `at` picks, and check what it returns.
    pub(super) fn read(&mut self, i: usize, at: u8) -> Result<(), String> {
        let o = &self.open[i];
        let (fh, n) = (o.fh, o.n);
        let erased = self.model.erasures(n) != o.erasures;
        let Some(k) = o.key else {
            let got = self.rt.block_on(self.ops.read(fh, 0, 1 << 20));
            return match (erased, got) {
                (true, Err(e)) if errno_of(&e) == Errno::ENOENT => Ok(()),
                (false, Ok(b)) => {
                    let json: serde_json::Value =
                        serde_json::from_slice(&b).map_err(|e| format!("meta: {e}"))?;
                    let size = json["content"][0]["contentLength"].as_u64();
                    if json["guid"] != guid(n).as_str() || size != Some(o.at_open.size(0)) {
                        return Err(format!("meta of {n}: {json}"));
                    }
                    let o = &mut self.open[i];
                    if o.meta.get_or_insert_with(|| b.clone()) != &b {
                        return Err(format!("meta of {n} changed while open"));
                    }
                    Ok(())
                }
                (erased, got) => Err(format!("read meta of {n} (erased {erased}): {got:?}")),
            };
        };
        let erased = erased || self.model.content_erasures(n, k) != o.content_erasures;
        let size = o.at_open.size(k);
        let offset = [0, 70_000, 140_000, size.saturating_sub(10), size + 5][usize::from(at) % 5];
        let want = truth(&o.at_open, k, offset, 20_000);
        // Does the API still serve this file, and this version of it?
        let server = self.model.server.get(&n).filter(|s| s.has(k));
        let same = server.is_some_and(|s| s.versions[k] == o.at_open.versions[k]);
        let has = server.is_some();
        let got = self.rt.block_on(self.ops.read(fh, offset, 20_000));
        let ok = match &got {
            Err(e) if erased => errno_of(e) == Errno::ENOENT,
            _ if erased => false,
            Ok(b) => b[..] == want[..],
            Err(_) if offset >= size || same => false,
            Err(e) if has => errno_of(e) == Errno::from_i32(libc::ESTALE),
            Err(e) => errno_of(e) == Errno::ENOENT,
        };
        if !ok {
            let got = got.map(|b| b.len());
            return Err(format!(
                "read {n}/{k} at {offset} (erased {erased}, same {same}, at the API {has}): {got:?}"
            ));
        }
        if got.is_err() && !erased {
            self.model.revalidate(n);
        }
        Ok(())
    }

    /// The tree, the sizes and the node table are the model's.
    pub(super) fn check(&self) -> Result<(), String> {
        for (ino, h) in &self.kernel {
            if self.ops.lookups(*ino) != Some(h.lookups) {
                return Err(format!(
                    "node {ino} ({:?}): kernel holds {}, table {:?}",
                    h.kid,
                    h.lookups,
                    self.ops.lookups(*ino)
                ));
            }
        }
        if self.ops.node_count() != self.kernel.len() {
            return Err(format!(
                "the table holds {} nodes, the kernel {}",
                self.ops.node_count(),
                self.kernel.len()
            ));
        }
        for (ino, dir) in self.dirs() {
            let want = self.model.readdir(&dir);
            let got = self.rt.block_on(self.ops.readdir(ino, 0));
            match (want, got) {
                (Some(want), Ok(got)) => {
                    let got: Vec<(String, u64)> =
                        got.into_iter().skip(2).map(|e| (e.name, e.ino)).collect();
                    let mut sorted = got.clone();
                    sorted.sort();
                    let want: Vec<(String, u64)> =
                        want.into_iter().map(|(n, (i, _))| (n, i)).collect();
                    if sorted != want {
                        return Err(format!("readdir {dir:?}: want {want:?}, got {got:?}"));
                    }
                }
                (None, Err(e)) if errno_of(&e) == Errno::ENOENT => {}
                (want, got) => return Err(format!("readdir {dir:?}: want {want:?}, got {got:?}")),
            }
        }
        for (ino, h) in &self.kernel {
            let want = match &h.kid {
                Kid::File(n, k) => match (self.model.known(*n), k) {
                    (Some(i), Some(k)) if i.has(*k) => Some(Some(i.size(*k))),
                    (Some(_), Some(_)) => None,
                    (Some(_), None) => Some(None),
                    (None, _) => None,
                },
                Kid::Dir(Dir::Interaction(n) | Dir::Call(n)) => {
                    self.model.known(*n).map(|_| Some(0))
                }
                _ => continue,
            };
            let got = self.rt.block_on(self.ops.getattr(*ino));
            let ok = match (&want, &got) {
                (Some(Some(size)), Ok(e)) => e.attr.size == *size,
                (Some(None), Ok(_)) => true,
                (None, Err(e)) => errno_of(e) == Errno::ENOENT,
                _ => false,
            };
            if !ok {
                return Err(format!("getattr {:?}: want {want:?}, got {got:?}", h.kid));
            }
        }
        Ok(())
    }
}
