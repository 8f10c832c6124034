//! The access audit log on a real mount (`--audit-log`): one line per open of a file,
//! written at its release, with who opened it, which tier served its first byte, how
//! many bytes vccfs served and the result; a failed read's errno; reopened on SIGHUP.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{fuse_available, Emulator, Mount, BIN};

/// `(guid, content keys)` of interactions of the mount's window with two or more files.
fn interactions(emu: &Emulator, m: &Mount) -> Vec<(String, Vec<String>)> {
    let token = emu.token();
    emu.interactions(&token, m.from, m.to)
        .into_iter()
        .filter_map(|i| {
            let keys: Vec<String> = i["content"]
                .as_array()?
                .iter()
                .filter_map(|c| c["contentKey"].as_str().map(str::to_string))
                .collect();
            let guid = i["guid"].as_str()?.to_string();
            (keys.len() >= 2).then_some((guid, keys))
        })
        .collect()
}

/// `cat FILE`: its bytes, or `None` if it failed.
fn cat(path: &Path) -> Option<Vec<u8>> {
    let out = Command::new("cat").arg(path).output().expect("run cat");
    out.status.success().then_some(out.stdout)
}

/// The `open` lines of the log at `path`.
fn opens(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|v| v["event"] == "open")
        .collect()
}

/// The one line of `lines` for `guid`/`key`.
fn line<'a>(lines: &'a [Value], guid: &str, key: &str) -> &'a Value {
    let found: Vec<&Value> = lines
        .iter()
        .filter(|l| l["guid"] == guid && l["key"] == key)
        .collect();
    assert_eq!(found.len(), 1, "one line for {guid}/{key} in {lines:#?}");
    found[0]
}

fn check_cat(l: &Value, tier: &str, bytes: usize) {
    assert_eq!(l["uid"], 0, "{l}");
    assert_eq!(l["gid"], 0, "{l}");
    assert!(l["pid"].as_u64().unwrap_or(0) > 0, "{l}");
    assert_eq!(l["process"], "cat", "{l}");
    assert_eq!(l["tier"], tier, "{l}");
    assert_eq!(l["bytes"].as_u64(), Some(bytes as u64), "{l}");
    assert_eq!(l["result"], "ok", "{l}");
    let time = l["time"].as_str().expect("time");
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 time");
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn audit_log_records_each_open_with_its_tier_bytes_and_result() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "12", "--seed", "21"]);
    let scratch = tempfile::tempdir().expect("tempdir");
    let log: PathBuf = scratch.path().join("audit.log");
    let cache = scratch.path().join("cache");
    let flags = [
        "--audit-log",
        log.to_str().expect("utf-8"),
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ];

    // 1. Cold: two files and the metadata, each opened once by `cat`.
    let m = Mount::start(&emu, &flags);
    let picked = interactions(&emu, &m);
    let (guid, keys) = picked
        .first()
        .cloned()
        .expect("an interaction with two files");
    let dir = m.interactions_dir().join(&guid);
    let a = cat(&dir.join(&keys[0])).expect("cat the first file");
    let b = cat(&dir.join(&keys[1])).expect("cat the second file");
    let meta = cat(&dir.join(".interaction.json")).expect("cat the metadata");
    m.stop();
    let mode = std::fs::metadata(&log)
        .expect("the log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the log's mode");
    let lines = opens(&log);
    check_cat(line(&lines, &guid, &keys[0]), "api", a.len());
    check_cat(line(&lines, &guid, &keys[1]), "api", b.len());
    check_cat(
        line(&lines, &guid, ".interaction.json"),
        "memory",
        meta.len(),
    );

    // 2. Remounted on the same cache directory: the disk tier serves it.
    let m = Mount::start(&emu, &flags);
    let dir = m.interactions_dir().join(&guid);
    let again = cat(&dir.join(&keys[0])).expect("cat again");
    assert_eq!(again, a);
    // 3. Moved away and SIGHUP: later lines go to a new file of the same name.
    let moved = scratch.path().join("audit.log.1");
    wait_until("the remount's line", Duration::from_secs(5), || {
        opens(&log).len() > lines.len()
    });
    std::fs::rename(&log, &moved).expect("move the log");
    let hup = Command::new("kill")
        .args(["-HUP", &m.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    wait_until("a new log after SIGHUP", Duration::from_secs(5), || {
        log.exists()
    });
    let b2 = cat(&dir.join(&keys[1])).expect("cat after HUP");
    // 4. A file the API no longer has, never read before: the read fails, logged.
    let (gone, gone_keys) = picked.get(1).cloned().expect("a second interaction");
    emu.control("/_emulator/delete", json!({ "guid": gone }));
    let failed = m.interactions_dir().join(&gone).join(&gone_keys[0]);
    assert!(cat(&failed).is_none(), "a deleted file read");
    // 5. Requests on the status socket: `vccfs erase`, `vccfs refresh`.
    let (erased, _) = picked.get(2).cloned().expect("a third interaction");
    for args in [
        vec!["erase", m.path.to_str().expect("utf-8"), &erased],
        vec!["refresh", m.path.to_str().expect("utf-8")],
    ] {
        let ok = Command::new(BIN)
            .args(&args)
            .output()
            .expect("run vccfs")
            .status
            .success();
        assert!(ok, "vccfs {args:?}");
    }
    m.stop();
    let all: Vec<Value> = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let e = all
        .iter()
        .find(|l| l["event"] == "erase")
        .expect("an erase line");
    assert_eq!(e["guid"], erased.as_str(), "{e}");
    assert_eq!(e["uid"], 0, "{e}");
    assert_eq!(e["process"], "vccfs", "{e}");
    assert!(e["removed"].is_object(), "{e}");
    let r = all
        .iter()
        .find(|l| l["event"] == "refresh")
        .expect("a refresh line");
    assert_eq!(r["days"], json!([]), "{r}");
    assert_eq!(r["result"], "ok", "{r}");

    let old = opens(&moved);
    let remount: Vec<&Value> = old
        .iter()
        .filter(|l| l["guid"] == guid.as_str() && l["key"] == keys[0].as_str())
        .collect();
    assert_eq!(remount.len(), 2, "{old:#?}");
    check_cat(remount[1], "disk", a.len());
    let new = opens(&log);
    assert!(
        new.iter()
            .all(|l| l["key"] != keys[0].as_str() || l["guid"] != guid.as_str()),
        "a line written before the HUP in the new file: {new:#?}"
    );
    check_cat(line(&new, &guid, &keys[1]), "disk", b2.len());
    let f = line(&new, &gone, &gone_keys[0]);
    let result = f["result"].as_str().expect("result");
    assert!(result.starts_with('E') && result != "ok", "{f}");
    assert_eq!(f["process"], "cat");
    let mode = std::fs::metadata(&log)
        .expect("the new log")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the new log's mode");
}
