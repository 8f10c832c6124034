//! The options of `vccfs emulator` ([`EmulatorArgs`]): parsed by clap from the command
//! line, or from flags by in-process callers (demo, tests), and checked.

use std::net::SocketAddr;
use std::path::PathBuf;

use time::OffsetDateTime;

use super::faults::{check_probability, FaultConfig};
use super::EmulatorError;

/// Options of `vccfs emulator`.
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port (the banner shows the real one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// OAuth2 client id accepted by the token endpoint.
    #[arg(long, default_value = "demo-client")]
    pub client_id: String,
    /// OAuth2 client secret accepted by the token endpoint.
    #[arg(long, default_value = "demo-secret")]
    pub client_secret: String,
    /// Lifetime of issued tokens, seconds.
    #[arg(long, default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl: u64,

    /// Seed of the synthetic tenant (same seed, same flags, same hour: same tenant).
    #[arg(long, default_value_t = 42, help_heading = "Tenant")]
    pub seed: u64,
    /// Number of synthetic interactions.
    #[arg(long, default_value_t = 300, help_heading = "Tenant")]
    pub interactions: usize,
    /// The interactions are spread over this many days before now.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650), help_heading = "Tenant")]
    pub days: u32,
    /// End of the synthetic tenant's span (RFC 3339): the --interactions start in the
    /// --days before it, and no new ones appear. Default: now, rounded down to the
    /// hour, and new interactions keep arriving at the same rate while the emulator
    /// runs (searches see those that have started).
    #[arg(long, value_name = "TIME", value_parser = end_time, help_heading = "Tenant")]
    pub end: Option<OffsetDateTime>,
    /// Add one screen recording of exactly this many MiB to the newest call.
    #[arg(long, value_name = "MIB", help_heading = "Tenant")]
    pub big_file_mib: Option<u64>,
    /// Make the newest call's recording last exactly this many seconds (a long WAV:
    /// 16 000 bytes a second, so 3600 is about 55 MiB).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=86_400), help_heading = "Tenant")]
    pub long_call_secs: Option<u32>,
    /// Serve the interactions in this directory instead of a synthetic tenant (layout:
    /// see DATA_DIR.md).
    #[arg(long, value_name = "DIR", help_heading = "Tenant")]
    pub data_dir: Option<PathBuf>,
    /// Treat the search `end` as inclusive (default: exclusive; the docs disagree).
    #[arg(long, help_heading = "Tenant")]
    pub end_inclusive: bool,
    /// Leave `contentLength` out of this share (0..1) of the content items listed by
    /// the search and `GET /interactions/{guid}`; the same items each time for a given
    /// --seed. Content responses still give the size (Content-Range, Content-Length);
    /// /_emulator/tenant and /_emulator/mutate keep it (ground truth).
    #[arg(long, default_value_t = 0.0, value_name = "RATE", value_parser = probability, help_heading = "Tenant")]
    pub omit_content_length: f64,

    /// Delay added before every API, token and storage response, milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS", help_heading = "Network")]
    pub latency_ms: u64,
    /// Throttle each content response (one connection) to this many bytes per second.
    #[arg(long, value_name = "BYTES_PER_SEC", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Network")]
    pub bandwidth: Option<u64>,
    /// Allow this many /interaction-content requests per sliding minute (then 429 with
    /// Retry-After).
    #[arg(long, value_name = "RPM", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Network")]
    pub rate_limit: Option<u32>,
    /// Answer content GETs with 302 to a signed, expiring URL on a second listener.
    #[arg(long, help_heading = "Network")]
    pub redirect: bool,
    /// Lifetime of redirect URLs, seconds.
    #[arg(
        long,
        default_value_t = 300,
        value_name = "SECS",
        help_heading = "Network"
    )]
    pub redirect_ttl: u64,
    /// Address of the storage listener used by --redirect (another host name than
    /// --listen, so that clients must not forward the bearer token).
    #[arg(long, default_value = "127.0.0.2:0", help_heading = "Network")]
    pub storage_listen: SocketAddr,
    /// Validators (ETag, Last-Modified) of the storage host's responses with
    /// --redirect: `api` repeats the API's; `own` describes the stored object (its own
    /// strong ETag, a Last-Modified shortly after the item's lastModified), as a real
    /// object store does. Range, If-Range and the other conditionals are checked
    /// against the validators sent.
    #[arg(
        long,
        value_enum,
        default_value = "api",
        value_name = "WHOSE",
        help_heading = "Network"
    )]
    pub storage_validators: StorageValidators,

    /// Probability of a 503 on each /interaction-content request.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub fail_rate: f64,
    /// Probability that a content response's connection is reset mid-body.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub reset_rate: f64,
    /// Probability that a content response pauses --stall-ms part-way.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub stall_rate: f64,
    /// Length of an injected stall, milliseconds.
    #[arg(
        long,
        default_value_t = 2000,
        value_name = "MS",
        help_heading = "Faults"
    )]
    pub stall_ms: u64,
    /// Probability that a ranged GET is answered 200 with the full body.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub ignore_range_rate: f64,
    /// Probability that a ranged GET is answered 206 for a shifted range.
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub wrong_range_rate: f64,
    /// Probability that a content body ends early (fewer bytes than Content-Length).
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub short_body_rate: f64,
    /// Probability that a ranged GET's body runs past the range its Content-Range
    /// announces (sent chunked, so the extra bytes arrive).
    #[arg(long, default_value_t = 0.0, value_name = "P", value_parser = probability, help_heading = "Faults")]
    pub long_body_rate: f64,
    /// Answer the first N /interaction-content requests with 429 (Retry-After: 1).
    #[arg(long, default_value_t = 0, value_name = "N", help_heading = "Faults")]
    pub burst_429: u32,
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    check_probability("a probability", p)?;
    Ok(p)
}

fn end_time(s: &str) -> Result<OffsetDateTime, String> {
    super::search::parse_time(s)
        .ok_or_else(|| format!("{s:?} is not an ISO 8601 date and time, e.g. 2024-01-01T00:00:00Z"))
}

/// Parses no arguments, to get the CLI defaults.
#[derive(clap::Parser)]
struct DefaultArgs {
    #[command(flatten)]
    args: EmulatorArgs,
}

impl Default for EmulatorArgs {
    fn default() -> Self {
        Self::from_flags(&[]).expect("the emulator's default arguments parse")
    }
}

impl EmulatorArgs {
    /// Parse command-line flags (`["--interactions", "40", ...]`), as `vccfs emulator`
    /// would, for callers that start the emulator in-process (demo, tests).
    pub fn from_flags(flags: &[&str]) -> Result<Self, clap::Error> {
        use clap::Parser;
        let argv = std::iter::once("vccfs-emulator").chain(flags.iter().copied());
        DefaultArgs::try_parse_from(argv).map(|d| d.args)
    }

    /// Checks what clap cannot (the struct may be built in code).
    pub(super) fn validate(&self) -> Result<(), EmulatorError> {
        let rates = [
            ("--fail-rate", self.fail_rate),
            ("--reset-rate", self.reset_rate),
            ("--stall-rate", self.stall_rate),
            ("--ignore-range-rate", self.ignore_range_rate),
            ("--wrong-range-rate", self.wrong_range_rate),
            ("--short-body-rate", self.short_body_rate),
            ("--long-body-rate", self.long_body_rate),
            ("--omit-content-length", self.omit_content_length),
        ];
        for (name, p) in rates {
            check_probability(name, p).map_err(EmulatorError::InvalidArgs)?;
        }
        if self.days == 0 {
            return Err(EmulatorError::InvalidArgs(
                "--days must be at least 1".into(),
            ));
        }
        if self.token_ttl == 0 {
            return Err(EmulatorError::InvalidArgs(
                "--token-ttl must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn initial_faults(&self) -> FaultConfig {
        FaultConfig {
            latency_ms: self.latency_ms,
            bandwidth: self.bandwidth.unwrap_or(0),
            rate_limit: self.rate_limit.unwrap_or(0),
            fail_rate: self.fail_rate,
            reset_rate: self.reset_rate,
            stall_rate: self.stall_rate,
            stall_ms: self.stall_ms,
            ignore_range_rate: self.ignore_range_rate,
            wrong_range_rate: self.wrong_range_rate,
            short_body_rate: self.short_body_rate,
            long_body_rate: self.long_body_rate,
            burst_429: self.burst_429,
            down: false,
            token_ttl: self.token_ttl,
        }
    }
}

/// Whose validators the storage host sends (`--storage-validators`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StorageValidators {
    /// The stored object's own strong ETag and Last-Modified (its upload, a little after
    /// the item's lastModified).
    Own,
    /// The API's ETag and the item's `lastModified`.
    #[default]
    Api,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_cli() {
        let a = EmulatorArgs::default();
        assert_eq!(a.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            (a.client_id.as_str(), a.client_secret.as_str()),
            ("demo-client", "demo-secret")
        );
        assert_eq!(
            (a.seed, a.interactions, a.days, a.token_ttl),
            (42, 300, 30, 7200)
        );
        assert_eq!(a.storage_listen.to_string(), "127.0.0.2:0");
        assert!(!a.redirect && !a.end_inclusive && a.fail_rate == 0.0 && a.bandwidth.is_none());
        assert_eq!(a.storage_validators, StorageValidators::Api);
        assert_eq!(a.omit_content_length, 0.0);
        assert!(a.validate().is_ok());
        let bad = EmulatorArgs {
            reset_rate: 2.0,
            ..EmulatorArgs::default()
        };
        assert!(matches!(bad.validate(), Err(EmulatorError::InvalidArgs(_))));
        let bad = EmulatorArgs {
            omit_content_length: -0.1,
            ..EmulatorArgs::default()
        };
        assert!(matches!(bad.validate(), Err(EmulatorError::InvalidArgs(_))));
        let own = EmulatorArgs::from_flags(&["--storage-validators", "own"]).expect("parse");
        assert_eq!(own.storage_validators, StorageValidators::Own);
        assert!(EmulatorArgs::from_flags(&["--storage-validators", "mine"]).is_err());
        assert!(EmulatorArgs::from_flags(&["--omit-content-length", "1.5"]).is_err());
        assert!(a.end.is_none());
        let end = EmulatorArgs::from_flags(&["--end", "2024-01-01T00:00:00Z"]).expect("parse");
        assert_eq!(end.end.map(|t| t.unix_timestamp()), Some(1_704_067_200));
        assert!(EmulatorArgs::from_flags(&["--end", "soon"]).is_err());
        assert!(
            probability("0.5").is_ok() && probability("1.5").is_err() && probability("x").is_err()
        );
    }
}
