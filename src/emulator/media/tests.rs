use super::wav::*;
use super::webm::*;
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
                let d = f64::from_be_bytes(data[DURATION_AT..DURATION_AT + 8].try_into().unwrap());
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
