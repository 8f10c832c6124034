use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

fn one_line(e: &DirError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    s
}

#[test]
fn a_missing_directory_is_created_0700_and_accepted() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("a/b/vccfs");
    create_private(&dir).expect("created");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&t.path().join("a/b")), 0o700);
    create_private(&dir).expect("again");
    open_private(&dir).expect("opened");
}

#[test]
fn a_symlink_is_refused_even_to_a_private_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let real = t.path().join("real");
    create_private(&real).expect("real");
    let link = t.path().join("link");
    symlink(&real, &link).expect("symlink");
    for r in [open_private(&link), create_private(&link)] {
        let e = r.expect_err("a symlink");
        assert!(matches!(e, DirError::Symlink { .. }), "{e}");
        assert!(one_line(&e).contains("symbolic link"));
    }
    let parent = rustix::fs::open(t.path(), DIR_FLAGS, Mode::empty()).expect("parent");
    let e = private_subdir(&parent, "link", &link).expect_err("a symlink");
    assert!(matches!(e, DirError::Symlink { .. }), "{e}");
    // A link to a file, too.
    std::fs::write(t.path().join("file"), b"x").expect("file");
    symlink(t.path().join("file"), t.path().join("flink")).expect("symlink");
    let e = private_subdir(&parent, "flink", &t.path().join("flink")).expect_err("link");
    assert!(matches!(e, DirError::Symlink { .. }), "{e}");
}

#[test]
fn a_directory_others_may_write_in_is_refused() {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("open");
    std::fs::create_dir(&dir).expect("dir");
    for m in [0o777, 0o1777, 0o770, 0o702] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m)).expect("chmod");
        let e = create_private(&dir).expect_err("writable by others");
        assert!(matches!(e, DirError::Writable { .. }), "{m:o}: {e}");
        assert!(one_line(&e).contains("chmod go-w"));
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    open_private(&dir).expect("0755 is fine: nobody else writes");
}

#[test]
fn a_directory_of_another_user_is_refused() {
    if euid() != 0 {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().join("theirs");
    std::fs::create_dir(&dir).expect("dir");
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown");
    let e = create_private(&dir).expect_err("another owner");
    assert!(matches!(e, DirError::Owner { owner: 65534, .. }), "{e}");
    assert!(one_line(&e).contains("owned by uid 65534"));
}

#[test]
fn a_file_is_not_a_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let f = t.path().join("f");
    std::fs::write(&f, b"x").expect("file");
    let e = create_private(&f).expect_err("a file");
    assert!(matches!(e, DirError::NotDir { .. }), "{e}");
}

#[test]
fn the_anchor_never_follows_a_link_below_it() {
    let t = tempfile::tempdir().expect("tempdir");
    let base = t.path().join("base");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).expect("outside");
    std::fs::write(outside.join("sub/victim"), b"keep").expect("victim");
    let a = Anchor::new(base.clone(), create_private(&base).expect("base"));
    symlink(&outside, base.join("link")).expect("symlink");
    // Through the link: nothing opens, nothing is removed or created.
    assert!(a.read(&base.join("link/sub/victim")).is_err());
    assert!(a.remove_file(&base.join("link/sub/victim")).is_err());
    assert!(a.create_new(&base.join("link/new")).is_err());
    assert!(a.make_dirs(&base.join("link/sub/deeper")).is_err());
    assert!(
        a.read(&base.join("link")).is_err(),
        "O_NOFOLLOW on the last one"
    );
    assert!(a.read_dir(&base.join("link")).is_err());
    // A tree holding the link: the link goes, its target stays.
    a.make_dirs(&base.join("t/u")).expect("dirs");
    symlink(&outside, base.join("t/u/l")).expect("symlink");
    std::fs::write(base.join("t/u/f"), b"abc").expect("f");
    assert_eq!(a.tree(&base.join("t"), false).expect("du"), (3, 1));
    assert_eq!(a.remove_all(&base.join("t")).expect("rm"), 1);
    assert!(!base.join("t").exists());
    assert_eq!(a.remove_all(&base.join("link")).expect("rm link"), 0);
    assert!(!base.join("link").exists());
    assert_eq!(
        std::fs::read(outside.join("sub/victim")).expect("still there"),
        b"keep"
    );
    // `..` and paths outside are refused.
    assert!(a.read(&base.join("../outside/sub/victim")).is_err());
    assert!(a.read(&outside.join("sub/victim")).is_err());
}
