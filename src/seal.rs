//! Sealing what vccfs keeps: every block on disk or in Redis and every saved catalog
//! day is encrypted and authenticated (AES-256-GCM, `ring`) before it leaves memory.
//!
//! Keys. One 32-byte root secret per tenant: the tenant's client secret, or the 32
//! bytes of `--cache-key-file` for sites that rotate client secrets. HKDF-SHA256
//! (salt: a version label and the tenant id) derives one key per [`Purpose`] — disk
//! blocks, catalog days, Redis values — so a key is never used for two kinds of data,
//! and a [`KeyId`] that names the key without revealing it (a stored `KeyId` that
//! differs from the running key's says "sealed with another key": crypto-erasure).
//!
//! Formats:
//! - **One message** ([`Sealer::seal`]): `nonce (12) ‖ ciphertext ‖ tag (16)`, a fresh
//!   random nonce per message ([`OVERHEAD`] bytes more than the plaintext). Random
//!   96-bit nonces stay safe far beyond the writes a cache makes under one key.
//! - **A stream** ([`SealWriter`], [`SealReader`]): for files too big to hold at once
//!   (a catalog day). `magic (8) ‖ nonce prefix (7)`, then chunks of [`CHUNK`]
//!   plaintext bytes each sealed with nonce `prefix ‖ counter (u32 BE) ‖ last (u8)`
//!   (the STREAM construction): chunks cannot be reordered, dropped, or the stream
//!   cut at a chunk boundary without the open failing. The last chunk is always
//!   shorter than a full one (empty if need be), so the reader knows it is the last.
//!
//! Invariants:
//! - **Identity is bound.** Every seal takes associated data naming exactly what the
//!   message is (tenant, content version, block index, …); the caller builds it from
//!   what it asks for, never from what it read, so a message moved, swapped, of
//!   another tenant or another key fails to open: a miss, never data.
//! - **Nothing secret lingers.** Root secrets and derived key bytes live in
//!   [`Zeroizing`] buffers and are wiped when dropped; `Debug` never prints them.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::version::TenantId;

mod keyfile;
#[cfg(test)]
mod tests;

pub use keyfile::KeyFileError;

/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a one-message seal adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Plaintext bytes per chunk of a stream.
pub const CHUNK: usize = 64 * 1024;
const STREAM_MAGIC: &[u8; 8] = b"VCCSTRM1";
const PREFIX_LEN: usize = 7;
/// Bytes of a stream's header.
pub const STREAM_HEADER: usize = STREAM_MAGIC.len() + PREFIX_LEN;

/// What a key seals; each has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Blocks and whole files of the disk tier.
    Disk,
    /// Saved catalog days.
    Catalog,
    /// Values in the fleet's Redis.
    Redis,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Disk => b"vccfs disk key v1",
            Purpose::Catalog => b"vccfs catalog key v1",
            Purpose::Redis => b"vccfs redis key v1",
        }
    }
}

/// A message that did not open: tampered, truncated, moved, or sealed with another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data does not open (damaged, moved, or sealed with another key)")]
pub struct Unsealed;

/// The tenant's root secret (see the module essay).
#[derive(Clone)]
pub struct RootKey {
    prk: hkdf::Prk,
    id: KeyId,
    names: ring::hmac::Key,
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKey").field("id", &self.id).finish()
    }
}

/// Names a root key (and tenant) without revealing it: HKDF output under its own label.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 16]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// `len` bytes of HKDF output.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) {
    let info = [label];
    // Expanding at most 255 × 32 bytes cannot fail; every caller asks for ≤ 32.
    if let Ok(okm) = prk.expand(&info, Len(out.len())) {
        let _ = okm.fill(out);
    }
}

impl RootKey {
    /// The root key of `tenant` from a secret of any length (the client secret).
    pub fn from_secret(secret: &[u8], tenant: TenantId) -> RootKey {
        let mut salt = b"vccfs-seal-v1".to_vec();
        salt.extend_from_slice(tenant.as_bytes());
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(secret);
        let mut id = [0u8; 16];
        expand(&prk, b"vccfs key id v1", &mut id);
        let mut names = Zeroizing::new([0u8; 32]);
        expand(&prk, b"vccfs name key v1", &mut names[..]);
        RootKey {
            prk,
            id: KeyId(id),
            names: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &names[..]),
        }
    }

    /// The root key of `tenant` from `--cache-key-file` (see [`keyfile`]).
    pub fn from_key_file(
        path: &std::path::Path,
        tenant: TenantId,
    ) -> Result<RootKey, KeyFileError> {
        let secret = keyfile::read(path)?;
        Ok(RootKey::from_secret(&secret[..], tenant))
    }

    /// Names this key (stored beside what it sealed, to tell a key change).
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// A keyed one-way name for `what` (a guid): 32 lowercase hex digits, the same on
    /// every host with this key, telling nothing of `what` to anyone without it. Used
    /// where a name must be findable again (a guid's directory, its Redis keys).
    pub fn name(&self, what: &[u8]) -> String {
        let tag = ring::hmac::sign(&self.names, what);
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The sealer for `purpose`.
    pub fn sealer(&self, purpose: Purpose) -> Sealer {
        let mut bytes = Zeroizing::new([0u8; 32]);
        expand(&self.prk, purpose.label(), &mut bytes[..]);
        let key = match UnboundKey::new(&AES_256_GCM, &bytes[..]) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("AES-256-GCM takes a 32-byte key"),
        };
        Sealer {
            key: Arc::new(key),
            rng: SystemRandom::new(),
        }
    }
}

/// Seals and opens messages under one key (cheap to clone).
#[derive(Clone)]
pub struct Sealer {
    key: Arc<LessSafeKey>,
    rng: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<secret>)")
    }
}

impl Sealer {
    fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        if self.rng.fill(&mut n).is_err() {
            // The OS random source never fails on Linux once booted; a fixed nonce
            // would be catastrophic, so refuse to go on.
            panic!("the system random source failed");
        }
        n
    }

    /// `plain` sealed with `aad`: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        self.seal_append(aad, plain, &mut out);
        out
    }

    /// [`Sealer::seal`], appended to `out`.
    pub fn seal_append(&self, aad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        let nonce = self.nonce();
        out.extend_from_slice(&nonce);
        let at = out.len();
        out.extend_from_slice(plain);
        let tag = self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[at..],
        );
        match tag {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            Err(_) => unreachable!("sealing fails only past 2^36 bytes per message"),
        }
    }

    /// The plaintext of `sealed` (opened in place: `sealed` is overwritten).
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], Unsealed> {
        if sealed.len() < OVERHEAD {
            return Err(Unsealed);
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealed)?;
        self.key
            .open_in_place(nonce, Aad::from(aad), rest)
            .map(|p| &mut *p)
            .map_err(|_| Unsealed)
    }

    /// The plaintext of `sealed`, as a new buffer.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealed> {
        let mut buf = sealed.to_vec();
        let n = self.open_in_place(aad, &mut buf)?.len();
        buf.truncate(NONCE_LEN + n);
        buf.drain(..NONCE_LEN);
        Ok(buf)
    }

    fn chunk_nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[..PREFIX_LEN].copy_from_slice(prefix);
        n[PREFIX_LEN..PREFIX_LEN + 4].copy_from_slice(&counter.to_be_bytes());
        n[NONCE_LEN - 1] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }
}

/// Writes a sealed stream (see the module essay); call [`SealWriter::finish`] at the
/// end, or the stream does not open.
pub struct SealWriter<W: Write> {
    out: W,
    sealer: Sealer,
    aad: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    buf: Vec<u8>,
}

impl<W: Write> fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealWriter")
            .field("chunks", &self.counter)
            .finish()
    }
}

impl<W: Write> SealWriter<W> {
    /// A stream into `out`, bound to `aad`; writes the header at once.
    pub fn new(sealer: &Sealer, aad: &[u8], mut out: W) -> io::Result<SealWriter<W>> {
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&sealer.nonce()[..PREFIX_LEN]);
        out.write_all(STREAM_MAGIC)?;
        out.write_all(&prefix)?;
        let mut full_aad = aad.to_vec();
        full_aad.extend_from_slice(STREAM_MAGIC);
        full_aad.extend_from_slice(&prefix);
        Ok(SealWriter {
            out,
            sealer: sealer.clone(),
            aad: full_aad,
            prefix,
            counter: 0,
            buf: Vec::with_capacity(CHUNK + TAG_LEN),
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let nonce = Sealer::chunk_nonce(&self.prefix, self.counter, last);
        let tag = self
            .sealer
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&self.aad[..]), &mut self.buf)
            .map_err(|_| io::Error::other("sealing a chunk failed"))?;
        self.buf.extend_from_slice(tag.as_ref());
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("sealed stream too long"))?;
        Ok(())
    }

    /// Seal the last chunk and return the inner writer (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.emit(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a sealed stream; any damage, reordering or truncation is an
/// [`io::ErrorKind::InvalidData`] error, never plaintext.
pub struct SealReader<R: Read> {
    inner: R,
    sealer: Sealer,
    aad: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    counter: u32,
    /// Opened plaintext of the current chunk, and how much of it was read.
    plain: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> fmt::Debug for SealReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealReader")
            .field("chunks", &self.counter)
            .finish()
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sealed stream: {what}"))
}

/// Read as much of `buf` as `r` holds; the count read (short only at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> SealReader<R> {
    /// Open a stream bound to `aad`: reads and checks the header.
    pub fn new(sealer: &Sealer, aad: &[u8], mut inner: R) -> io::Result<SealReader<R>> {
        let mut head = [0u8; STREAM_HEADER];
        if read_full(&mut inner, &mut head)? != STREAM_HEADER || &head[..8] != STREAM_MAGIC {
            return Err(invalid("not a sealed stream"));
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&head[8..]);
        let mut full_aad = aad.to_vec();
        full_aad.extend_from_slice(&head);
        Ok(SealReader {
            inner,
            sealer: sealer.clone(),
            aad: full_aad,
            prefix,
            counter: 0,
            plain: Vec::with_capacity(CHUNK + TAG_LEN + 1),
            at: 0,
            done: false,
        })
    }

    /// Open the next chunk into `plain`.
    fn next_chunk(&mut self) -> io::Result<()> {
        // One byte more than a full chunk tells a full chunk from the last one.
        self.plain.resize(CHUNK + TAG_LEN + 1, 0);
        let n = read_full(&mut self.inner, &mut self.plain[..CHUNK + TAG_LEN])?;
        let last = n < CHUNK + TAG_LEN;
        if last {
            let mut probe = [0u8; 1];
            if read_full(&mut self.inner, &mut probe)? != 0 {
                return Err(invalid("data after the last chunk"));
            }
        }
        if n < TAG_LEN {
            return Err(invalid("truncated"));
        }
        let nonce = Sealer::chunk_nonce(&self.prefix, self.counter, last);
        let len = self
            .sealer
            .key
            .open_in_place(nonce, Aad::from(&self.aad[..]), &mut self.plain[..n])
            .map_err(|_| invalid("does not open (damaged, cut, or another key)"))?
            .len();
        self.plain.truncate(len);
        self.at = 0;
        self.done = last;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| invalid("too long"))?;
        Ok(())
    }
}

impl<R: Read> Read for SealReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.plain.len() {
                let n = (self.plain.len() - self.at).min(buf.len());
                buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
    }
}
