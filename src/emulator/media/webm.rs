//! [`WebmBody`]: a VP8 WebM of an exact size computed from a seed (layout in the
//! module docs of `media`).

use super::*;

/// A 320x240 VP8 keyframe (solid dark blue) encoded once with libvpx.
pub(super) const VP8_KEYFRAME: [u8; 180] = [
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
pub(super) const WEBM_HEADER_LEN: u64 = 157;
/// Cluster bytes before the Void payload: Cluster head, Timecode, SimpleBlock, Void head.
pub(super) const CLUSTER_PREFIX_LEN: u64 = 12 + 6 + SIMPLE_BLOCK_LEN + 9;
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
    pub(super) period: u64,
    /// Number of clusters (= frames = seconds), at least 1.
    pub(super) clusters: u64,
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
    pub(super) fn cluster_len(&self, i: u64) -> u64 {
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
