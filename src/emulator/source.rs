//! Where the bytes of one content item come from: a small in-memory buffer, a generated
//! document (JSON, attachments: made from a seed when first needed, then held by that
//! copy of the source only), a procedural media [`Body`], or a file on disk read with
//! positioned reads. None of them is ever copied whole.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::media::Body;

/// Rebuilds a generated body (JSON, text attachment) from a seed: a new seed gives a new
/// version of the content.
pub(crate) type Generator = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// A document generated from a seed on first use (its length needs the bytes), then
/// kept as long as this value lives: one request, one listing.
pub(crate) struct Generated {
    generator: Generator,
    seed: u64,
    bytes: OnceLock<Bytes>,
}

impl Generated {
    pub fn new(generator: Generator, seed: u64) -> Self {
        Self {
            generator,
            seed,
            bytes: OnceLock::new(),
        }
    }

    /// The document (generated now if it was not yet).
    pub fn bytes(&self) -> &Bytes {
        self.bytes
            .get_or_init(|| Bytes::from((self.generator)(self.seed)))
    }
}

/// The bytes of one content item (one version of it).
#[derive(Clone)]
pub(crate) enum ContentSource {
    /// Small in-memory content.
    Memory(Bytes),
    /// A generated document (JSON, attachments).
    Generated(Arc<Generated>),
    /// Procedural media, computed on demand.
    Procedural(Arc<dyn Body>),
    /// A file of a `--data-dir` tenant; `xor` (0 = none) scrambles the bytes of a
    /// mutated version so that the content changes without touching the file.
    File { file: Arc<FileSource>, xor: u8 },
}

/// A file whose size was taken when the tenant was loaded.
#[derive(Debug)]
pub(crate) struct FileSource {
    pub path: PathBuf,
    pub len: u64,
}

impl fmt::Debug for ContentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(b) => write!(f, "Memory({} bytes)", b.len()),
            Self::Generated(g) => write!(f, "Generated(seed {})", g.seed),
            Self::Procedural(b) => write!(f, "Procedural({b:?})"),
            Self::File { file, xor } => write!(f, "File({:?}, xor {xor})", file.path),
        }
    }
}

impl ContentSource {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Memory(b) => b.len() as u64,
            Self::Generated(g) => g.bytes().len() as u64,
            Self::Procedural(b) => b.len(),
            Self::File { file, .. } => file.len,
        }
    }

    /// Opens the source for reading (opens the file, if any).
    pub fn open(&self) -> io::Result<SourceReader> {
        Ok(match self {
            Self::File { file, xor } => SourceReader::File {
                file: Arc::new(File::open(&file.path)?),
                len: file.len,
                xor: *xor,
            },
            Self::Generated(g) => SourceReader::Inline(Self::Memory(g.bytes().clone())),
            other => SourceReader::Inline(other.clone()),
        })
    }
}

/// An open [`ContentSource`], ready for positioned reads.
pub(crate) enum SourceReader {
    Inline(ContentSource),
    File { file: Arc<File>, len: u64, xor: u8 },
}

impl SourceReader {
    /// Reads `len` bytes at `offset`; the range must lie within the source. Blocking
    /// (file reads): call from a blocking context, or use [`Self::read`].
    pub fn read_blocking(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        match self {
            Self::Inline(ContentSource::Memory(b)) => {
                let start = usize::try_from(offset).map_err(|_| out_of_range())?;
                let end = start.checked_add(len).ok_or_else(out_of_range)?;
                b.get(start..end)
                    .map(|_| b.slice(start..end))
                    .ok_or_else(out_of_range)
            }
            Self::Inline(ContentSource::Procedural(body)) => {
                if offset.saturating_add(len as u64) > body.len() {
                    return Err(out_of_range());
                }
                let mut buf = vec![0u8; len];
                body.read_at(offset, &mut buf);
                Ok(Bytes::from(buf))
            }
            Self::Inline(ContentSource::File { .. } | ContentSource::Generated(_)) => {
                Err(io::Error::other("source not opened"))
            }
            Self::File {
                file,
                len: size,
                xor,
            } => {
                if offset.saturating_add(len as u64) > *size {
                    return Err(out_of_range());
                }
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)?;
                if *xor != 0 {
                    buf.iter_mut().for_each(|b| *b ^= *xor);
                }
                Ok(Bytes::from(buf))
            }
        }
    }

    /// Reads `len` bytes at `offset` without blocking the async runtime.
    pub async fn read(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        match self {
            Self::File {
                file,
                len: size,
                xor,
            } => {
                let reader = Self::File {
                    file: file.clone(),
                    len: *size,
                    xor: *xor,
                };
                tokio::task::spawn_blocking(move || reader.read_blocking(offset, len))
                    .await
                    .map_err(io::Error::other)?
            }
            inline => inline.read_blocking(offset, len),
        }
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the content",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_and_bounds() {
        let src = ContentSource::Memory(Bytes::from_static(b"hello world"));
        let r = src.open().expect("open");
        assert_eq!(&r.read_blocking(6, 5).expect("read")[..], b"world");
        assert!(r.read_blocking(7, 5).is_err());
    }

    #[test]
    fn generated_once_per_source() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let generator: Generator = Arc::new(move |seed| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("doc {seed}").into_bytes()
        });
        let src = ContentSource::Generated(Arc::new(Generated::new(generator, 7)));
        assert_eq!(src.len(), 5);
        let r = src.open().expect("open");
        assert_eq!(&r.read_blocking(4, 1).expect("read")[..], b"7");
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn file_reads_with_xor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"abcdef").expect("write");
        let file = Arc::new(FileSource { path, len: 6 });
        let plain = ContentSource::File {
            file: file.clone(),
            xor: 0,
        };
        let r = plain.open().expect("open");
        assert_eq!(&r.read_blocking(2, 3).expect("read")[..], b"cde");
        let scrambled = ContentSource::File { file, xor: 0xff };
        let r = scrambled.open().expect("open");
        assert_eq!(r.read_blocking(0, 1).expect("read")[0], b'a' ^ 0xff);
    }
}
