//! What `vccfs doctor` found, and its two renderings: the checklist (one line per
//! finding, then a summary line) and the `--json` document for a bug report.
//!
//! Invariants:
//! - a [`Finding`] is one line: its level, what was seen, and what vccfs does about it;
//! - the report is usable (exit 0) exactly when no finding is [`Level::Fail`]; the
//!   reason of an unusable report is the first failure's one-line `reason`;
//! - every rendering passes through [`scrub`], which replaces the client secret and
//!   the bearer token with `<redacted>` wherever they might have been echoed (an error
//!   body, a header): the renderings are built only from redacted URLs and selected
//!   headers, and `scrub` is the second lock on that door.

use std::collections::BTreeMap;

use serde::Serialize;

/// How a finding bears on mounting the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// vccfs works as designed.
    Ok,
    /// vccfs works, slower or with less checking, or the point could not be checked.
    Warn,
    /// vccfs cannot work (or a class of reads will fail).
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Short name of the check (`token`, `search`, `ranges`, ...).
    pub check: &'static str,
    pub level: Level,
    /// What the tenant did.
    pub found: String,
    /// What vccfs will do about it.
    pub vccfs: String,
    /// For a failure: why vccfs cannot work, in one line (the exit message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, found: impl Into<String>, vccfs: impl Into<String>) -> Self {
        Self::new(check, Level::Ok, found, vccfs)
    }

    pub fn warn(check: &'static str, found: impl Into<String>, vccfs: impl Into<String>) -> Self {
        Self::new(check, Level::Warn, found, vccfs)
    }

    /// A failure; `reason` is the one line the command exits with.
    pub fn fail(
        check: &'static str,
        found: impl Into<String>,
        vccfs: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        let mut f = Self::new(check, Level::Fail, found, vccfs);
        f.reason = Some(reason.into());
        f
    }

    fn new(
        check: &'static str,
        level: Level,
        found: impl Into<String>,
        vccfs: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            level,
            found: found.into(),
            vccfs: vccfs.into(),
            reason: None,
        }
    }
}

/// One request the doctor sent, as it may be shown: URL redacted, selected headers.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Which step sent it (`token`, `search`, `content`, `storage`, ...).
    pub step: &'static str,
    pub method: String,
    /// Scheme, host, path; query values other than `start`, `end`, `limit` redacted.
    pub url: String,
    /// `None` when no answer came (the `error` says why).
    pub status: Option<u16>,
    /// From sending to the end of the body read (or of the failure).
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer's headers that matter here (content, validators, redirect, limits).
    pub headers: BTreeMap<String, String>,
    /// The rate-limit headers among them (`X-RateLimit-*`, `RateLimit-*`, `Retry-After`).
    pub rate_limit: BTreeMap<String, String>,
}

/// Counts and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub requests: usize,
    pub total_ms: u64,
    /// vccfs can mount this tenant.
    pub usable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Everything, as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub vccfs_version: &'static str,
    pub checked_at: String,
    pub api_url: String,
    pub auth_url: String,
    pub client_id: String,
    pub findings: Vec<Finding>,
    pub requests: Vec<Exchange>,
    pub summary: Summary,
}

impl Report {
    /// Fill in the summary from the findings and requests.
    pub fn summarise(&mut self) {
        let count = |l: Level| self.findings.iter().filter(|f| f.level == l).count();
        let reason = self
            .findings
            .iter()
            .find(|f| f.level == Level::Fail)
            .map(|f| f.reason.clone().unwrap_or_else(|| f.found.clone()));
        self.summary = Summary {
            ok: count(Level::Ok),
            warn: count(Level::Warn),
            fail: count(Level::Fail),
            requests: self.requests.len(),
            total_ms: self.requests.iter().map(|r| r.latency_ms).sum(),
            usable: reason.is_none(),
            reason,
        };
    }

    /// The checklist: one line per finding, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "vccfs doctor: {} (token {}) as client id {}\n",
            self.api_url, self.auth_url, self.client_id
        );
        for f in &self.findings {
            out.push_str(&format!(
                "{:<5} {:<18} {}: {}\n",
                f.level.label(),
                f.check,
                f.found,
                f.vccfs
            ));
        }
        let s = &self.summary;
        let verdict = match &s.reason {
            None => "vccfs can work with this tenant".to_string(),
            Some(r) => format!("vccfs cannot work with this tenant: {r}"),
        };
        out.push_str(&format!(
            "summary: {} ok, {} warn, {} fail; {} requests, {} ms in all: {verdict}\n",
            s.ok, s.warn, s.fail, s.requests, s.total_ms
        ));
        out
    }

    /// The `--json` document.
    pub fn render_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            ok: 0,
            warn: 0,
            fail: 0,
            requests: 0,
            total_ms: 0,
            usable: true,
            reason: None,
        }
    }
}

/// Shortest secret [`scrub`] replaces: a shorter one (a typo'd test secret such as
/// `wrong`) would blank out ordinary words of the report. Real client secrets and
/// tokens are far longer.
const MIN_SECRET: usize = 8;

/// `text` with every occurrence of each secret of at least [`MIN_SECRET`] characters
/// replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= MIN_SECRET) {
        out = out.replace(s, "<redacted>");
        // The JSON rendering escapes some characters: catch the escaped form too.
        let escaped = serde_json::to_string(s).unwrap_or_default();
        let inner = escaped.trim_matches('"');
        if inner != *s && inner.len() >= MIN_SECRET {
            out = out.replace(inner, "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_secrets_plain_and_escaped() {
        let t = r#"{"a":"x demo-secret y","b":"q\"uote-long"}"#;
        let s = scrub(t, &["demo-secret", "q\"uote-long", "ab"]);
        assert!(!s.contains("demo-secret"), "{s}");
        assert!(!s.contains(r#"q\"uote-long"#), "{s}");
        assert!(s.contains("\"a\""), "short secrets are not scrubbed: {s}");
    }

    #[test]
    fn one_failure_makes_the_report_unusable() {
        let mut r = Report {
            vccfs_version: "0",
            checked_at: String::new(),
            api_url: "a".into(),
            auth_url: "b".into(),
            client_id: "c".into(),
            findings: vec![
                Finding::ok("token", "fine", "nothing"),
                Finding::warn("ranges", "none", "whole files"),
            ],
            requests: Vec::new(),
            summary: Summary::default(),
        };
        r.summarise();
        assert!(r.summary.usable);
        r.findings.push(Finding::fail(
            "search",
            "HTTP 500",
            "cannot list",
            "search fails",
        ));
        r.findings
            .push(Finding::fail("content", "HTTP 500", "cannot read", "later"));
        r.summarise();
        assert!(!r.summary.usable);
        assert_eq!(r.summary.reason.as_deref(), Some("search fails"));
        let text = r.render_text();
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("warn  ranges")),
            "{text}"
        );
    }
}
