//! The views on a real mount: `calls/<day>/<name>/` (the same inodes as
//! `interactions/<guid>/`), `by-agent/` and `by-number/` symlinks, their cost (none once
//! the window is listed), erasure, and `--calls-name`. Expected names are computed here
//! from the emulator's own search results, not from vccfs's code.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::{fuse_available, Emulator, Mount, BIN};

fn field(v: &Value) -> String {
    let s = v.as_str().unwrap_or("");
    if s.is_empty() {
        return "-".into();
    }
    let mut out: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '+' | '@' | ',' | '=' => c,
            _ => '_',
        })
        .collect();
    out.truncate(64);
    out
}

fn start(i: &Value) -> time::OffsetDateTime {
    let s = i["start"].as_str().expect("start");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 start")
}

fn guid(i: &Value) -> String {
    i["guid"].as_str().expect("guid").to_string()
}

/// The documented default name of `i` (before collisions).
fn default_name(i: &Value) -> String {
    let t = start(i);
    format!(
        "{:02}-{:02}-{:02}_{}_{}_{}_{}_{}",
        t.hour(),
        t.minute(),
        t.second(),
        field(&i["direction"]),
        field(&i["connectFrom"]),
        field(&i["connectTo"]),
        field(&i["handlingAgents"][0]["id"]),
        &guid(i)[..8]
    )
}

/// `day` → guid → name, for `name_of`, collisions numbered by start then guid.
fn expected(
    items: &[Value],
    name_of: impl Fn(&Value) -> String,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut by_day: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for i in items {
        by_day
            .entry(start(i).date().to_string())
            .or_default()
            .push(i);
    }
    by_day
        .into_iter()
        .map(|(day, mut calls)| {
            calls.sort_by_key(|i| (start(i), guid(i)));
            let mut seen: BTreeMap<String, u32> = BTreeMap::new();
            let names = calls
                .into_iter()
                .map(|i| {
                    let n = name_of(i);
                    let k = seen.entry(n.clone()).or_insert(0);
                    *k += 1;
                    let name = if *k == 1 { n } else { format!("{n}~{k}") };
                    (guid(i), name)
                })
                .collect();
            (day, names)
        })
        .collect()
}

fn ls(p: &Path) -> BTreeSet<String> {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("ls {}: {e}", p.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn purpose(emu: &Emulator, p: &str) -> u64 {
    emu.stats()["requests_by_purpose"][p].as_u64().unwrap_or(0)
}

fn ext(content_type: &str) -> &'static str {
    match content_type {
        "audio/wav" | "audio/x-wav" => ".wav",
        "application/json" => ".json",
        "video/webm" => ".webm",
        other => panic!("the emulator serves {other}: extend the test"),
    }
}

/// The documented file names of `i`'s content: `(name, contentKey)`.
fn files(i: &Value) -> Vec<(String, String)> {
    let content = i["content"].as_array().expect("content");
    let kind = |c: &Value| c["type"].as_str().expect("type").to_string();
    let mut nth: BTreeMap<String, u32> = BTreeMap::new();
    content
        .iter()
        .map(|c| {
            let k = kind(c);
            let many = content.iter().filter(|o| kind(o) == k).count() > 1;
            let e = ext(c["contentType"].as_str().expect("contentType"));
            let name = match many {
                false => format!("{k}{e}"),
                true => {
                    let n = nth.entry(k.clone()).or_insert(0);
                    *n += 1;
                    format!("{k}-{n}{e}")
                }
            };
            (name, c["contentKey"].as_str().expect("key").to_string())
        })
        .collect()
}

fn vccfs(args: &[&str]) {
    let out = Command::new(BIN).args(args).output().expect("vccfs");
    assert!(
        out.status.success(),
        "vccfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn views_name_the_api_calls_share_inodes_and_cost_nothing_once_listed() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "300", "--days", "2", "--seed", "25"]);
    let m = Mount::start(&emu, &[]);
    let token = emu.token();
    let items = emu.interactions(&token, m.from, m.to);
    assert!(items.len() > 100, "{} interactions", items.len());
    let want = expected(&items, default_name);

    // The window listed once; from here on the views make no search.
    let listed = ls(&m.interactions_dir());
    assert_eq!(listed.len(), items.len());
    let searches = purpose(&emu, "listing");

    let calls = m.path.join("calls");
    for (day, names) in &want {
        let got = ls(&calls.join(day));
        let names: BTreeSet<String> = names.values().cloned().collect();
        assert_eq!(got, names, "calls/{day}");
    }

    // Files: documented names, the same inodes and bytes as their twins, fetched once.
    let picked: Vec<&Value> = items
        .iter()
        .filter(|i| i["content"].as_array().is_some_and(|c| c.len() >= 2))
        .take(3)
        .collect();
    assert!(!picked.is_empty());
    for i in picked {
        let g = guid(i);
        let day = start(i).date().to_string();
        let dir = calls.join(&day).join(&want[&day][&g]);
        let mut names: BTreeSet<String> = files(i).into_iter().map(|(n, _)| n).collect();
        names.insert("interaction.json".into());
        assert_eq!(ls(&dir), names, "{}", dir.display());
        for (name, key) in files(i) {
            let view = dir.join(&name);
            let twin = m.interactions_dir().join(&g).join(&key);
            let (a, b) = (
                std::fs::metadata(&view).expect("stat view"),
                std::fs::metadata(&twin).expect("stat twin"),
            );
            assert_eq!(a.ino(), b.ino(), "{name} and {key}: one inode");
            assert_eq!(a.nlink(), 2);
            let content = purpose(&emu, "content");
            let bytes = std::fs::read(&view).expect("read through the view");
            let fetched = purpose(&emu, "content") - content;
            assert_eq!(bytes, std::fs::read(&twin).expect("read the twin"));
            assert_eq!(
                purpose(&emu, "content") - content,
                fetched,
                "the twin was fetched again"
            );
            assert_eq!(bytes, emu.content(&token, &g, &key));
        }
        let meta = std::fs::metadata(dir.join("interaction.json")).expect("meta");
        let twin = m.interactions_dir().join(&g).join(".interaction.json");
        assert_eq!(meta.ino(), std::fs::metadata(twin).expect("twin").ino());
    }

    // by-agent and by-number: exactly the API's calls of that agent or number.
    let mut agents: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut numbers: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for i in &items {
        let day = start(i).date().to_string();
        let name = want[&day][&guid(i)].clone();
        for a in i["handlingAgents"].as_array().into_iter().flatten() {
            let id = field(&a["id"]);
            agents
                .entry(id)
                .or_default()
                .entry(day.clone())
                .or_default()
                .insert(name.clone());
        }
        for n in [&i["connectFrom"], &i["connectTo"]] {
            if n.as_str().is_some_and(|s| !s.is_empty()) {
                let n = field(n);
                numbers
                    .entry(n)
                    .or_default()
                    .entry(day.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    assert_eq!(
        ls(&m.path.join("by-agent")),
        agents.keys().cloned().collect()
    );
    for (view, index) in [("by-agent", &agents), ("by-number", &numbers)] {
        for (key, days) in index.iter().take(4) {
            let dir = m.path.join(view).join(key);
            assert_eq!(ls(&dir), days.keys().cloned().collect(), "{view}/{key}");
            for (day, names) in days {
                assert_eq!(&ls(&dir.join(day)), names, "{view}/{key}/{day}");
                let name = names.iter().next().expect("a call");
                let link = dir.join(day).join(name);
                let target = std::fs::read_link(&link).expect("readlink");
                assert_eq!(target, Path::new(&format!("../../../calls/{day}/{name}")));
                assert!(std::fs::metadata(&link).expect("follow").is_dir());
            }
        }
    }
    assert_eq!(purpose(&emu, "listing"), searches, "the views searched");

    // Deleted at the source (and re-listed), or erased: out of every view.
    let gone: Vec<&Value> = items
        .iter()
        .filter(|i| i["handlingAgents"][0]["id"].is_string())
        .take(2)
        .collect();
    let (deleted, erased) = (gone[0], gone[1]);
    emu.control("/_emulator/delete", json!({ "guid": guid(deleted) }));
    let mnt = m.path.to_string_lossy().to_string();
    vccfs(&["refresh", &mnt, &start(deleted).date().to_string()]);
    vccfs(&["erase", &mnt, &guid(erased)]);
    for i in [deleted, erased] {
        let day = start(i).date().to_string();
        let name = &want[&day][&guid(i)];
        assert!(!ls(&calls.join(&day)).contains(name), "calls/{day}/{name}");
        assert!(!calls.join(&day).join(name).exists());
        let agent = field(&i["handlingAgents"][0]["id"]);
        let in_agent = m.path.join("by-agent").join(&agent).join(&day);
        assert!(
            !in_agent.exists() || !ls(&in_agent).contains(name),
            "by-agent/{agent}/{day}/{name}"
        );
        let from = field(&i["connectFrom"]);
        let in_number = m.path.join("by-number").join(&from).join(&day);
        assert!(
            !in_number.join(name).exists(),
            "by-number/{from}/{day}/{name}"
        );
    }
    m.stop();
}

#[test]
fn a_template_without_the_guid_still_names_every_call_once() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "120", "--days", "2", "--seed", "26"]);
    let m = Mount::start(&emu, &["--calls-name", "{date}_{agent}"]);
    let token = emu.token();
    let items = emu.interactions(&token, m.from, m.to);
    let want = expected(&items, |i| {
        format!(
            "{}_{}",
            start(i).date(),
            field(&i["handlingAgents"][0]["id"])
        )
    });
    let mut numbered = 0;
    for (day, names) in &want {
        let got = ls(&m.path.join("calls").join(day));
        assert_eq!(got.len(), names.len(), "calls/{day}: one name per call");
        assert_eq!(got, names.values().cloned().collect(), "calls/{day}");
        numbered += got.iter().filter(|n| n.contains('~')).count();
    }
    assert!(numbered > 0, "no collision to number");
    // An unknown field is refused before anything is mounted.
    let out = Command::new(BIN)
        .args(["mount", "/nonexistent", "--calls-name", "{nope}"])
        .output()
        .expect("vccfs mount");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("{nope}"));
    m.stop();
}
