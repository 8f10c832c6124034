//! How one call survives transient failures: exponential backoff with jitter, the
//! server's `Retry-After`, and a bounded total time.

use std::time::{Duration, Instant};

use rand::Rng;

use super::token::AccessToken;
use super::ApiError;

/// Why an attempt did not produce a value.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth sending again, after `wait` if the server said so.
    Retry {
        err: ApiError,
        wait: Option<Duration>,
    },
    /// The token was rejected (401): fetch a new one and send again.
    Reauth {
        rejected: AccessToken,
        err: ApiError,
    },
    /// Final.
    Fatal(ApiError),
}

impl Failure {
    pub(crate) fn retry(err: ApiError) -> Self {
        Failure::Retry { err, wait: None }
    }
}

/// Retry bookkeeping of one call.
#[derive(Debug)]
pub(crate) struct RetryState {
    started: Instant,
    deadline: Duration,
    attempts: u32,
    reauths: u32,
}

/// A call may ask for a fresh token this many times.
const MAX_REAUTHS: u32 = 3;
const BASE_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(2);

impl RetryState {
    pub(crate) fn new(deadline: Duration) -> Self {
        RetryState {
            started: Instant::now(),
            deadline,
            attempts: 0,
            reauths: 0,
        }
    }

    /// May the call ask for a new token once more?
    pub(crate) fn allow_reauth(&mut self) -> bool {
        self.reauths += 1;
        self.reauths <= MAX_REAUTHS
    }

    /// Sleep before the next attempt, or give up with the error to surface when the
    /// deadline would pass.
    pub(crate) async fn pause(
        &mut self,
        err: ApiError,
        wait: Option<Duration>,
    ) -> Result<(), ApiError> {
        self.attempts += 1;
        let delay = wait.unwrap_or_else(|| backoff(self.attempts));
        let elapsed = self.started.elapsed();
        if elapsed + delay > self.deadline {
            return Err(give_up(err, elapsed));
        }
        tracing::debug!(attempt = self.attempts, delay_ms = delay.as_millis() as u64, error = %err, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// Exponential backoff with jitter: attempt n waits a random time in [d/2, d],
/// d = min(50 ms * 2^(n-1), 2 s).
pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let d = exp.min(MAX_DELAY);
    let ms = d.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms.max(1)))
}

/// The error a call surfaces once its retry time is used up.
fn give_up(err: ApiError, waited: Duration) -> ApiError {
    match err {
        ApiError::RateLimited { what, .. } => ApiError::RateLimited { what, waited },
        ApiError::Timeout { what, detail, .. } => ApiError::Timeout {
            what,
            waited,
            detail,
        },
        other => other,
    }
}

/// Parse `Retry-After`: delay-seconds or an HTTP date. Capped at one minute.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = crate::util::parse_http_date(v)?;
        let now = time::OffsetDateTime::now_utc();
        let diff = when - now;
        Duration::try_from(diff).unwrap_or(Duration::ZERO)
    };
    Some(d.min(Duration::from_secs(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        for n in 1..20 {
            let d = backoff(n);
            assert!(d <= MAX_DELAY, "{n}: {d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(50));
        assert!(backoff(8) >= Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("9999"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn deadline_surfaces_error() {
        let mut s = RetryState::new(Duration::from_millis(50));
        let err = ApiError::Timeout {
            what: "x".into(),
            waited: Duration::ZERO,
            detail: "stalled".into(),
        };
        let r = s.pause(err, Some(Duration::from_secs(1))).await;
        assert!(matches!(r, Err(ApiError::Timeout { .. })));
    }
}
