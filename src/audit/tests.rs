use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use time::macros::datetime;

use super::line::{self, Caller, EraseLine, OpenLine, RefreshLine, Tier};
use super::{AuditError, AuditLog};

fn caller() -> Caller {
    Caller {
        uid: 1000,
        gid: 100,
        pid: 4242,
        process: "cat".into(),
    }
}

#[test]
fn an_open_line_has_the_documented_fields_in_order() {
    let c = caller();
    let l = line::to_line(&OpenLine {
        time: datetime!(2026-11-02 08:15:00.25 UTC),
        event: "open",
        caller: &c,
        guid: "0f8fad5b-d9cb-469f-a165-70867728950e",
        key: "transcript.json",
        tier: Tier::Disk.name(),
        bytes: 5120,
        result: "ok",
    })
    .expect("line");
    assert_eq!(
        l,
        "{\"time\":\"2026-11-02T08:15:00.25Z\",\"event\":\"open\",\"uid\":1000,\"gid\":100,\"pid\":4242,\"process\":\"cat\",\"guid\":\"0f8fad5b-d9cb-469f-a165-70867728950e\",\"key\":\"transcript.json\",\"tier\":\"disk\",\"bytes\":5120,\"result\":\"ok\"}\n"
    );
}

#[test]
fn erase_and_refresh_lines() {
    let c = caller();
    let removed = serde_json::json!({"catalog_entries": 1});
    let e = line::to_line(&EraseLine {
        time: datetime!(2026-11-02 08:15:00 UTC),
        event: "erase",
        caller: &c,
        guid: "g",
        removed: Some(&removed),
        result: "ok",
    })
    .expect("line");
    let v: serde_json::Value = serde_json::from_str(&e).expect("json");
    assert_eq!(v["event"], "erase");
    assert_eq!(v["removed"]["catalog_entries"], 1);
    assert_eq!(v["uid"], 1000);
    let r = line::to_line(&RefreshLine {
        time: datetime!(2026-11-02 08:15:00 UTC),
        event: "refresh",
        caller: &c,
        days: &["2026-11-01"],
        result: "ok",
    })
    .expect("line");
    let v: serde_json::Value = serde_json::from_str(&r).expect("json");
    assert_eq!(v["days"][0], "2026-11-01");
    assert_eq!(v["process"], "cat");
}

#[test]
fn tiers_round_trip_through_u8() {
    for t in [
        Tier::None,
        Tier::Memory,
        Tier::Disk,
        Tier::Redis,
        Tier::Api,
        Tier::Passthrough,
    ] {
        assert_eq!(Tier::from_u8(t as u8), t);
    }
    assert_eq!(Tier::from_u8(200), Tier::None);
    assert_eq!(Tier::of_store("shared").name(), "redis");
}

#[test]
fn the_process_name_of_this_process_and_of_none() {
    let me = line::process_name(std::process::id());
    assert!(!me.is_empty() && !me.ends_with('\n'), "{me:?}");
    assert_eq!(line::process_name(0), "");
    assert_eq!(line::process_name(u32::MAX), "");
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_file_is_created_0600_and_lines_arrive_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::start(&path).expect("start");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(log.push("{\"a\":1}\n".into()));
    wait_for("the line", || {
        std::fs::read_to_string(&path).unwrap_or_default() == "{\"a\":1}\n"
    });
    wait_for("the count", || log.counters().lines() == 1);
    log.finish();
    assert!(
        !log.push("late\n".into()),
        "pushes after finish are dropped"
    );
    assert_eq!(log.counters().dropped(), 1);
}

#[test]
fn a_symlink_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target");
    std::fs::write(&target, "").expect("write");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let err = AuditLog::start(&link).expect_err("refused");
    assert!(matches!(err, AuditError::Symlink(_)), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let err = AuditLog::start(dir.path()).expect_err("a directory is refused");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn a_full_queue_drops_and_counts_and_never_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A FIFO nobody reads would block the writer, but open refuses FIFOs; instead
    // stop the writer from draining by holding many lines in a queue of 4.
    let path = dir.path().join("audit.log");
    let log = AuditLog::with_queue(&path, 4).expect("start");
    let started = Instant::now();
    let mut dropped = 0;
    for i in 0..100_000 {
        if !log.push(format!("{i}\n")) {
            dropped += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(2), "pushing waited");
    assert!(dropped > 0, "a queue of 4 took 100000 lines at once");
    assert_eq!(log.counters().dropped(), dropped);
    log.finish();
    let written = std::fs::read_to_string(&path)
        .expect("read")
        .lines()
        .count() as u64;
    assert_eq!(written + dropped, 100_000);
    assert_eq!(log.counters().lines(), written);
}

#[test]
fn reopen_writes_to_a_new_file_after_a_move() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.1");
    let log = AuditLog::start(&path).expect("start");
    log.push("before\n".into());
    wait_for("the first line", || log.counters().lines() == 1);
    std::fs::rename(&path, &moved).expect("rename");
    log.push("still old\n".into());
    log.reopen();
    log.push("after\n".into());
    log.finish();
    let old = std::fs::read_to_string(&moved).expect("old");
    let new = std::fs::read_to_string(&path).expect("new");
    assert!(old.starts_with("before\n"), "{old:?}");
    assert!(new.ends_with("after\n"), "{new:?}");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
