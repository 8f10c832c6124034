//! Versions as a real API serves them: content served by a storage host with
//! validators of its own, and listings that leave out `contentLength`.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{fuse_available, Emulator, Mount};
use crate::faults::{read_exactly, timed_read, truth};

fn guid_and_key(path: &Path) -> (String, String) {
    let name = |p: Option<&std::ffi::OsStr>| p.expect("name").to_string_lossy().to_string();
    (
        name(path.parent().and_then(Path::file_name)),
        name(path.file_name()),
    )
}

/// A storage host's Last-Modified and ETag describe the stored object, not the API's
/// `lastModified`: every file still reads exactly, and a real change is still
/// ESTALE for an open reader, then the new version.
#[test]
fn storage_hosts_with_their_own_validators_read_exactly() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&[
        "--interactions",
        "8",
        "--seed",
        "11",
        "--redirect",
        "--storage-validators",
        "own",
        // The file changed below is larger than a whole-file fetch, so it is read on
        // with requests after the change.
        "--big-file-mib",
        "20",
    ]);
    let m = Mount::start(&emu, &["--refresh", "1"]);
    let mut files = truth(&emu, &m);
    assert!(files.len() > 10, "{} files", files.len());
    // The biggest file is left unread, for the change below.
    let path = files
        .keys()
        .max_by_key(|p| files[*p].len())
        .expect("file")
        .clone();
    let old = files.remove(&path).expect("the biggest");
    read_exactly(&files);
    assert!(
        emu.stat("storage_requests") > 0,
        "content came from the storage host"
    );
    files.insert(path.clone(), old);
    let (guid, key) = guid_and_key(&path);
    let mut f = std::fs::File::open(&path).expect("open");
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).expect("read head");
    assert!(head[..] == files[&path][..4096]);
    emu.control(
        "/_emulator/mutate",
        json!({"guid": guid, "contentKey": key}),
    );
    let mut rest = Vec::new();
    let err = f
        .read_to_end(&mut rest)
        .expect_err("a changed file must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop(f);
    let new_bytes = emu.content(&emu.token(), &guid, &key);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match timed_read(&path, Duration::from_secs(30)).0 {
            Ok(b) if b == new_bytes => break,
            Ok(b) => assert!(b == files[&path], "a mix of versions"),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}"),
        }
        assert!(Instant::now() < deadline, "the new version never appeared");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Content requests of `stat` then a full read of every file.
fn stat_and_read(emu: &Emulator, truth: &HashMap<PathBuf, Vec<u8>>) -> u64 {
    emu.reset_stats();
    for (path, want) in truth {
        let len = std::fs::metadata(path).expect("stat").len();
        assert_eq!(len, want.len() as u64, "size of {}", path.display());
    }
    read_exactly(truth);
    emu.stat("content_requests")
}

/// Items listed without `contentLength` show their true size and read exactly, at
/// one request more per such file at most.
#[test]
fn files_listed_without_a_size_show_their_true_size() {
    if !fuse_available() {
        return;
    }
    let tenant = ["--interactions", "12", "--seed", "3"];
    let emu = Emulator::start(&[&tenant[..], &["--omit-content-length", "0.3"]].concat());
    let m = Mount::start(&emu, &[]);
    let token = emu.token();
    let omitted = emu
        .interactions(&token, m.from, m.to)
        .iter()
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter(|c| c.get("contentLength").is_none())
        .count() as u64;
    assert!(omitted >= 5, "only {omitted} items without a size");
    let files = truth(&emu, &m);
    let requests = stat_and_read(&emu, &files);

    let plain = Emulator::start(&tenant);
    let pm = Mount::start(&plain, &[]);
    let baseline = stat_and_read(&plain, &truth(&plain, &pm));
    assert!(
        requests <= baseline + omitted,
        "{requests} content requests, {baseline} with sizes listed, {omitted} sizes left out"
    );
}
