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

// ---------------------------------------------------------------------------------------
// WAV
// ---------------------------------------------------------------------------------------

/// Size of the canonical RIFF/WAVE header.
const WAV_HEADER_LEN: u64 = 44;
/// Samples per second.
const SAMPLE_RATE: u32 = 8_000;
/// Data bytes per second (16-bit mono).
const WAV_BYTES_PER_SEC: u64 = 2 * SAMPLE_RATE as u64;
/// Samples per "syllable" slot (0.5 s).
const SEGMENT: u64 = 4_000;
/// Slots per speaker turn (6 s); the tail of each turn is a pause.
const TURN: u64 = 12;
/// Peak amplitude of the background hiss, in LSB.
const NOISE_AMP: f32 = 120.0;
/// Envelope attack and release, in samples.
const ATTACK: f32 = 240.0;
const RELEASE: f32 = 800.0;

const TAG_TURN: u64 = 1;
const TAG_SLOT: u64 = 2;
const TAG_NOISE: u64 = 3;
const TAG_SPEAKER: u64 = 4;
const TAG_FILLER: u64 = 5;
const TAG_TRACK: u64 = 6;

/// log2 of the sine table size.
const SINE_BITS: u32 = 10;
const SINE_LEN: usize = 1 << SINE_BITS;
/// One period of sine, computed at compile time (so identical on every platform).
static SINE: [f32; SINE_LEN] = sine_table();

/// Builds the sine table with a Taylor series (no libm, fully deterministic).
const fn sine_table() -> [f32; SINE_LEN] {
    use std::f64::consts::PI;
    let mut table = [0.0f32; SINE_LEN];
    let mut i = 0;
    while i < SINE_LEN {
        let mut x = i as f64 * (2.0 * PI / SINE_LEN as f64);
        if x >= PI {
            x -= 2.0 * PI;
        }
        if x > PI / 2.0 {
            x = PI - x;
        } else if x < -PI / 2.0 {
            x = -PI - x;
        }
        let x2 = x * x;
        let s = x
            * (1.0
                - x2 / 6.0
                    * (1.0
                        - x2 / 20.0
                            * (1.0
                                - x2 / 42.0
                                    * (1.0
                                        - x2 / 72.0 * (1.0 - x2 / 110.0 * (1.0 - x2 / 156.0))))));
        table[i] = s as f32;
        i += 1;
    }
    table
}

/// Sine of a phase given in 1/2^32 turns.
#[inline]
fn sine(phase: u32) -> f32 {
    SINE[(phase >> (32 - SINE_BITS)) as usize]
}

/// The 44-byte canonical header for `data_len` bytes of PCM data (saturated to fit u32).
fn wav_header(data_len: u64) -> [u8; WAV_HEADER_LEN as usize] {
    let data = u32::try_from(data_len.min(u64::from(u32::MAX - 36))).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; WAV_HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data + 36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes()); // byte rate
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// One voiced syllable inside a 0.5 s slot.
#[derive(Debug, Clone, Copy)]
struct Syllable {
    /// First sample of the syllable, relative to the slot start.
    onset: u64,
    /// Length in samples.
    len: u64,
    /// Initial phase increment of the fundamental (1/2^32 turns per sample).
    inc0: i64,
    /// Change of the increment per sample (pitch glide).
    glide: i64,
    /// Peak amplitude of the fundamental, in LSB.
    amp: f32,
    /// Relative weights of the 2nd and 3rd harmonics.
    w2: f32,
    w3: f32,
}

impl Syllable {
    /// The voiced signal at sample `k` of the syllable (`k < len`).
    #[inline]
    fn at(&self, k: u64) -> f32 {
        let k = k as i64;
        let phase = self
            .inc0
            .wrapping_mul(k)
            .wrapping_add(self.glide.wrapping_mul(k * (k - 1) / 2)) as u32;
        let tone = sine(phase)
            + self.w2 * sine(phase.wrapping_mul(2))
            + self.w3 * sine(phase.wrapping_mul(3));
        let kf = k as f32;
        let env = (kf / ATTACK).min((self.len as f32 - kf) / RELEASE).min(1.0);
        tone * self.amp * env
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

    /// The syllable voiced in slot `slot`, if any (pauses between turns, gaps within).
    fn syllable(&self, slot: u64) -> Option<Syllable> {
        let mut turn = Draws::new(key(self.seed, TAG_TURN) ^ mix64(slot / TURN));
        let speaker = turn.below(2);
        let active = 3 + turn.below(8); // 3..=10 voiced slots, then 2..=9 of pause
        if slot % TURN >= active {
            return None;
        }
        let mut voice = Draws::new(key(self.seed, TAG_SPEAKER) ^ speaker);
        let (lo, hi) = if speaker == 0 {
            (95.0, 140.0)
        } else {
            (170.0, 230.0)
        };
        let base_f0 = voice.range(lo, hi);
        let gain = voice.range(0.6, 1.0);

        let mut d = Draws::new(key(self.seed, TAG_SLOT) ^ mix64(slot));
        if d.below(7) == 0 {
            return None; // a short gap inside the turn
        }
        let onset = d.below(500);
        let len = 2_200 + d.below(1_300); // onset + len < SEGMENT
        let f0 = base_f0 * d.range(0.85, 1.2);
        let inc0 = f64::from(f0) * (1u64 << 32) as f64 / f64::from(SAMPLE_RATE);
        let total_glide = inc0 * f64::from(d.range(-0.25, 0.25));
        Some(Syllable {
            onset,
            len,
            inc0: inc0 as i64,
            glide: (total_glide / len as f64) as i64,
            amp: gain * d.range(2_500.0, 8_000.0),
            w2: d.range(0.3, 0.8),
            w3: d.range(0.1, 0.4),
        })
    }

    /// Writes samples `first..first + out.len() / 2` as 16-bit LE into `out` (even length).
    fn render(&self, first: u64, out: &mut [u8]) {
        let noise_key = key(self.seed, TAG_NOISE);
        let mut index = first;
        let mut rest = out;
        let mut noise_word = stream_word(noise_key, index / 4);
        while rest.len() >= 2 {
            let slot = index / SEGMENT;
            let slot_start = slot * SEGMENT;
            let count = ((slot_start + SEGMENT - index) as usize).min(rest.len() / 2);
            let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(count * 2);
            rest = tail;
            let syllable = self.syllable(slot);
            for pair in chunk.chunks_exact_mut(2) {
                if index % 4 == 0 {
                    noise_word = stream_word(noise_key, index / 4);
                }
                let lane = (noise_word >> ((index % 4) * 16)) as u16 as i16;
                let mut v = f32::from(lane) * (NOISE_AMP / 32_768.0);
                if let Some(s) = &syllable {
                    let k = (index - slot_start).wrapping_sub(s.onset);
                    if k < s.len {
                        v += s.at(k);
                    }
                }
                // `as` saturates, so loud peaks clip instead of wrapping.
                pair.copy_from_slice(&(v as i16).to_le_bytes());
                index += 1;
            }
        }
    }
}

impl Body for WavBody {
    fn len(&self) -> u64 {
        WAV_HEADER_LEN + WAV_BYTES_PER_SEC * u64::from(self.duration_secs)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let len = self.len();
        let mut out = buf;
        let mut pos = offset;
        if pos < WAV_HEADER_LEN {
            let n = copy_from(&wav_header(len - WAV_HEADER_LEN), pos, out);
            advance(&mut out, n);
            pos += n as u64;
        }
        // Out-of-range bytes (a caller bug) read as zeros rather than panicking.
        let valid = usize::try_from(len.saturating_sub(pos)).unwrap_or(usize::MAX);
        if valid < out.len() {
            out[valid..].fill(0);
            out = &mut out[..valid];
        }
        if out.is_empty() {
            return;
        }
        let rel = pos - WAV_HEADER_LEN;
        let mut sample = rel / 2;
        if rel % 2 == 1 {
            let mut pair = [0u8; 2];
            self.render(sample, &mut pair);
            out[0] = pair[1];
            advance(&mut out, 1);
            sample += 1;
        }
        let even = out.len() & !1;
        self.render(sample, &mut out[..even]);
        if let Some(last) = out.get_mut(even) {
            let mut pair = [0u8; 2];
            self.render(sample + (even / 2) as u64, &mut pair);
            *last = pair[0];
        }
    }
}

// ---------------------------------------------------------------------------------------
// WebM
// ---------------------------------------------------------------------------------------

/// A 320x240 VP8 keyframe (solid dark blue) encoded once with libvpx.
const VP8_KEYFRAME: [u8; 180] = [
    0xd0, 0x12, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88,
    0x85, 0x84, 0x88, 0x02, 0x02, 0x02, 0x75, 0xaa, 0x03, 0xf8, 0x02, 0x06, 0x86, 0x85, 0xa8, 0xc3,
    0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9,
    0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39,
    0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3,
    0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9,
    0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39,
    0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3,
    0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9,
    0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xd9, 0x39, 0xc3, 0xc8, 0x00,
    0xfe, 0xfe, 0xb8, 0x00, 0x7f, 0xe7, 0xa6, 0x6b, 0xcc, 0x1f, 0xe4, 0xe7, 0xff, 0x30, 0x4a, 0xfc,
    0x83, 0x75, 0xc8, 0x00,
];
/// Frame dimensions of [`VP8_KEYFRAME`].
const VIDEO_WIDTH: u16 = 320;
const VIDEO_HEIGHT: u16 = 240;
/// Milliseconds between frames (TimecodeScale is 1 ms).
const FRAME_MS: u64 = 1_000;

/// The EBML header: version 1, max ID length 4, max size length 8, DocType "webm" v2.
const EBML_HEADER: [u8; 36] = [
    0x1A, 0x45, 0xDF, 0xA3, 0x9F, // EBML, 31 bytes
    0x42, 0x86, 0x81, 0x01, // EBMLVersion 1
    0x42, 0xF7, 0x81, 0x01, // EBMLReadVersion 1
    0x42, 0xF2, 0x81, 0x04, // EBMLMaxIDLength 4
    0x42, 0xF3, 0x81, 0x08, // EBMLMaxSizeLength 8
    0x42, 0x82, 0x84, b'w', b'e', b'b', b'm', // DocType
    0x42, 0x87, 0x81, 0x02, // DocTypeVersion 2
    0x42, 0x85, 0x81, 0x02, // DocTypeReadVersion 2
];
/// Name written as MuxingApp and WritingApp (14 bytes: the Info layout depends on it).
const APP_NAME: &[u8; 14] = b"vccfs-emulator";
/// Bytes before the first cluster: EBML header, Segment head, Info, Tracks.
const WEBM_HEADER_LEN: u64 = 157;
/// Cluster bytes before the Void payload: Cluster head, Timecode, SimpleBlock, Void head.
const CLUSTER_PREFIX_LEN: u64 = 12 + 6 + SIMPLE_BLOCK_LEN + 9;
/// A SimpleBlock element holding the keyframe: ID, 8-byte size, 4-byte block header, frame.
const SIMPLE_BLOCK_LEN: u64 = 1 + 8 + 4 + VP8_KEYFRAME.len() as u64;
/// Smallest valid WebM this module produces (header plus one cluster with an empty Void).
pub const WEBM_MIN_LEN: u64 = WEBM_HEADER_LEN + CLUSTER_PREFIX_LEN;
/// Bounds of the cluster period.
const MIN_PERIOD: u64 = 4 << 10;
const MAX_PERIOD: u64 = 1 << 20;

/// An EBML size field 8 bytes wide (`value` < 2^56 - 1).
fn vint8(value: u64) -> [u8; 8] {
    (value.min((1 << 56) - 2) | (1 << 56)).to_be_bytes()
}

/// Appends bytes to a fixed buffer; used to assemble the structural pieces.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        let end = (self.pos + bytes.len()).min(self.buf.len());
        let n = end - self.pos;
        self.buf[self.pos..end].copy_from_slice(&bytes[..n]);
        self.pos = end;
        self
    }
}

/// A WebM (Matroska, VP8) video whose size is exactly `target_len` bytes (or the minimal
/// valid size when that is larger); its bulk is computed from a seed on demand.
#[derive(Debug, Clone)]
pub struct WebmBody {
    seed: u64,
    /// Actual length: `max(target_len, WEBM_MIN_LEN)`.
    len: u64,
    /// Size of every cluster but the last.
    period: u64,
    /// Number of clusters (= frames = seconds), at least 1.
    clusters: u64,
}

impl WebmBody {
    /// A video of about `target_len` bytes; the same seed always gives the same bytes.
    pub fn new(seed: u64, target_len: u64) -> Self {
        let len = target_len.max(WEBM_MIN_LEN);
        let period = (len.isqrt() * 64).clamp(MIN_PERIOD, MAX_PERIOD);
        // Round to nearest so the last cluster holds between P/2 and 3P/2 bytes.
        let clusters = ((len - WEBM_HEADER_LEN + period / 2) / period).max(1);
        Self {
            seed,
            len,
            period,
            clusters,
        }
    }

    /// Duration in milliseconds (one frame per cluster).
    fn duration_ms(&self) -> u64 {
        self.clusters * FRAME_MS
    }

    /// Size of cluster `i` (the last one absorbs the remainder).
    fn cluster_len(&self, i: u64) -> u64 {
        if i + 1 >= self.clusters {
            self.len - WEBM_HEADER_LEN - (self.clusters - 1) * self.period
        } else {
            self.period
        }
    }

    /// The bytes before the first cluster.
    fn header(&self) -> [u8; WEBM_HEADER_LEN as usize] {
        let mut buf = [0u8; WEBM_HEADER_LEN as usize];
        let track_uid = key(self.seed, TAG_TRACK) | 1;
        let mut w = Writer {
            buf: &mut buf,
            pos: 0,
        };
        w.put(&EBML_HEADER)
            // Segment
            .put(&[0x18, 0x53, 0x80, 0x67])
            .put(&vint8(self.len - EBML_HEADER.len() as u64 - 12))
            // Info, 52 bytes
            .put(&[0x15, 0x49, 0xA9, 0x66, 0xB4])
            .put(&[0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]) // TimecodeScale 1e6 ns
            .put(&[0x44, 0x89, 0x88]) // Duration, f64
            .put(&(self.duration_ms() as f64).to_be_bytes())
            .put(&[0x4D, 0x80, 0x8E]) // MuxingApp
            .put(APP_NAME)
            .put(&[0x57, 0x41, 0x8E]) // WritingApp
            .put(APP_NAME)
            // Tracks, 47 bytes; TrackEntry, 45 bytes
            .put(&[0x16, 0x54, 0xAE, 0x6B, 0xAF, 0xAE, 0xAD])
            .put(&[0xD7, 0x81, 0x01]) // TrackNumber 1
            .put(&[0x73, 0xC5, 0x88]) // TrackUID
            .put(&track_uid.to_be_bytes())
            .put(&[0x83, 0x81, 0x01]) // TrackType video
            .put(&[0x86, 0x85, b'V', b'_', b'V', b'P', b'8']) // CodecID
            .put(&[0x9C, 0x81, 0x00]) // FlagLacing 0
            .put(&[0x23, 0xE3, 0x83, 0x84]) // DefaultDuration, ns
            .put(&((FRAME_MS * 1_000_000) as u32).to_be_bytes())
            .put(&[0xE0, 0x88, 0xB0, 0x82]) // Video; PixelWidth
            .put(&VIDEO_WIDTH.to_be_bytes())
            .put(&[0xBA, 0x82]) // PixelHeight
            .put(&VIDEO_HEIGHT.to_be_bytes());
        debug_assert_eq!(w.pos, WEBM_HEADER_LEN as usize);
        buf
    }

    /// The structural bytes at the start of cluster `i`, whose total size is `len`.
    fn cluster_prefix(&self, i: u64, len: u64) -> [u8; CLUSTER_PREFIX_LEN as usize] {
        let mut buf = [0u8; CLUSTER_PREFIX_LEN as usize];
        let timecode = u32::try_from(i * FRAME_MS).unwrap_or(u32::MAX);
        let mut w = Writer {
            buf: &mut buf,
            pos: 0,
        };
        w.put(&[0x1F, 0x43, 0xB6, 0x75]) // Cluster
            .put(&vint8(len - 12))
            .put(&[0xE7, 0x84]) // Timecode, 4 bytes
            .put(&timecode.to_be_bytes())
            .put(&[0xA3]) // SimpleBlock
            .put(&vint8(SIMPLE_BLOCK_LEN - 9))
            .put(&[0x81, 0x00, 0x00, 0x80]) // track 1, relative time 0, keyframe
            .put(&VP8_KEYFRAME)
            .put(&[0xEC]) // Void
            .put(&vint8(len - CLUSTER_PREFIX_LEN));
        debug_assert_eq!(w.pos, CLUSTER_PREFIX_LEN as usize);
        buf
    }

    /// Writes bytes at absolute `pos` (>= header) into the front of `out`; returns the
    /// count written, which stops at the end of the structural piece or filler run.
    fn read_cluster_piece(&self, pos: u64, out: &mut [u8]) -> usize {
        let rel = pos - WEBM_HEADER_LEN;
        let i = (rel / self.period).min(self.clusters - 1);
        let within = rel - i * self.period;
        let len = self.cluster_len(i);
        if within < CLUSTER_PREFIX_LEN {
            copy_from(&self.cluster_prefix(i, len), within, out)
        } else if within < len {
            let n = usize::try_from(len - within).map_or(out.len(), |avail| avail.min(out.len()));
            fill_stream(key(self.seed, TAG_FILLER), pos, &mut out[..n]);
            n
        } else {
            0
        }
    }
}

impl Body for WebmBody {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let mut out = buf;
        let mut pos = offset;
        while !out.is_empty() {
            let n = if pos < WEBM_HEADER_LEN {
                copy_from(&self.header(), pos, out)
            } else {
                self.read_cluster_piece(pos, out)
            };
            if n == 0 {
                // Past the end (a caller bug): zeros rather than a panic.
                out.fill(0);
                return;
            }
            advance(&mut out, n);
            pos += n as u64;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// Offset of the Duration float inside the WebM header.
    const DURATION_AT: usize = 36 + 12 + 5 + 7 + 3;

    /// Reads `[offset, offset + n)` in one call.
    fn read(body: &dyn Body, offset: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        body.read_at(offset, &mut v);
        v
    }

    /// Reads the whole body in one call.
    fn read_all(body: &dyn Body) -> Vec<u8> {
        read(body, 0, body.len() as usize)
    }

    /// Checks random ranges read at once against the same ranges read in random pieces.
    fn check_splits(body: &dyn Body, whole: &[u8], rounds: u64) {
        let len = body.len();
        assert_eq!(whole.len() as u64, len);
        for r in 0..rounds {
            let mut d = Draws::new(mix64(r ^ 0xABCD));
            let a = d.below(len);
            let c = a + d.below((len - a).min(200_000) + 1);
            let one = read(body, a, (c - a) as usize);
            assert_eq!(one, whole[a as usize..c as usize], "range {a}..{c}");
            let mut pieces = Vec::new();
            let mut p = a;
            while p < c {
                let step = 1 + d.below((c - p).min(if r % 2 == 0 { 7 } else { 70_000 }));
                pieces.extend(read(body, p, step as usize));
                p += step;
            }
            assert_eq!(pieces, one, "pieces of {a}..{c}");
        }
    }

    /// Reads the whole body in pieces of the given sizes (cycling).
    fn read_in_pieces(body: &dyn Body, sizes: &[u64]) -> Vec<u8> {
        let mut v = Vec::new();
        let mut p = 0;
        let mut i = 0;
        while p < body.len() {
            let n = sizes[i % sizes.len()].min(body.len() - p);
            v.extend(read(body, p, n as usize));
            p += n;
            i += 1;
        }
        v
    }

    #[test]
    fn sine_table_is_accurate() {
        for (i, &s) in SINE.iter().enumerate() {
            let x = i as f64 * 2.0 * std::f64::consts::PI / SINE_LEN as f64;
            assert!((f64::from(s) - x.sin()).abs() < 1e-6, "entry {i}");
        }
    }

    #[test]
    fn fill_stream_is_split_consistent() {
        let mut whole = vec![0u8; 100];
        fill_stream(7, 3, &mut whole);
        for cut in 0..100 {
            let mut a = vec![0u8; 100];
            let (x, y) = a.split_at_mut(cut);
            fill_stream(7, 3, x);
            fill_stream(7, 3 + cut as u64, y);
            assert_eq!(a, whole);
        }
    }

    #[test]
    fn wav_header_fields() {
        let body = WavBody::new(1, 5);
        assert_eq!(body.len(), 44 + 80_000);
        let h = read(&body, 0, 44);
        let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_le_bytes(h[o..o + 2].try_into().unwrap());
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32_at(4), 36 + 80_000);
        assert_eq!(&h[8..16], b"WAVEfmt ");
        assert_eq!(u32_at(16), 16);
        assert_eq!(u16_at(20), 1, "PCM");
        assert_eq!(u16_at(22), 1, "mono");
        assert_eq!(u32_at(24), 8_000);
        assert_eq!(u32_at(28), 16_000);
        assert_eq!(u16_at(32), 2);
        assert_eq!(u16_at(34), 16);
        assert_eq!(&h[36..40], b"data");
        assert_eq!(u32_at(40), 80_000);
        let empty = WavBody::new(1, 0);
        assert_eq!(empty.len(), 44);
        assert_eq!(read(&empty, 40, 4), 0u32.to_le_bytes());
    }

    #[test]
    fn wav_split_reads_are_consistent() {
        let body = WavBody::new(42, 30);
        let whole = read_all(&body);
        check_splits(&body, &whole, 60);
        for sizes in [&[1u64][..], &[3, 41, 2], &[43, 1, 4095, 9]] {
            assert_eq!(read_in_pieces(&body, sizes), whole, "{sizes:?}");
        }
        // Around the header/data boundary, byte by byte.
        for a in 38..50 {
            for c in a..60 {
                assert_eq!(
                    read(&body, a, (c - a) as usize),
                    whole[a as usize..c as usize]
                );
            }
        }
    }

    #[test]
    fn wav_is_deterministic_and_seeded() {
        let a = read_all(&WavBody::new(5, 20));
        assert_eq!(a, read_all(&WavBody::new(5, 20)));
        let b = read_all(&WavBody::new(6, 20));
        assert_eq!(a[..44], b[..44]);
        assert_ne!(a[44..], b[44..]);
        // Shorter recording with the same seed is a prefix (apart from the header).
        let c = read_all(&WavBody::new(5, 10));
        assert_eq!(a[44..c.len()], c[44..]);
    }

    #[test]
    fn wav_sounds_like_speech_with_pauses() {
        let body = WavBody::new(9, 60);
        let data = read_all(&body);
        let samples: Vec<i16> = data[44..]
            .chunks_exact(2)
            .map(|p| i16::from_le_bytes([p[0], p[1]]))
            .collect();
        // RMS per 0.5 s slot: some loud, some quiet (only hiss).
        let rms: Vec<f64> = samples
            .chunks(SEGMENT as usize)
            .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
            .collect();
        let loud = rms.iter().filter(|&&r| r > 800.0).count();
        let quiet = rms.iter().filter(|&&r| r < 150.0).count();
        assert!(loud > rms.len() / 4, "loud {loud} of {}", rms.len());
        assert!(quiet > rms.len() / 10, "quiet {quiet} of {}", rms.len());
        assert!(
            samples.iter().all(|&s| s > i16::MIN && s < i16::MAX),
            "no clipping"
        );
    }

    #[test]
    fn webm_sizes() {
        assert_eq!(WEBM_MIN_LEN, 377);
        for target in [0, 1, 376] {
            let b = WebmBody::new(1, target);
            assert_eq!(b.len(), WEBM_MIN_LEN);
            assert_eq!(b.clusters, 1);
        }
        for target in [
            377u64,
            378,
            4_000,
            5_000,
            70 << 10,
            3 << 20,
            256 << 20,
            10 << 30,
        ] {
            let b = WebmBody::new(1, target);
            assert_eq!(b.len(), target);
            let total: u64 = (0..b.clusters).map(|i| b.cluster_len(i)).sum();
            assert_eq!(total + WEBM_HEADER_LEN, target);
            assert!(b.cluster_len(b.clusters - 1) >= CLUSTER_PREFIX_LEN);
        }
        assert_eq!(WebmBody::new(1, 70 << 10).clusters, 4);
        assert_eq!(WebmBody::new(1, 3 << 20).clusters, 28);
        assert_eq!(WebmBody::new(1, 256 << 20).clusters, 256);
    }

    /// Reads an EBML element ID (marker bits kept) at `*p`.
    fn ebml_id(data: &[u8], p: &mut usize) -> u32 {
        let n = data[*p].leading_zeros() as usize + 1;
        let id = data[*p..*p + n]
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        *p += n;
        id
    }

    /// Reads an EBML size (marker bit removed) at `*p`.
    fn ebml_size(data: &[u8], p: &mut usize) -> u64 {
        let n = data[*p].leading_zeros() as usize + 1;
        let mut v = u64::from(data[*p]) & ((1 << (8 - n)) - 1);
        for &b in &data[*p + 1..*p + n] {
            v = (v << 8) | u64::from(b);
        }
        *p += n;
        v
    }

    /// Walks the whole file and checks that every element nests and sizes add up.
    fn check_webm_structure(body: &WebmBody, data: &[u8]) {
        let mut p = 0;
        assert_eq!(ebml_id(data, &mut p), 0x1A45_DFA3);
        p += ebml_size(data, &mut p) as usize;
        assert_eq!(ebml_id(data, &mut p), 0x1853_8067);
        let seg_size = ebml_size(data, &mut p) as usize;
        assert_eq!(p + seg_size, data.len(), "segment ends the file");
        let mut clusters = 0u64;
        let mut seen_info = false;
        let mut seen_tracks = false;
        while p < data.len() {
            let id = ebml_id(data, &mut p);
            let size = ebml_size(data, &mut p) as usize;
            let end = p + size;
            assert!(end <= data.len());
            match id {
                0x1549_A966 => {
                    seen_info = true;
                    let d =
                        f64::from_be_bytes(data[DURATION_AT..DURATION_AT + 8].try_into().unwrap());
                    assert_eq!(d, (body.clusters * 1000) as f64);
                }
                0x1654_AE6B => seen_tracks = true,
                0x1F43_B675 => {
                    let mut q = p;
                    assert_eq!(ebml_id(data, &mut q), 0xE7);
                    let n = ebml_size(data, &mut q) as usize;
                    let tc = data[q..q + n]
                        .iter()
                        .fold(0u64, |a, &b| (a << 8) | u64::from(b));
                    assert_eq!(tc, clusters * 1000);
                    q += n;
                    assert_eq!(ebml_id(data, &mut q), 0xA3);
                    let n = ebml_size(data, &mut q) as usize;
                    assert_eq!(data[q..q + 4], [0x81, 0, 0, 0x80]);
                    assert_eq!(data[q + 4..q + n], VP8_KEYFRAME);
                    q += n;
                    assert_eq!(ebml_id(data, &mut q), 0xEC);
                    let n = ebml_size(data, &mut q) as usize;
                    assert_eq!(q + n, end, "void ends the cluster");
                    clusters += 1;
                }
                other => panic!("unexpected element {other:#x} at {p}"),
            }
            p = end;
        }
        assert!(seen_info && seen_tracks);
        assert_eq!(clusters, body.clusters);
    }

    #[test]
    fn webm_structure_is_valid() {
        for target in [0u64, 377, 378, 5_000, 70 << 10, 3 << 20] {
            let body = WebmBody::new(target ^ 0x55, target);
            let data = read_all(&body);
            check_webm_structure(&body, &data);
        }
    }

    #[test]
    fn webm_split_reads_are_consistent() {
        let body = WebmBody::new(77, 3 << 20);
        let whole = read_all(&body);
        check_splits(&body, &whole, 60);
        assert_eq!(read_in_pieces(&body, &[1, 7, 4093, 65_536, 13]), whole);
        // Every byte across the header and first cluster boundaries.
        let pc = body.period;
        for base in [
            0,
            WEBM_HEADER_LEN + pc - 5,
            WEBM_HEADER_LEN + CLUSTER_PREFIX_LEN,
        ] {
            for a in base.saturating_sub(4)..base + 300 {
                let one = read(&body, a, 17);
                assert_eq!(one, whole[a as usize..a as usize + 17]);
            }
        }
        let small = WebmBody::new(3, 0);
        let whole = read_all(&small);
        assert_eq!(read_in_pieces(&small, &[1]), whole);
    }

    #[test]
    fn webm_is_deterministic_and_seeded() {
        let a = read_all(&WebmBody::new(5, 1 << 20));
        assert_eq!(a, read_all(&WebmBody::new(5, 1 << 20)));
        let b = read_all(&WebmBody::new(6, 1 << 20));
        assert_ne!(a, b);
        let differing = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(differing > a.len() / 2, "filler depends on the seed");
        assert_ne!(
            read_all(&WebmBody::new(5, 0)),
            read_all(&WebmBody::new(6, 0))
        );
    }

    // ---- ffprobe / ffmpeg acceptance -------------------------------------------------

    fn have_ffprobe() -> bool {
        let ok = |tool: &str| {
            Command::new(tool)
                .arg("-version")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if ok("ffprobe") && ok("ffmpeg") {
            true
        } else {
            eprintln!("SKIP: ffprobe/ffmpeg not installed; media acceptance test not run");
            false
        }
    }

    fn write_body(dir: &Path, name: &str, body: &dyn Body) -> PathBuf {
        let path = dir.join(name);
        let mut data = Vec::with_capacity(body.len() as usize);
        let mut p = 0u64;
        while p < body.len() {
            let n = (body.len() - p).min(1 << 20);
            data.extend(read(body, p, n as usize));
            p += n;
        }
        std::fs::write(&path, data).unwrap();
        path
    }

    /// `ffprobe` JSON for the file: (stream 0, format).
    fn probe(path: &Path) -> (serde_json::Value, serde_json::Value) {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .arg("stream=codec_name,width,height,sample_rate,channels")
            .args(["-show_entries", "format=duration", "-of", "json"])
            .arg(path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "ffprobe: {stderr}"
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!("{}: {json}", path.display());
        (json["streams"][0].clone(), json["format"].clone())
    }

    /// Decodes the whole file with ffmpeg and asserts no errors were reported.
    fn decode_cleanly(path: &Path) {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffmpeg failed: {stderr}");
        assert!(stderr.trim().is_empty(), "ffmpeg errors: {stderr}");
    }

    fn duration(format: &serde_json::Value) -> f64 {
        format["duration"].as_str().unwrap().parse().unwrap()
    }

    #[test]
    fn ffmpeg_accepts_wav() {
        if !have_ffprobe() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_body(dir.path(), "call.wav", &WavBody::new(123, 5));
        let (stream, format) = probe(&path);
        assert_eq!(stream["codec_name"], "pcm_s16le");
        assert_eq!(stream["sample_rate"], "8000");
        assert_eq!(stream["channels"], 1);
        assert!((duration(&format) - 5.0).abs() < 1e-3, "{format}");
        decode_cleanly(&path);
    }

    #[test]
    fn ffmpeg_accepts_webm() {
        if !have_ffprobe() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for (seed, target) in [(1u64, 0u64), (2, 70 << 10), (3, 3 << 20)] {
            let body = WebmBody::new(seed, target);
            let path = write_body(dir.path(), &format!("screen-{target}.webm"), &body);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), body.len());
            let (stream, format) = probe(&path);
            assert_eq!(stream["codec_name"], "vp8");
            assert_eq!(stream["width"], 320);
            assert_eq!(stream["height"], 240);
            let expect = body.clusters as f64;
            assert!((duration(&format) - expect).abs() < 1e-3, "{format}");
            decode_cleanly(&path);
        }
    }
}
