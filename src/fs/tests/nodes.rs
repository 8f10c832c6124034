//! The node table against what the kernel still references: it shrinks once the
//! kernel forgets, a node stays until every lookup is forgotten, and an open file
//! reads on after its inode is forgotten.

use super::*;

#[test]
fn the_node_table_shrinks_back_once_the_kernel_forgets() {
    let rig = Rig::mock();
    assert_eq!(rig.ops.node_count(), 0);
    // The fixed directories are not counted, and forgetting them changes nothing.
    let dir = rig.lookup(ino::ROOT, "interactions").expect("interactions");
    assert_eq!(dir.attr.ino.0, ino::INTERACTIONS);
    assert_eq!(rig.ops.node_count(), 0);
    let mut handed = Vec::new();
    for g in GUIDS {
        let d = rig.lookup(ino::INTERACTIONS, g).expect("guid").attr.ino.0;
        handed.push(d);
        for key in [META_NAME, "callRecording", "transcript"] {
            handed.push(rig.lookup(d, key).expect("file").attr.ino.0);
        }
    }
    let day = rig
        .lookup(ino::BY_DATE, "2026-11-20")
        .expect("day")
        .attr
        .ino
        .0;
    handed.push(day);
    handed.push(rig.lookup(day, GUIDS[0]).expect("link").attr.ino.0);
    assert_eq!(rig.ops.node_count(), handed.len());
    assert_eq!(handed.len(), 14);
    // Listings hand out no inodes.
    let _ = rig.names(ino::INTERACTIONS, 0);
    let _ = rig.names(day, 0);
    assert_eq!(rig.ops.node_count(), handed.len());

    for (i, n) in handed.iter().enumerate() {
        rig.ops.forget(*n, 1);
        assert_eq!(rig.ops.node_count(), handed.len() - i - 1);
        assert_eq!(getattr_errno(&rig, *n), Some(Errno::ENOENT), "{n} dropped");
    }
    for fixed in [ino::ROOT, ino::INTERACTIONS, ino::BY_DATE] {
        rig.ops.forget(fixed, 1_000);
        assert_eq!(getattr_errno(&rig, fixed), None, "{fixed} is never dropped");
    }
    rig.ops.forget(0xdead_beef, 3); // unknown: ignored
    assert_eq!(rig.ops.node_count(), 0);
    assert_eq!(rig.names(ino::ROOT, 0).len(), 7);
    // Looked up again, a dropped node is whole again: attributes, children, links.
    let d = rig.lookup(ino::INTERACTIONS, GUIDS[2]).expect("again");
    assert_eq!(d.attr.ino.0, handed[8]);
    let rec = rig
        .lookup(d.attr.ino.0, "callRecording")
        .expect("file again");
    assert_eq!(rec.attr.size, RECORDING);
    assert_eq!(getattr_errno(&rig, rec.attr.ino.0), None);
    let day = rig
        .lookup(ino::BY_DATE, "2026-11-20")
        .expect("day again")
        .attr
        .ino
        .0;
    let link = rig.lookup(day, GUIDS[0]).expect("link again").attr.ino.0;
    assert!(rig
        .ops
        .readlink(link)
        .expect("readlink")
        .ends_with(GUIDS[0]));
    assert_eq!(rig.ops.node_count(), 4, "directory, file, day, link");
}

#[test]
fn a_node_stays_until_every_lookup_is_forgotten() {
    let rig = Rig::mock();
    let dir = ino::interaction(GUIDS[1]);
    for _ in 0..2 {
        rig.lookup(ino::INTERACTIONS, GUIDS[1]).expect("guid");
    }
    assert_eq!(rig.ops.lookups(dir), Some(2));
    rig.ops.forget(dir, 1);
    assert_eq!(rig.ops.lookups(dir), Some(1), "one lookup left");
    assert_eq!(getattr_errno(&rig, dir), None);
    assert!(rig.lookup(dir, "transcript").is_ok(), "still a parent");
    rig.ops.forget(dir, 1);
    assert_eq!(rig.ops.lookups(dir), None);
    assert_eq!(getattr_errno(&rig, dir), Some(Errno::ENOENT));
    assert_eq!(
        rig.lookup(dir, "transcript")
            .expect_err("parent gone")
            .errno(),
        Errno::ENOENT
    );
    // A batch forget may name the whole count at once.
    for _ in 0..3 {
        rig.lookup(ino::INTERACTIONS, GUIDS[1]).expect("guid");
    }
    rig.ops.forget(dir, 2);
    assert_eq!(rig.ops.lookups(dir), Some(1));
    rig.ops.forget(dir, 1);
    assert_eq!(rig.ops.lookups(dir), None);
    // A file's count is its own (looked up once above, once here), not its parent's.
    let file = rig.file_ino(GUIDS[1], "transcript");
    assert_eq!(rig.ops.lookups(file), Some(2));
    rig.ops.forget(file, 2);
    assert_eq!(rig.ops.lookups(file), None);
    assert_eq!(rig.ops.lookups(dir), Some(1));
}

#[test]
fn an_open_file_reads_on_after_its_inode_is_forgotten() {
    let rig = Rig::mock();
    let dir = ino::interaction(GUIDS[0]);
    let rec = rig.file_ino(GUIDS[0], "callRecording");
    let meta = rig.lookup(dir, META_NAME).expect("meta").attr.ino.0;
    let fh = rig.ops.open(rec, libc::O_RDONLY).expect("open");
    let mfh = rig.ops.open(meta, libc::O_RDONLY).expect("open meta");
    for n in [rec, meta, dir] {
        rig.ops.forget(n, 1);
    }
    assert_eq!(rig.ops.node_count(), 0);
    let got = rig.read(fh, 500_000, 70_000).expect("read after forget");
    assert_eq!(&got[..], &truth(500_000, 70_000)[..]);
    let json = rig.read(mfh, 0, 1 << 20).expect("meta after forget");
    assert_eq!(
        json,
        rig.catalog.known(GUIDS[0]).expect("known").meta_json()
    );
    rig.ops.release(fh);
    rig.ops.release(mfh);
    // And the same file, looked up again, opens and reads as before.
    let again = rig.file_ino(GUIDS[0], "callRecording");
    assert_eq!(again, rec, "stable inode number");
    let fh = rig.ops.open(again, libc::O_RDONLY).expect("reopen");
    assert_eq!(
        &rig.read(fh, 0, 4096).expect("read")[..],
        &truth(0, 4096)[..]
    );
}
