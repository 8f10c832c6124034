//! Safe on a shared host: symbolic links planted in the tree are never followed (the
//! scan, `cache clear`, purge and erase remove them as links; what they point at
//! stays untouched), and a root or tenant directory that is a link, another user's,
//! or writable by others refuses the store with one line.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::tests::{block, cfg, get, open, path, put, tenant, version};
use super::*;

/// A directory outside the cache with a tree-shaped content and a victim file.
fn outside() -> (tempfile::TempDir, PathBuf) {
    let out = tempfile::tempdir().expect("outside");
    let victim = out.path().join("victim");
    fs::write(&victim, b"keep me").expect("victim");
    for d in ["ab/cd", "0"] {
        fs::create_dir_all(out.path().join(d)).expect("dirs");
    }
    fs::write(out.path().join("ab/cd/0"), b"keep").expect("file");
    fs::write(out.path().join("0/whole"), b"keep").expect("file");
    (out, victim)
}

/// Every file under `dir` with its bytes and mtime (`dir` untouched means equal).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("meta");
            if m.is_dir() {
                todo.push(e.path());
            } else {
                let bytes = fs::read(e.path()).expect("read");
                out.push((e.path(), bytes, m.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}

fn is_link(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[tokio::test]
async fn a_symlinked_tree_is_removed_as_a_link_never_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let (out, victim) = outside();
    let before = snapshot(out.path());
    let store = open(root.path(), cfg());
    let tree = store.shared.tree.clone();
    drop(store);
    fs::remove_dir_all(&tree).expect("rm tree");
    symlink(out.path(), &tree).expect("symlink v2");
    let store = open(root.path(), cfg());
    store.flush();
    assert!(!is_link(&tree) && tree.is_dir(), "a real tree again");
    let v = version(1, 2);
    put(&store, &v, 0, 2);
    store.flush();
    assert_eq!(get(&store, &v, 1).await, Some(block(&v, 1)));
    assert!(path(&store, &v, 0).exists());
    drop(store);
    // `cache clear` through a symlinked tree: the link goes, not what it points at.
    fs::remove_dir_all(&tree).expect("rm tree");
    symlink(out.path(), &tree).expect("symlink v2");
    let cleared = clear(root.path()).expect("clear");
    assert!(cleared.busy.is_empty());
    assert!(!tree.exists() && !is_link(&tree));
    assert_eq!(snapshot(out.path()), before);
    assert_eq!(fs::read(victim).expect("victim"), b"keep me");
}

#[tokio::test]
async fn symlinked_version_directories_and_block_files_are_never_followed() {
    let root = tempfile::tempdir().expect("tempdir");
    let (out, victim) = outside();
    let before = snapshot(out.path());
    let store = open(root.path(), cfg());
    let (a, b, c) = (version(1, 2), version(2, 2), version(3, 2));
    for v in [&a, &b, &c] {
        put(&store, v, 0, 2);
    }
    store.flush();
    let vdir = |v: &ContentVersion| store.shared.version_dir(&store.shared.key_of(v));
    let (adir, bdir, cdir) = (vdir(&a), vdir(&b), vdir(&c));
    let cguid = store.shared.guid_dir(&store.shared.guid_name(&c.guid));
    let b0 = path(&store, &b, 0);
    drop(store);
    // a: its version directory is a link; b: its block 0 is a link to a file outside;
    // c: its guid directory is a link.
    fs::remove_dir_all(&adir).expect("rm a");
    symlink(out.path(), &adir).expect("link a");
    fs::remove_file(&b0).expect("rm b0");
    symlink(&victim, &b0).expect("link b0");
    fs::remove_dir_all(&cguid).expect("rm c");
    symlink(out.path(), &cguid).expect("link c");

    // Read before the scan lands: a link is a miss, never read, never deleted through.
    let store = open(
        root.path(),
        DiskConfig {
            scan_delay: std::time::Duration::from_millis(300),
            ..cfg()
        },
    );
    for v in [&a, &b, &c] {
        let got = store.get(v, 0, &super::tests::req(v, 0, 1)).await;
        assert!(!matches!(got, Ok(Some(_))), "never served through a link");
    }
    store.flush();
    assert!(!is_link(&adir) && !adir.exists(), "the link went as a link");
    assert!(!is_link(&b0) && !b0.exists());
    assert!(!is_link(&cguid) && !cguid.exists());
    assert_eq!(
        get(&store, &b, 1).await,
        Some(block(&b, 1)),
        "b's other block stays"
    );
    assert_eq!(snapshot(out.path()), before);
    assert_eq!(fs::read(&victim).expect("victim"), b"keep me");
    assert!(!cdir.exists() && !bdir.join("0").exists());

    // Erase and purge meet links planted while the store runs: links removed only.
    let guid = store.shared.guid_dir(&store.shared.guid_name(&b.guid));
    fs::remove_dir_all(&guid).expect("rm b");
    symlink(out.path(), &guid).expect("link b guid");
    assert_eq!(store.erase_guid(&b.guid), 0);
    assert!(!is_link(&guid));
    put(&store, &a, 0, 2);
    store.flush();
    let adir_files: Vec<_> = fs::read_dir(&adir).expect("a").flatten().collect();
    assert_eq!(adir_files.len(), 2);
    fs::remove_dir_all(&adir).expect("rm a");
    symlink(out.path(), &adir).expect("link a again");
    store.purge(a.id);
    store.flush();
    assert!(!is_link(&adir) && !adir.exists());
    assert_eq!(snapshot(out.path()), before);
    drop(store);
    // `cache clear` with a link inside the tree.
    let store = open(root.path(), cfg());
    put(&store, &c, 0, 2);
    store.flush();
    drop(store);
    symlink(
        out.path(),
        cdir.parent()
            .expect("guid")
            .join("ffffffffffffffffffffffffffffffff"),
    )
    .expect("link in a guid dir");
    let cleared = clear(root.path()).expect("clear");
    assert_eq!(
        cleared.files, 2,
        "c's two blocks; the link is removed, not followed"
    );
    assert_eq!(snapshot(out.path()), before);
}

fn refused(root: &Path) -> String {
    let e = DiskStore::open(root, tenant(), cfg()).expect_err("refused");
    assert!(matches!(e, DiskError::Unsafe(_)), "{e}");
    let line = e.to_string();
    assert!(!line.contains('\n'), "{line}");
    line
}

#[test]
fn an_unsafe_root_or_tenant_directory_refuses_the_store() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("cache");
    fs::create_dir(&root).expect("root");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(refused(&root).contains("chmod go-w"));
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = t.path().join("link");
    symlink(&root, &link).expect("symlink");
    assert!(refused(&link).contains("symbolic link"));
    if crate::safe_fs::euid() == 0 {
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).expect("chown");
        assert!(refused(&root).contains("owned by uid 65534"));
        std::os::unix::fs::chown(&root, Some(0), Some(0)).expect("chown back");
    }
    // The tenant's directory: writable by others, or a link.
    let dir = root.join(tenant().to_string());
    fs::create_dir(&dir).expect("tenant");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o733)).expect("chmod");
    assert!(refused(&root).contains(&tenant().to_string()));
    assert!(
        usage(&root).is_err() && clear(&root).is_err(),
        "du and clear refuse it"
    );
    fs::remove_dir(&dir).expect("rm");
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    symlink(elsewhere.path(), &dir).expect("symlink tenant");
    assert!(refused(&root).contains("symbolic link"));
    assert_eq!(
        fs::read_dir(elsewhere.path()).expect("ls").count(),
        0,
        "nothing made there"
    );
    // du and clear pass a link by (never into it).
    assert!(usage(&root).expect("du").is_empty());
    assert_eq!(clear(&root).expect("clear").files, 0);
    assert!(is_link(&dir));
    fs::remove_file(&dir).expect("rm link");
    drop(open(&root, cfg()));
    assert_eq!(
        fs::metadata(&dir).expect("tenant").permissions().mode() & 0o777,
        0o700
    );
}
