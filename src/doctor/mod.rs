//! `vccfs doctor`: how does *this* tenant behave? Every figure vccfs was tuned with was
//! measured against emulators; the doctor asks the real API the questions the docs
//! leave open (api.md §11) and prints a checklist of what vccfs will do about each
//! answer.
//!
//! Steps, in order, each request timed:
//! 1. token (`checks::token`): a refusal ends the run, naming the client id;
//! 2. search of the last day, limit 10 (`checks::search`); a second page if there is
//!    a continuation token; the last 7 days if the last day is empty; one 8-day window
//!    (the 7-day cap); one 1-second window ending exactly at a listed interaction's
//!    start (is `end` inclusive?);
//! 3. `GET /interactions/{guid}` of the interaction holding the chosen item;
//! 4. one `Range: bytes=0-1023` content GET of the smallest item bigger than 1 KiB
//!    (so that a 206 proves ranges; else the smallest), a redirect followed by hand
//!    without the bearer token (`content`); then rate-limit headers and latencies over
//!    every answer.
//!
//! Invariants:
//! - at most [`probe::MAX_REQUESTS`] (10) requests, enforced by the [`probe::Prober`];
//!   the plan above needs 8 at most;
//! - nothing is retried: a 429 or a 5xx is reported as it came;
//! - the client secret and the token are never part of any output: findings are
//!   built from statuses, selected headers and redacted URLs, and the rendered text
//!   is scrubbed of both ([`report::scrub`]) before it is printed;
//! - the command succeeds exactly when no finding is `fail`; otherwise it fails with
//!   the first failure's one-line reason ([`DoctorError`]).

mod checks;
mod content;
mod probe;
mod report;

use std::time::Duration;

use zeroize::Zeroizing;

use report::{Finding, Report};

use crate::api::ApiConfig;
use crate::model::Interaction;
use probe::{NoAnswer, Prober};

/// Why the tenant cannot be used; one line (main prints `vccfs: error: {this}`).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// The checklist has a failure: its reason.
    #[error("{0}")]
    Unusable(String),
    /// The doctor could not run at all (an HTTP client could not be built).
    #[error("doctor: {0}")]
    Setup(String),
}

/// Run every check against the tenant of `cfg`, print the checklist (or `--json`),
/// and succeed when vccfs can work with the tenant.
pub async fn run(cfg: &ApiConfig, json: bool) -> Result<(), DoctorError> {
    let (report, token) = examine(cfg).await?;
    let out = if json {
        report.render_json() + "\n"
    } else {
        report.render_text()
    };
    let secrets = [cfg.credentials.client_secret.as_str(), token.as_str()];
    print!("{}", report::scrub(&out, &secrets));
    match &report.summary.reason {
        None => Ok(()),
        Some(r) => Err(DoctorError::Unusable(report::scrub(r, &secrets))),
    }
}

/// What one run learned, and the token it was granted (for scrubbing only).
async fn examine(cfg: &ApiConfig) -> Result<(Report, Zeroizing<String>), DoctorError> {
    let prober =
        Prober::new(cfg.connect_timeout, Duration::from_secs(15)).map_err(DoctorError::Setup)?;
    let mut d = Doctor {
        cfg,
        p: prober,
        findings: Vec::new(),
        token: Zeroizing::new(String::new()),
    };
    d.all().await;
    d.findings.extend(content::rate_limits(&d.p.log));
    d.findings.push(content::latencies(&d.p.log));
    let mut report = Report {
        vccfs_version: env!("CARGO_PKG_VERSION"),
        checked_at: crate::util::format_rfc3339(
            time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
        ),
        api_url: probe::redact_url(&checks::parse_url(&cfg.api_url)),
        auth_url: probe::redact_url(&checks::parse_url(&cfg.auth_url)),
        client_id: cfg.credentials.client_id.clone(),
        findings: d.findings,
        requests: d.p.log,
        summary: report::Summary::default(),
    };
    report.summarise();
    Ok((report, d.token))
}

/// The run's state.
pub(crate) struct Doctor<'a> {
    cfg: &'a ApiConfig,
    p: Prober,
    findings: Vec<Finding>,
    /// The granted token: sent to the API only, never shown.
    token: Zeroizing<String>,
}

/// A step could not go on (its finding is already recorded).
pub(crate) struct Stop;

impl Doctor<'_> {
    async fn all(&mut self) {
        if self.token().await.is_err() {
            return;
        }
        let Ok(listed) = self.search().await else {
            return;
        };
        self.window_cap().await;
        let Some((interaction, key)) = content::choose(&listed) else {
            self.findings.push(Finding::warn(
                "content",
                "no interaction with content in the last 7 days",
                "lookup, ranges, validators and sizes were not checked; run vccfs doctor again once there are recordings",
            ));
            return;
        };
        self.end_inclusive(interaction).await;
        self.lookup(interaction).await;
        self.content(interaction, &key).await;
    }

    fn record(&mut self, f: Finding) {
        self.findings.push(f);
    }

    /// A request that got no answer: one failure naming the host.
    fn unreachable(&mut self, check: &'static str, what: &str, e: &NoAnswer) {
        let line = format!("{what}: {e}");
        self.record(Finding::fail(
            check,
            line.clone(),
            "vccfs cannot work without it; check the host name, --region / --api-url / --auth-url, proxies and firewalls",
            line,
        ));
    }
}

/// The listed interactions the later steps pick from.
pub(crate) type Listed = Vec<Interaction>;
