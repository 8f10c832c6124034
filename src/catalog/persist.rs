//! The catalog on disk: one file per UTC day of listed interactions, so a remount
//! shows the tree at once and re-lists in the background instead of before mounting.
//!
//! Invariants:
//! - **Sealed.** A day file (`<day>.day`) is a sealed stream (`seal::SealWriter`,
//!   AES-256-GCM in 64 KiB chunks under the tenant's catalog key) bound to its day:
//!   nobody without the tenant's key reads a phone number, agent or guid from it, and
//!   a file that is damaged, cut, of another day, tenant or key does not open.
//! - A day's file is written only from a complete listing (every page, up to a null
//!   continuation token — `search_all` fails otherwise), atomically (a temporary file
//!   with a random name, created `O_EXCL|O_NOFOLLOW` in the same directory, renamed
//!   into place), mode 0600 in a 0700 directory.
//! - A file is trusted only whole: anything that does not open (truncated, edited,
//!   another format, another key) is deleted and treated as absent, as are the
//!   plaintext `<day>.json` files of earlier versions. A wrong listing can at worst
//!   show a file that then fails its version checks: bytes are always checked against
//!   the API (`version`).
//! - The interactions are stored as the API returned them (`model::Interaction`
//!   keeps unknown fields; a compact entry gives its interaction back unchanged), so
//!   `.interaction.json` reads the same after a remount. A day is written one
//!   interaction at a time ([`Record`]), never as one big buffer, and read back the
//!   same way (`load_day_with`).
//! - Beside each day file written from a whole listing, its index (`<day>.idx`,
//!   `index.rs`): what the day keeps while out of memory, so opening a long window
//!   reads no day whole.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use time::{Date, OffsetDateTime};

use crate::model::Interaction;
use crate::seal::{SealReader, SealWriter, Sealer};

mod index;
mod record;
pub use index::{DayIndex, IndexEntry};
pub use record::Record;
use record::{kept, Kept};

/// Bound into every day file's seal with its day.
const TAG: &str = "vccfs-catalog-v2";

/// Has an interaction's listing been checked against the API?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Listed from the API (at least once since the mount).
    Yes,
    /// Its saved day could not be re-listed: the saved listing is all there is.
    Failed,
}

/// The persisted days of one tenant's catalog.
#[derive(Debug, Clone)]
pub struct CatalogStore {
    dir: PathBuf,
    sealer: Sealer,
}

impl CatalogStore {
    /// The store in `dir` (created 0700 if missing), sealed with `sealer` (the tenant's
    /// catalog key). Plaintext day files of earlier versions are removed.
    pub fn open(dir: &Path, sealer: Sealer) -> std::io::Result<CatalogStore> {
        // Created 0700, or else private already (not a link, ours, not writable by
        // others): never a directory someone else controls.
        crate::safe_fs::create_private(dir).map_err(std::io::Error::other)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".json") {
                tracing::info!(file = ?name, "removed a plaintext saved day of an earlier version");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(CatalogStore {
            dir: dir.to_path_buf(),
            sealer,
        })
    }

    fn day_path(&self, day: Date) -> PathBuf {
        self.dir.join(format!("{day}.day"))
    }

    /// What a day's seal is bound to.
    fn aad(day: Date) -> Vec<u8> {
        format!("{TAG} {day}").into_bytes()
    }

    /// The persisted days with a part in `[from, to)`, oldest first: each day's
    /// interactions that started in the window, in start order.
    pub fn load_days(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Vec<(Date, Vec<Interaction>)> {
        self.saved_days(from, to)
            .into_iter()
            .filter_map(|day| Some((day, self.load_day_in(day, from, to)?)))
            .collect()
    }

    /// The days with a part in `[from, to)` that have a saved file, oldest first
    /// (nothing is read but the directory).
    pub fn saved_days(&self, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Date> {
        let mut out = Vec::new();
        let mut day = from.date();
        while day.midnight().assume_utc() < to {
            if self.day_path(day).exists() {
                out.push(day);
            }
            match day.next_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        out
    }

    /// `day`'s saved interactions that started in `[from, to)`, in start order; `None`
    /// if it has no saved file, or one that does not open (then removed).
    pub fn load_day_in(
        &self,
        day: Date,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Option<Vec<Interaction>> {
        self.load_day_with(
            day,
            (from, to),
            |i| i,
            |a, b| a.start.cmp(&b.start).then_with(|| a.guid.cmp(&b.guid)),
        )
    }

    /// `day`'s saved interactions that started in `[from, to)`, each made a `T` by
    /// `make` as it is read, sorted by `order`; `None` if it has no saved file, or one
    /// that does not open (then removed). Streamed from the sealed file: neither the
    /// day's body nor its parsed interactions are ever held whole (a day of 33k calls
    /// would otherwise cost tens of MiB of passing heap on every reload), and nothing
    /// is returned unless the whole file opened.
    pub fn load_day_with<T>(
        &self,
        day: Date,
        (from, to): (OffsetDateTime, OffsetDateTime),
        mut make: impl FnMut(Interaction) -> T,
        order: impl Fn(&T, &T) -> std::cmp::Ordering,
    ) -> Option<Vec<T>> {
        let file = self.open_day(day)?;
        let read = SealReader::new(&self.sealer, &Self::aad(day), BufReader::new(file))
            .ok()
            .and_then(|r| {
                let mut de = serde_json::Deserializer::from_reader(BufReader::new(r));
                let each = Each {
                    range: (from, to),
                    make: &mut make,
                    made: std::marker::PhantomData,
                };
                let items = serde::Deserializer::deserialize_seq(&mut de, each).ok()?;
                de.end().ok()?;
                Some(items)
            });
        let mut items = self.parsed(day, read)?;
        if !items.is_sorted_by(|a, b| order(a, b) != std::cmp::Ordering::Greater) {
            items.sort_by(order);
        }
        Some(items)
    }

    /// Tests: all of [`CatalogStore::load_days`] at once, and how many days it read.
    #[cfg(test)]
    pub fn load(&self, from: OffsetDateTime, to: OffsetDateTime) -> (Vec<Interaction>, usize) {
        let days = self.load_days(from, to);
        let n = days.len();
        (days.into_iter().flat_map(|(_, items)| items).collect(), n)
    }

    fn load_day(&self, day: Date) -> Option<Vec<Interaction>> {
        let raw = self.read_day(day)?;
        self.parsed(day, raw.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// The opened body of `day`'s file: `None` if there is none, `Some(None)` if it
    /// does not open (damaged, cut, another day or key).
    fn read_day(&self, day: Date) -> Option<Option<Vec<u8>>> {
        let file = self.open_day(day)?;
        let mut body = Vec::new();
        let opened = SealReader::new(&self.sealer, &Self::aad(day), BufReader::new(file))
            .and_then(|mut r| r.read_to_end(&mut body));
        Some(opened.ok().map(|_| body))
    }

    /// `day`'s file, open for reading (never through a link); `None` if there is none
    /// or it cannot be opened.
    fn open_day(&self, day: Date) -> Option<std::fs::File> {
        let path = self.day_path(day);
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a saved day");
                None
            }
        }
    }

    /// `decoded`, or (the file of `day` was damaged) nothing, and the file removed.
    fn parsed<T>(&self, day: Date, decoded: Option<T>) -> Option<T> {
        if decoded.is_none() {
            let path = self.day_path(day);
            tracing::warn!(path = %path.display(), "a saved day is damaged: ignored and removed");
            let _ = self.drop_index(day);
            let _ = std::fs::remove_file(&path);
        }
        decoded
    }

    /// Save the complete listing `items` of `[from, to)`, begun at `listed`: one file
    /// per day that has interactions; days of the window without any lose their file.
    /// A day inside `[from, to)` whole is recorded as listed whole at `listed` (in its
    /// index); one only partly inside is merged, and gets no index.
    pub fn save<T: Record>(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        items: &[T],
        listed: OffsetDateTime,
    ) -> std::io::Result<()> {
        let mut by_day: BTreeMap<Date, Vec<&dyn Record>> = BTreeMap::new();
        for i in items {
            by_day.entry(i.start().date()).or_default().push(i);
        }
        let mut day = from.date();
        while day.midnight().assume_utc() < to {
            // A day only partly inside the window keeps what the rest of it had.
            let whole = day.midnight().assume_utc() >= from
                && day.midnight().assume_utc() + time::Duration::DAY <= to;
            match by_day.get(&day) {
                Some(list) if whole => self.write_day(day, list, Some(listed))?,
                Some(list) => {
                    // What the day's file has outside the window, as it is written
                    // there (only each interaction's start is parsed: a re-listed
                    // tail of today costs no parse of the whole day).
                    let raw = self.read_day(day);
                    let saved: Vec<Kept<'_>> = match &raw {
                        None => Vec::new(),
                        Some(body) => self
                            .parsed(day, body.as_deref().and_then(kept))
                            .unwrap_or_default(),
                    };
                    let mut merged: Vec<&dyn Record> = saved
                        .iter()
                        .filter(|k| k.start < from || k.start >= to)
                        .map(|k| k as &dyn Record)
                        .collect();
                    merged.extend(list.iter().copied());
                    merged.sort_by_key(|a| a.start());
                    self.write_day(day, &merged, None)?;
                }
                None if whole => {
                    self.drop_index(day)?;
                    match std::fs::remove_file(self.day_path(day)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                None => {}
            }
            match day.next_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        Ok(())
    }

    /// Take interaction `guid` out of `day`'s file (it was erased), rewriting the day
    /// without it (or removing the file if it held nothing else). True if it was there.
    pub fn erase(&self, day: Date, guid: &str) -> std::io::Result<bool> {
        let Some(items) = self.load_day(day) else {
            return Ok(false);
        };
        let same = |i: &Interaction| i.guid.eq_ignore_ascii_case(guid);
        if !items.iter().any(same) {
            return Ok(false);
        }
        let kept: Vec<&dyn Record> = items
            .iter()
            .filter(|i| !same(i))
            .map(|i| i as &dyn Record)
            .collect();
        if kept.is_empty() {
            self.drop_index(day)?;
            std::fs::remove_file(self.day_path(day))?;
        } else {
            self.write_day(day, &kept, self.listed_whole(day))?;
        }
        Ok(true)
    }

    /// Write `items` as `day`'s file: the body (a JSON array, as `serde_json::to_vec`
    /// writes one) is sealed and streamed an interaction at a time.
    /// When `day`'s file was last written from a whole-day listing, as its index says.
    fn listed_whole(&self, day: Date) -> Option<OffsetDateTime> {
        self.day_index(day).and_then(|ix| ix.listed)
    }

    /// Write `day`'s file of `items` (and its index; the day last listed whole at
    /// `listed`).
    fn write_day(
        &self,
        day: Date,
        items: &[&dyn Record],
        listed: Option<OffsetDateTime>,
    ) -> std::io::Result<()> {
        let (tmp, f) = self.temp_file(day)?;
        let written = (|| {
            let out = BufWriter::with_capacity(1 << 16, f);
            let mut body = SealWriter::new(&self.sealer, &Self::aad(day), out)?;
            body.write_all(b"[")?;
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    body.write_all(b",")?;
                }
                i.write_json(&mut body)?;
            }
            body.write_all(b"]")?;
            body.finish()?.flush()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The old index goes first: an index is never older than its day file.
        self.drop_index(day)?;
        std::fs::rename(&tmp, self.day_path(day))?;
        if let Err(e) = self.write_index(day, items, listed) {
            tracing::warn!(%day, error = %e, "cannot write a saved day's index (it is read whole instead)");
            let _ = self.drop_index(day);
        }
        Ok(())
    }

    /// A new temporary file for `day`: a random name, created `O_EXCL|O_NOFOLLOW`, 0600
    /// (nothing at that path is ever followed or reused).
    fn temp_file(&self, day: Date) -> std::io::Result<(PathBuf, std::fs::File)> {
        loop {
            let tmp = self
                .dir
                .join(format!(".tmp-{day}-{:016x}", rand::random::<u64>()));
            match std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(f) => return Ok((tmp, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Reads a day's JSON array one interaction at a time, keeping those that started in
/// `range`, each as `make` makes it.
struct Each<'a, T, F> {
    range: (OffsetDateTime, OffsetDateTime),
    make: &'a mut F,
    made: std::marker::PhantomData<T>,
}

impl<'de, T, F: FnMut(Interaction) -> T> serde::de::Visitor<'de> for Each<'_, T, F> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a day's interactions")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let (from, to) = self.range;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(i) = seq.next_element::<Interaction>()? {
            if i.start >= from && i.start < to {
                out.push((self.make)(i));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use time::macros::datetime;

    fn sealer(n: u8) -> Sealer {
        let tenant = crate::version::TenantId::new("https://api.example", "client");
        crate::seal::RootKey::from_secret(&[n; 32], tenant).sealer(crate::seal::Purpose::Catalog)
    }

    fn interaction(guid: &str, start: OffsetDateTime) -> Interaction {
        serde_json::from_value(serde_json::json!({
            "guid": guid,
            "start": crate::util::format_rfc3339(start),
            "someFieldWeDoNotKnow": {"kept": true},
            "content": [{"contentKey": "transcript", "type": "TRANSCRIPT", "contentLength": 10}]
        }))
        .expect("interaction")
    }

    #[test]
    fn days_round_trip_and_damage_is_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CatalogStore::open(&dir.path().join("catalog"), sealer(1)).expect("open");
        let from = datetime!(2026-11-01 00:00 UTC);
        let to = datetime!(2026-11-04 00:00 UTC);
        let items = vec![
            interaction(
                "10000000-0000-4000-8000-000000000001",
                datetime!(2026-11-01 09:00 UTC),
            ),
            interaction(
                "10000000-0000-4000-8000-000000000002",
                datetime!(2026-11-03 10:00 UTC),
            ),
            interaction(
                "10000000-0000-4000-8000-000000000003",
                datetime!(2026-11-03 11:00 UTC),
            ),
        ];
        store.save(from, to, &items, to).expect("save");
        let (back, days) = store.load(from, to);
        assert_eq!(days, 2);
        assert_eq!(back, items, "unknown fields and order kept");
        // Streamed a record at a time, the body is what one `to_vec` writes; the file
        // shows none of it.
        let day = store.dir.join("2026-11-03.day");
        let want = serde_json::to_vec(&items[1..]).expect("json");
        let body = store
            .read_day(datetime!(2026-11-03 00:00 UTC).date())
            .flatten()
            .expect("opens");
        assert_eq!(body, want);
        let raw = std::fs::read(&day).expect("day file");
        for secret in [
            &b"10000000-0000-4000-8000-000000000002"[..],
            b"someFieldWeDoNotKnow",
            b"TRANSCRIPT",
        ] {
            assert!(
                !raw.windows(secret.len()).any(|w| w == secret),
                "plaintext in the file"
            );
        }

        let mode = std::fs::metadata(&day)
            .expect("day file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&store.dir)
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);

        // One byte changed: the day is ignored (and removed), the other day still loads.
        let mut raw = std::fs::read(&day).expect("read");
        let at = raw.len() - 5;
        raw[at] ^= 1;
        std::fs::write(&day, &raw).expect("write");
        let (back, days) = store.load(from, to);
        assert_eq!((days, back.len()), (1, 1));
        assert!(!day.exists(), "a damaged day is removed");

        // A complete listing without that day's interactions removes its file.
        store.save(from, to, &items[..1], to).expect("save");
        store.save(from, to, &items, to).expect("save again");
        store.save(from, to, &items[..1], to).expect("save less");
        assert_eq!(store.load(from, to).0, items[..1]);
    }

    #[test]
    fn a_day_partly_outside_the_window_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CatalogStore::open(dir.path(), sealer(1)).expect("open");
        let early = interaction(
            "10000000-0000-4000-8000-000000000001",
            datetime!(2026-11-01 06:00 UTC),
        );
        let late = interaction(
            "10000000-0000-4000-8000-000000000002",
            datetime!(2026-11-01 18:00 UTC),
        );
        let day = (
            datetime!(2026-11-01 00:00 UTC),
            datetime!(2026-11-02 00:00 UTC),
        );
        let listed = datetime!(2026-11-02 00:05 UTC);
        store
            .save(day.0, day.1, &[early.clone(), late.clone()], listed)
            .expect("whole day");
        let listed_whole = |s: &CatalogStore| s.day_index(day.0.date()).and_then(|ix| ix.listed);
        assert_eq!(listed_whole(&store), Some(listed));
        // An erasure keeps the time of the last whole listing.
        let other = interaction(
            "10000000-0000-4000-8000-000000000003",
            datetime!(2026-11-01 20:00 UTC),
        );
        store
            .save(
                day.0,
                day.1,
                &[early.clone(), late.clone(), other.clone()],
                listed,
            )
            .expect("whole day");
        assert!(store.erase(day.0.date(), &other.guid).expect("erase"));
        assert_eq!(listed_whole(&store), Some(listed));
        // A window from noon: the morning's interaction is kept. The merged day has no
        // index (what is kept of the old file is not parsed), so no listing time: it
        // is read whole, and listed again, after a remount.
        let noon = datetime!(2026-11-01 12:00 UTC);
        store
            .save(noon, day.1, std::slice::from_ref(&late), day.1)
            .expect("afternoon");
        assert_eq!(store.load(day.0, day.1).0, [early, late]);
        assert_eq!(listed_whole(&store), None);
    }

    #[test]
    fn a_day_of_another_key_or_day_or_an_old_plaintext_file_is_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = dir.path().join("catalog");
        let store = CatalogStore::open(&cat, sealer(1)).expect("open");
        let (from, to) = (
            datetime!(2026-11-01 00:00 UTC),
            datetime!(2026-11-03 00:00 UTC),
        );
        let one = interaction(
            "10000000-0000-4000-8000-000000000001",
            datetime!(2026-11-01 09:00 UTC),
        );
        store
            .save(from, to, std::slice::from_ref(&one), to)
            .expect("save");
        // Moved to another day: does not open there.
        std::fs::copy(cat.join("2026-11-01.day"), cat.join("2026-11-02.day")).expect("copy");
        assert_eq!(store.load(from, to), (vec![one.clone()], 1));
        assert!(
            !cat.join("2026-11-02.day").exists(),
            "the moved file is removed"
        );
        // Another key: nothing opens, and the file goes.
        let other = CatalogStore::open(&cat, sealer(2)).expect("open");
        assert_eq!(other.load(from, to), (vec![], 0));
        assert!(!cat.join("2026-11-01.day").exists());
        // A plaintext file of an earlier version is removed at open.
        std::fs::write(cat.join("2026-11-01.json"), "vccfs-catalog-v1 00\n[]").expect("write");
        let _ = CatalogStore::open(&cat, sealer(1)).expect("open");
        assert!(!cat.join("2026-11-01.json").exists());
    }
}
