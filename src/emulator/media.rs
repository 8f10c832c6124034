//! Procedural media bodies for the synthetic tenant: computed from a seed on demand,
//! never materialised whole. (Stub: being written.)

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

/// A PCM WAV recording (RIFF, 16-bit mono, 8 kHz) whose samples are computed from a seed.
#[derive(Debug, Clone)]
pub struct WavBody {
    seed: u64,
    duration_secs: u32,
}

impl WavBody {
    /// A recording of `duration_secs` seconds; the same seed always gives the same bytes.
    pub fn new(seed: u64, duration_secs: u32) -> Self {
        Self {
            seed,
            duration_secs,
        }
    }
}

impl Body for WavBody {
    fn len(&self) -> u64 {
        44 + 16_000 * u64::from(self.duration_secs)
    }
    fn read_at(&self, _offset: u64, buf: &mut [u8]) {
        let _ = self.seed;
        buf.fill(0);
    }
}

/// A WebM (Matroska, VP8) video whose size is exactly `target_len` bytes (or the minimal
/// valid size when that is larger); its bulk is computed from a seed on demand.
#[derive(Debug, Clone)]
pub struct WebmBody {
    seed: u64,
    target_len: u64,
}

impl WebmBody {
    /// A video of about `target_len` bytes; the same seed always gives the same bytes.
    pub fn new(seed: u64, target_len: u64) -> Self {
        Self { seed, target_len }
    }
}

impl Body for WebmBody {
    fn len(&self) -> u64 {
        self.target_len
    }
    fn read_at(&self, _offset: u64, buf: &mut [u8]) {
        let _ = self.seed;
        buf.fill(0);
    }
}
