//! Whole files: promotion, reads and passthrough hand-outs from them, damage, the
//! scan after a crash mid-promotion, and the cap during promotion.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::tests::{block, cfg, get, open, put, version, BS, ETAG};
use super::whole::{WHOLE_FILE, WHOLE_IDX};
use super::*;
use crate::version::Validator;

fn whole_cfg() -> DiskConfig {
    DiskConfig {
        whole_files: true,
        ..cfg()
    }
}

fn dir(store: &DiskStore, v: &ContentVersion) -> PathBuf {
    store.shared.version_dir(&store.shared.key_of(v))
}

fn names(store: &DiskStore, v: &ContentVersion) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir(store, v))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn content(v: &ContentVersion) -> Vec<u8> {
    (0..v.size.div_ceil(BS)).flat_map(|i| block(v, i)).collect()
}

/// A store holding `v` (of `blocks` blocks) whole.
fn promoted(root: &std::path::Path, blocks: u64) -> (Arc<DiskStore>, Arc<ContentVersion>) {
    let store = open(root, whole_cfg());
    let v = version(1, blocks);
    put(&store, &v, 0, blocks);
    store.flush();
    (store, v)
}

#[tokio::test]
async fn a_version_held_completely_becomes_one_exact_file_and_reads_come_from_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, v) = promoted(root.path(), 5);
    assert_eq!(
        names(&store, &v),
        [WHOLE_FILE, WHOLE_IDX],
        "block files gone"
    );
    let whole = fs::read(dir(&store, &v).join(WHOLE_FILE)).expect("whole");
    assert_eq!(whole, content(&v), "exactly the content's bytes");
    let s = store.stats();
    let on_disk: u64 = [WHOLE_FILE, WHOLE_IDX]
        .iter()
        .map(|n| fs::metadata(dir(&store, &v).join(n)).map_or(0, |m| m.len()))
        .sum();
    assert_eq!((s.promotions, s.files, s.used_bytes), (1, 1, on_disk));
    assert!(store.holds(&v));
    for i in 0..5 {
        assert_eq!(get(&store, &v, i).await, Some(block(&v, i)), "block {i}");
    }
    // A one-block version stays a block file.
    let one = version(2, 1);
    put(&store, &one, 0, 1);
    store.flush();
    assert_eq!(names(&store, &one), ["0"]);
    assert_eq!(store.stats().promotions, 1);
}

#[tokio::test]
async fn a_local_file_is_checked_in_full_and_seeds_the_pin() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, v) = promoted(root.path(), 4);
    let fresh = version(1, 4);
    let mut f = store.local_file(&fresh).await.expect("a local file");
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut got).expect("read");
    assert_eq!(got, content(&v));
    assert_eq!(fresh.pinned(), Some(&Validator::ETag(ETAG.into())));
    assert_eq!(store.stats().local_files, 1);
    // A version pinned to another validator gets none, and the pair goes.
    let other = version(1, 4);
    assert!(other.pin(&Validator::ETag("\"other\"".into())));
    assert!(store.local_file(&other).await.is_none());
    store.flush();
    assert!(names(&store, &v).is_empty(), "{:?}", names(&store, &v));
    assert!(store.local_file(&version(1, 4)).await.is_none());
}

#[tokio::test]
async fn a_damaged_whole_file_is_never_handed_out_nor_served() {
    for damage in ["byte", "truncate", "index"] {
        let root = tempfile::tempdir().expect("tempdir");
        let (store, v) = promoted(root.path(), 4);
        // A first hand-out seals the file as checked; the damage comes after it.
        assert!(store.local_file(&version(1, 4)).await.is_some());
        let d = dir(&store, &v);
        match damage {
            "byte" => {
                let f = fs::File::options()
                    .read(true)
                    .write(true)
                    .open(d.join(WHOLE_FILE))
                    .expect("open");
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, 2 * BS + 7).expect("read");
                f.write_all_at(&[b[0] ^ 0x40], 2 * BS + 7).expect("write");
            }
            "truncate" => {
                let f = fs::File::options()
                    .write(true)
                    .open(d.join(WHOLE_FILE))
                    .expect("open");
                f.set_len(v.size - 1).expect("truncate");
            }
            _ => {
                let mut f = fs::File::options()
                    .append(true)
                    .open(d.join(WHOLE_IDX))
                    .expect("open");
                f.write_all(b"x").expect("append");
            }
        }
        assert!(
            store.local_file(&version(1, 4)).await.is_none(),
            "{damage}: handed out"
        );
        assert_eq!(get(&store, &version(1, 4), 2).await, None, "{damage}");
        store.flush();
        assert!(store.stats().corrupt >= 1, "{damage}: counted");
        assert!(names(&store, &v).is_empty(), "{damage}: deleted");
        assert!(!store.holds(&v));
    }
}

#[tokio::test]
async fn the_scan_finishes_an_interrupted_promotion_either_way() {
    let root = tempfile::tempdir().expect("tempdir");
    let (store, v) = promoted(root.path(), 3);
    let d = dir(&store, &v);
    let (whole, idx) = (
        fs::read(d.join(WHOLE_FILE)).expect("whole"),
        fs::read(d.join(WHOLE_IDX)).expect("idx"),
    );
    drop(store);
    // Committed, but the blocks were not deleted yet: the blocks go.
    let blocks = open(root.path(), cfg());
    put(&blocks, &v, 0, 3);
    blocks.flush();
    drop(blocks);
    fs::write(d.join(WHOLE_FILE), &whole).expect("write");
    fs::write(d.join(WHOLE_IDX), &idx).expect("write");
    let store = open(root.path(), whole_cfg());
    store.flush();
    assert_eq!(names(&store, &v), [WHOLE_FILE, WHOLE_IDX]);
    assert_eq!(store.stats().files, 1);
    assert_eq!(get(&store, &version(1, 3), 1).await, Some(block(&v, 1)));
    drop(store);
    // `whole` written, the index not yet: the unfinished `whole` goes, blocks stay.
    fs::remove_file(d.join(WHOLE_IDX)).expect("rm");
    fs::remove_file(d.join(WHOLE_FILE)).expect("rm");
    let blocks = open(root.path(), cfg());
    put(&blocks, &v, 0, 3);
    blocks.flush();
    drop(blocks);
    fs::write(d.join(WHOLE_FILE), &whole).expect("write");
    let store = open(root.path(), cfg());
    store.flush();
    assert_eq!(names(&store, &v), ["0", "1", "2"]);
    assert_eq!(store.stats().files, 3);
}

#[tokio::test]
async fn promotion_stays_within_the_cap_or_does_not_happen() {
    let root = tempfile::tempdir().expect("tempdir");
    // Room for the blocks of one 4-block version, not for them and its whole file
    // (the index: a 155-byte header and 4 CRCs).
    let one = 4 * super::tests::FILE;
    let pair = 4 * BS + 155 + 16;
    let store = open(
        root.path(),
        DiskConfig {
            max_bytes: one + pair - 1,
            ..whole_cfg()
        },
    );
    let v = version(1, 4);
    put(&store, &v, 0, 4);
    store.flush();
    assert_eq!(names(&store, &v), ["0", "1", "2", "3"], "stays as blocks");
    assert_eq!(store.stats().promotions, 0);
    // With room, another version's blocks are evicted for the pair, never its own.
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(
        root.path(),
        DiskConfig {
            max_bytes: one + pair + super::tests::FILE - 1,
            ..whole_cfg()
        },
    );
    let old = version(2, 1);
    put(&store, &old, 0, 1);
    store.flush();
    put(&store, &v, 0, 4);
    store.flush();
    assert_eq!(names(&store, &v), [WHOLE_FILE, WHOLE_IDX]);
    assert!(
        names(&store, &old).is_empty(),
        "the older version made room"
    );
    let s = store.stats();
    assert!(s.used_bytes <= s.cap_bytes);
    assert_eq!(get(&store, &version(1, 4), 3).await, Some(block(&v, 3)));
}
