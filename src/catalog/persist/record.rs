//! What a day file holds, one interaction at a time: anything that can write itself as
//! the API returned it ([`Record`]): an interaction as listed, a compact entry (which
//! gives its interaction back unchanged) or an interaction kept as a file spells it.

use std::io::Write;

use time::OffsetDateTime;

use super::IndexEntry;
use crate::model::Interaction;

/// One interaction of a day file, written as the API returned it.
pub trait Record {
    fn start(&self) -> OffsetDateTime;
    /// Write its JSON (compact, as `serde_json::to_writer` does).
    fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()>;
    /// What it adds to its day's index (`None`: the day gets no index).
    fn index(&self) -> Option<IndexEntry> {
        None
    }
}

impl Record for Interaction {
    fn start(&self) -> OffsetDateTime {
        self.start
    }
    fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(out, self).map_err(std::io::Error::other)
    }
    fn index(&self) -> Option<IndexEntry> {
        // As its compact entry will count it (`Catalog::entry`, `listing::totals`):
        // the first file of each usable key.
        let (mut bytes, mut files) = (0, 2);
        for (item, shown) in self.content.iter().zip(self.shown()) {
            if shown {
                bytes += item.content_length.unwrap_or(0);
                files += 1;
            }
        }
        Some(IndexEntry {
            hash: crate::catalog::ino::interaction(&self.guid),
            totals: (bytes, files),
        })
    }
}

/// A compact entry gives the interaction back as the API returned it.
impl Record for crate::catalog::InteractionEntry {
    fn start(&self) -> OffsetDateTime {
        self.start
    }
    fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer(out, &self.interaction()).map_err(std::io::Error::other)
    }
    fn index(&self) -> Option<IndexEntry> {
        let (bytes, files) = self
            .metas()
            .fold((0, 2), |(b, f), m| (b + m.size().unwrap_or(0), f + 1));
        Some(IndexEntry {
            hash: self.ino(),
            totals: (bytes, files),
        })
    }
}

impl<T: Record + ?Sized> Record for std::sync::Arc<T> {
    fn start(&self) -> OffsetDateTime {
        (**self).start()
    }
    fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        (**self).write_json(out)
    }
    fn index(&self) -> Option<IndexEntry> {
        (**self).index()
    }
}

/// An interaction of a day file, kept as the file spells it.
pub(super) struct Kept<'a> {
    pub start: OffsetDateTime,
    json: &'a serde_json::value::RawValue,
}

impl Record for Kept<'_> {
    fn start(&self) -> OffsetDateTime {
        self.start
    }
    fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(self.json.get().as_bytes())
    }
}

/// The interactions of a day file's `body`, each with only its start parsed.
pub(super) fn kept(body: &[u8]) -> Option<Vec<Kept<'_>>> {
    #[derive(serde::Deserialize)]
    struct Start {
        #[serde(with = "time::serde::rfc3339")]
        start: OffsetDateTime,
    }
    let all: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).ok()?;
    all.into_iter()
        .map(|json| {
            let s: Start = serde_json::from_str(json.get()).ok()?;
            Some(Kept {
                start: s.start,
                json,
            })
        })
        .collect()
}
