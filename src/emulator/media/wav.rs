//! [`WavBody`]: a PCM WAV "phone call" computed from a seed (see the module docs of
//! `media`).

use super::*;

/// Size of the canonical RIFF/WAVE header.
const WAV_HEADER_LEN: u64 = 44;
/// Samples per second.
const SAMPLE_RATE: u32 = 8_000;
/// Data bytes per second (16-bit mono).
const WAV_BYTES_PER_SEC: u64 = 2 * SAMPLE_RATE as u64;
/// Samples per "syllable" slot (0.5 s).
pub(super) const SEGMENT: u64 = 4_000;
/// Slots per speaker turn (6 s); the tail of each turn is a pause.
const TURN: u64 = 12;
/// Peak amplitude of the background hiss, in LSB.
const NOISE_AMP: f32 = 120.0;
/// Envelope attack and release, in samples.
const ATTACK: f32 = 240.0;
const RELEASE: f32 = 800.0;

/// log2 of the sine table size.
const SINE_BITS: u32 = 10;
pub(super) const SINE_LEN: usize = 1 << SINE_BITS;
/// One period of sine, computed at compile time (so identical on every platform).
pub(super) static SINE: [f32; SINE_LEN] = sine_table();

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
