//! The owner and modes of every kind of node (`access`), as lookup and getattr answer
//! them, with and without `--allow-other`, and the extended attributes' own check.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::{Errno, FileType};

use super::access::{Access, Caller};
use super::tests::{Rig, GUIDS};
use crate::catalog::{ino, META_NAME};
use crate::source::mock::MockSource;

fn rig(access: Access) -> Rig {
    Rig::with_access(|| Arc::new(MockSource::new(0)), access)
}

/// (kind, perm, uid, gid) of every kind of node, by lookup and by getattr.
fn every_kind(rig: &Rig) -> Vec<(&'static str, FileType, u16, u32, u32)> {
    let dir = rig.lookup(ino::INTERACTIONS, GUIDS[0]).expect("guid");
    let d = dir.attr.ino.0;
    let meta = rig.lookup(d, META_NAME).expect("meta");
    let file = rig.lookup(d, "callRecording").expect("file");
    let day = rig.lookup(ino::BY_DATE, "2026-11-20").expect("day");
    let link = rig.lookup(day.attr.ino.0, GUIDS[0]).expect("link");
    let by_lookup = [
        ("root", ino::ROOT),
        ("interactions", ino::INTERACTIONS),
        ("by-date", ino::BY_DATE),
        ("interaction", d),
        ("meta", meta.attr.ino.0),
        ("file", file.attr.ino.0),
        ("day", day.attr.ino.0),
        ("link", link.attr.ino.0),
    ];
    for (entry, name) in [(&meta, "meta"), (&file, "file"), (&link, "link")] {
        let again = rig.rt.block_on(rig.ops.getattr(entry.attr.ino.0));
        let again = again.expect("getattr");
        assert_eq!(again.attr.perm, entry.attr.perm, "{name}: lookup = getattr");
        assert_eq!(again.attr.uid, entry.attr.uid, "{name}: lookup = getattr");
        assert_eq!(again.attr.gid, entry.attr.gid, "{name}: lookup = getattr");
    }
    by_lookup
        .into_iter()
        .map(|(name, i)| {
            let a = rig.rt.block_on(rig.ops.getattr(i)).expect("getattr").attr;
            (name, a.kind, a.perm, a.uid, a.gid)
        })
        .collect()
}

fn expect(access: Access) -> Vec<(&'static str, FileType, u16, u32, u32)> {
    let (u, g) = (access.uid, access.gid);
    let (f, d) = (access.file_mode, access.dir_mode);
    vec![
        ("root", FileType::Directory, d, u, g),
        ("interactions", FileType::Directory, d, u, g),
        ("by-date", FileType::Directory, d, u, g),
        ("interaction", FileType::Directory, d, u, g),
        ("meta", FileType::RegularFile, f, u, g),
        ("file", FileType::RegularFile, f, u, g),
        ("day", FileType::Directory, d, u, g),
        ("link", FileType::Symlink, 0o777, u, g),
    ]
}

#[test]
fn without_allow_other_everything_is_world_readable_and_the_mounters() {
    let access = Access::new(None, None, None, None, false);
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!((access.uid, access.gid), (euid, egid));
    assert_eq!((access.file_mode, access.dir_mode), (0o444, 0o555));
    assert_eq!(every_kind(&rig(access)), expect(access));
}

#[test]
fn with_allow_other_files_and_directories_are_owner_and_group_only() {
    let access = Access::new(None, Some(4321), None, None, true);
    assert_eq!((access.file_mode, access.dir_mode), (0o440, 0o550));
    assert_eq!(access.gid, 4321);
    assert_eq!(every_kind(&rig(access)), expect(access));
}

#[test]
fn explicit_owner_and_modes_apply_to_every_node_and_links_stay_0777() {
    let access = Access::new(Some(1234), Some(5678), Some(0o400), Some(0o500), true);
    let got = every_kind(&rig(access));
    assert_eq!(got, expect(access));
    assert!(got.iter().all(|n| (n.3, n.4) == (1234, 5678)));
    let open = Access::new(None, None, Some(0o444), Some(0o555), true);
    assert_eq!(every_kind(&rig(open)), expect(open));
}

#[test]
fn xattrs_are_answered_only_to_who_could_read_a_file() {
    let access = Access {
        uid: 1000,
        gid: 2000,
        file_mode: 0o440,
        // Directories open to all: the kernel would let anyone ask the directory.
        dir_mode: 0o555,
    };
    let rig = rig(access);
    let dir = rig
        .lookup(ino::INTERACTIONS, GUIDS[0])
        .expect("guid")
        .attr
        .ino
        .0;
    let file = rig.lookup(dir, "callRecording").expect("file").attr.ino.0;
    let who = |uid, gid| Caller { uid, gid, pid: 0 };
    let get = |ino, name: &str, c: Caller| rig.ops.getxattr(ino, OsStr::new(name), &c);
    for reader in [who(0, 0), who(1000, 1000), who(3000, 2000)] {
        assert_eq!(
            get(dir, "user.vcc.direction", reader).ok().as_deref(),
            Some("Inbound")
        );
        assert_eq!(
            get(file, "user.vcc.contentType", reader).ok().as_deref(),
            Some("audio/wav")
        );
    }
    let stranger = who(3000, 3000);
    for (ino, name) in [(dir, "user.vcc.direction"), (file, "user.vcc.contentType")] {
        let e = get(ino, name, stranger).expect_err("denied");
        assert_eq!(e.errno(), Errno::EACCES, "{name}");
    }
}

#[test]
fn xattrs_and_links_are_refused_while_access_is_revoked() {
    let rig = rig(Access::default());
    let dir = rig.lookup(ino::INTERACTIONS, GUIDS[0]).expect("guid");
    let dir = dir.attr.ino.0;
    let file = rig.lookup(dir, "callRecording").expect("file").attr.ino.0;
    let day = rig
        .lookup(ino::BY_DATE, "2026-11-20")
        .expect("day")
        .attr
        .ino
        .0;
    let link = rig.lookup(day, GUIDS[0]).expect("link").attr.ino.0;
    let root = Caller {
        uid: 0,
        gid: 0,
        pid: 0,
    };
    let direction = |r: &Rig| r.ops.getxattr(dir, OsStr::new("user.vcc.direction"), &root);
    assert_eq!(direction(&rig).ok().as_deref(), Some("Inbound"));
    assert!(!rig.ops.listxattr(file).expect("names").is_empty());
    assert!(rig.ops.readlink(link).is_ok());

    rig.catalog.set_revoked(true);
    let errno = |r: Result<(), super::errno::FsError>| r.map_err(|e| e.errno());
    assert_eq!(errno(direction(&rig).map(|_| ())), Err(Errno::EACCES));
    let content_type = rig
        .ops
        .getxattr(file, OsStr::new("user.vcc.contentType"), &root);
    assert_eq!(errno(content_type.map(|_| ())), Err(Errno::EACCES));
    for ino in [dir, file] {
        assert_eq!(
            errno(rig.ops.listxattr(ino).map(|_| ())),
            Err(Errno::EACCES)
        );
    }
    assert_eq!(
        errno(rig.ops.readlink(link).map(|_| ())),
        Err(Errno::EACCES)
    );
    // Attributes name nothing the catalog holds: still answered.
    assert!(rig.rt.block_on(rig.ops.getattr(file)).is_ok());
    assert!(rig.rt.block_on(rig.ops.getattr(link)).is_ok());

    rig.catalog.set_revoked(false);
    assert_eq!(direction(&rig).ok().as_deref(), Some("Inbound"));
    assert!(rig.ops.readlink(link).is_ok());
}
