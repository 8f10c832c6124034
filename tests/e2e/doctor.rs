//! `vccfs doctor` against the emulator: a checklist and exit 0 for a good tenant, within
//! 10 requests; wrong credentials named in one line; the redirect and the storage
//! host's own validators reported; `--json` parses and holds no secret and no token.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Emulator, BIN};

/// A tenant busy enough (about 100 interactions a day) that paging is exercised.
const BUSY: &[&str] = &["--interactions", "300", "--days", "3"];

fn doctor(emu: &Emulator, secret: &str, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("doctor")
        .args(["--api-url", &emu.api_url, "--auth-url", &emu.auth_url])
        .args(extra)
        .env("XDG_CACHE_HOME", crate::common::scratch_cache())
        .env("VCC_CLIENT_ID", &emu.client_id)
        .env("VCC_CLIENT_SECRET", secret)
        .output()
        .expect("run vccfs doctor")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every request the emulator saw, on any listener.
fn requests(emu: &Emulator) -> u64 {
    [
        "token_requests",
        "search_requests",
        "interaction_requests",
        "content_requests",
        "storage_requests",
    ]
    .iter()
    .map(|k| emu.stat(k))
    .sum()
}

/// The checklist line of `check`.
fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no {check} line in:\n{out}"))
}

/// The longest run of token-like characters (base64url): a bearer token would be one.
fn longest_token_like_run(s: &str) -> usize {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn doctor_passes_the_emulator_within_ten_requests() {
    let emu = Emulator::start(BUSY);
    let out = doctor(&emu, &emu.client_secret, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for check in [
        "token",
        "search",
        "paging",
        "window-cap",
        "end",
        "lookup",
        "ranges",
        "accept-ranges",
        "validators",
        "content-length",
        "rate-limit",
        "latency",
    ] {
        assert!(line(&stdout, check).starts_with("ok "), "{stdout}");
    }
    assert!(line(&stdout, "ranges").contains("206"), "{stdout}");
    assert!(line(&stdout, "validators").contains("ETag"), "{stdout}");
    assert!(line(&stdout, "window-cap").contains("refused"), "{stdout}");
    assert!(line(&stdout, "end").contains("exclusive"), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("summary:") && summary.contains("0 fail"),
        "{stdout}"
    );
    assert!(!stdout.contains(&emu.client_secret), "{stdout}");
    let n = requests(&emu);
    assert!(n <= 10, "{n} requests: {}", emu.stats());
    assert_eq!(
        emu.stats()["requests_by_purpose"]["doctor"].as_u64(),
        Some(n)
    );
}

#[test]
fn doctor_names_wrong_credentials_in_one_line() {
    let emu = Emulator::start(&["--interactions", "3"]);
    let wrong = "not-the-secret-at-all";
    let out = doctor(&emu, wrong, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("client id {:?}", emu.client_id))
            && stderr.contains("wrong client id or secret"),
        "{stderr}"
    );
    assert!(line(&stdout, "token").starts_with("fail "), "{stdout}");
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong));
    assert_eq!(
        emu.stat("search_requests"),
        0,
        "nothing after a refused token"
    );
}

#[test]
fn doctor_reports_the_redirect_and_the_storage_validators() {
    let emu = Emulator::start(&[
        "--interactions",
        "300",
        "--days",
        "3",
        "--redirect",
        "--storage-validators",
        "own",
    ]);
    let out = doctor(&emu, &emu.client_secret, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let redirect = line(&stdout, "redirect");
    assert!(
        redirect.contains("HTTP 302") && redirect.contains("another host"),
        "{stdout}"
    );
    assert!(
        redirect.contains("signature=<redacted>") && !redirect.contains("expires=1"),
        "the signed query is redacted: {redirect}"
    );
    assert!(
        line(&stdout, "storage-validators").contains("storage host sends its own validators"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "ranges").contains("storage host: HTTP 206"),
        "{stdout}"
    );
    assert_eq!(emu.stat("storage_requests"), 1);
    assert_eq!(emu.stat("auth_leaked"), 0, "no token to the storage host");
    assert!(requests(&emu) <= 10, "{}", emu.stats());
}

#[test]
fn doctor_json_parses_without_secret_or_token() {
    let emu = Emulator::start(&["--interactions", "300", "--days", "3", "--redirect"]);
    let out = doctor(&emu, &emu.client_secret, &["--json"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let doc: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["summary"]["usable"], Value::Bool(true), "{stdout}");
    assert_eq!(doc["client_id"].as_str(), Some(emu.client_id.as_str()));
    let findings = doc["findings"].as_array().expect("findings");
    assert!(findings
        .iter()
        .any(|f| f["check"] == "ranges" && f["level"] == "ok"));
    let requests = doc["requests"].as_array().expect("requests");
    assert!(!requests.is_empty() && requests.len() <= 10, "{stdout}");
    assert!(requests.iter().all(|r| r["latency_ms"].is_u64()));
    assert!(!stdout.contains(&emu.client_secret), "secret in:\n{stdout}");
    assert!(
        requests
            .iter()
            .all(|r| r["headers"].get("authorization").is_none()),
        "{stdout}"
    );
    assert!(!stdout.contains("access_token"), "{stdout}");
    // The emulator's tokens are 43 base64url characters; nothing that long is shown.
    assert!(
        longest_token_like_run(&stdout) < 40,
        "a token-like run in:\n{stdout}"
    );
    assert!(stdout.contains("signature=<redacted>"), "{stdout}");
}

#[test]
fn doctor_names_an_unreachable_host() {
    let out = Command::new(BIN)
        .args([
            "doctor",
            "--api-url",
            "http://127.0.0.1:1/interaction-content",
        ])
        .env("VCC_CLIENT_ID", "someone")
        .env("VCC_CLIENT_SECRET", "some-long-secret")
        .output()
        .expect("run vccfs doctor");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach 127.0.0.1:1"), "{stderr}");
}
