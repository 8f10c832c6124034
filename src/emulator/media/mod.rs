//! Procedural media bodies for the synthetic tenant: computed from a seed on demand,
//! never materialised whole.
//!
//! Every body is a pure function of `(seed, offset)`: [`Body::read_at`] does O(1) setup
//! plus O(`buf.len()`) work, and any split of a range yields the same bytes.
//!
//! * [`WavBody`] — a canonical 44-byte RIFF/WAVE header (PCM, mono, 8 kHz, 16-bit LE)
//!   followed by "phone call" audio: two speakers taking turns of ~6 s, each turn a run of
//!   0.5 s "syllables" (a glided fundamental plus two harmonics under an attack/release
//!   envelope), pauses between turns, and low background hiss everywhere.
//! * [`WebmBody`] — a WebM (Matroska) file with one 320x240 VP8 video track at 1 frame/s.
//!   Layout (all multi-byte EBML sizes are 8 bytes wide so every offset is arithmetic):
//!
//!   ```text
//!   [0, 36)            EBML header (DocType "webm")
//!   [36, 48)           Segment ID + size (= len - 48)
//!   [48, 105)          Info: TimecodeScale 1 ms, Duration = clusters * 1000.0, Muxing/WritingApp
//!   [105, 157)         Tracks: one TrackEntry (V_VP8, 320x240, DefaultDuration 1 s, seeded UID)
//!   [157, len)         clusters 0..n, cluster i at 157 + i * P, each:
//!                        Cluster ID + size          12 bytes
//!                        Timecode (i * 1000 ms)      6 bytes
//!                        SimpleBlock (VP8 keyframe) 193 bytes
//!                        Void ID + size              9 bytes
//!                        Void payload (seeded pseudo-random filler)
//!   ```
//!
//!   Every cluster is `P` bytes except the last, which absorbs the remainder (it holds
//!   `P/2..3P/2` bytes, or everything after the header when that is less than `P/2`).
//!   `P = clamp(64 * isqrt(len), 4 KiB, 1 MiB)`, so a 70 KiB file has 4 clusters (4 s),
//!   a 3 MiB file 28 and a 256 MiB file 256. There are no Cues (demuxers seek by scanning).
//!   The smallest valid file is [`WEBM_MIN_LEN`] (377) bytes; smaller targets are rounded
//!   up to it.

/// Content whose bytes are computed on demand.
pub trait Body: Send + Sync + std::fmt::Debug {
    /// Total size in bytes.
    fn len(&self) -> u64;
    /// Fill `buf` with the bytes at `offset..offset+buf.len()`; the caller guarantees the
    /// range lies within `0..len()`.
    fn read_at(&self, offset: u64, buf: &mut [u8]);
    /// True when the body is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers: counter-based PRNG and byte copying.
// ---------------------------------------------------------------------------------------

/// The splitmix64 increment (2^64 / golden ratio).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function: a fast, well-mixing bijection on `u64`.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream key derived from a seed and a domain tag (so different uses are independent).
#[inline]
fn key(seed: u64, tag: u64) -> u64 {
    mix64(seed ^ mix64(tag.wrapping_mul(GOLDEN)))
}

/// Word `n` of the splitmix64 stream keyed by `key`: random access in O(1).
#[inline]
fn stream_word(key: u64, n: u64) -> u64 {
    mix64(key.wrapping_add(n.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// Fills `out` with bytes `offset..` of the pseudo-random byte stream keyed by `key`
/// (byte `o` is byte `o % 8` of little-endian word `o / 8`), so any split is consistent.
fn fill_stream(key: u64, offset: u64, out: &mut [u8]) {
    let lane = (offset % 8) as usize;
    let mut word = offset / 8;
    let head = if lane == 0 {
        0
    } else {
        (8 - lane).min(out.len())
    };
    let (first, rest) = out.split_at_mut(head);
    if head > 0 {
        let bytes = stream_word(key, word).to_le_bytes();
        first.copy_from_slice(&bytes[lane..lane + head]);
        word += 1;
    }
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&stream_word(key, word).to_le_bytes());
        word += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let bytes = stream_word(key, word).to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&bytes[..n]);
    }
}

/// Copies `src[start..]` into the front of `out` (as much as fits); returns the count.
fn copy_from(src: &[u8], start: u64, out: &mut [u8]) -> usize {
    let Ok(start) = usize::try_from(start) else {
        return 0;
    };
    let Some(src) = src.get(start..) else {
        return 0;
    };
    let n = src.len().min(out.len());
    out[..n].copy_from_slice(&src[..n]);
    n
}

/// Drops the first `n` bytes of `*out` (which must hold at least `n`).
fn advance(out: &mut &mut [u8], n: usize) {
    let taken = std::mem::take(out);
    *out = &mut taken[n..];
}

/// Sequential draws from one hash, for deriving several parameters.
struct Draws(u64, u64);

impl Draws {
    fn new(h: u64) -> Self {
        Self(h, 0)
    }
    /// The next 64 random bits.
    fn bits(&mut self) -> u64 {
        self.1 += 1;
        stream_word(self.0, self.1)
    }
    /// A uniform value in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.bits() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// A uniform value in `[lo, hi)`.
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    /// A uniform integer in `[0, n)` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }
}

const TAG_TURN: u64 = 1;
const TAG_SLOT: u64 = 2;
const TAG_NOISE: u64 = 3;
const TAG_SPEAKER: u64 = 4;
const TAG_FILLER: u64 = 5;
const TAG_TRACK: u64 = 6;

mod wav;
mod webm;

pub use wav::WavBody;
pub use webm::{WebmBody, WEBM_MIN_LEN};

#[cfg(test)]
mod tests;
