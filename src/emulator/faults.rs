//! Fault injection: the runtime-tunable knobs (set from the command line, changed with
//! `POST /_emulator/faults`) and the per-request dice.
//!
//! Probabilities apply per request: `fail_rate` to every `/interaction-content` request;
//! the others to content responses (API content route and storage host) that have a body.

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// The current fault and network settings (`GET /_emulator/faults`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Delay added before every API, token and storage response.
    pub latency_ms: u64,
    /// Content body throughput per response (one connection), bytes/s; 0 = unlimited.
    pub bandwidth: u64,
    /// `/interaction-content` requests allowed per sliding 60 s window; 0 = unlimited.
    pub rate_limit: u32,
    /// Probability of a 503 on an `/interaction-content` request.
    pub fail_rate: f64,
    /// Probability that a content body is cut by a connection reset.
    pub reset_rate: f64,
    /// Probability that a content body pauses `stall_ms` part-way.
    pub stall_rate: f64,
    /// Length of a stall.
    pub stall_ms: u64,
    /// Probability that a ranged GET is answered 200 with the full body.
    pub ignore_range_rate: f64,
    /// Probability that a ranged GET is answered with a shifted range (true
    /// `Content-Range`, wrong start).
    pub wrong_range_rate: f64,
    /// Probability that a content body stops early (fewer bytes than `Content-Length`,
    /// then the connection closes).
    pub short_body_rate: f64,
    /// Probability that a ranged body runs past the announced `Content-Range`.
    pub long_body_rate: f64,
    /// The next this-many `/interaction-content` requests get 429 (counts down).
    pub burst_429: u32,
    /// While true, every API, token and storage request's connection is dropped without
    /// a response (control routes keep working).
    pub down: bool,
    /// Lifetime of newly issued tokens, seconds.
    pub token_ttl: u64,
}

/// A partial update of [`FaultConfig`] (`POST /_emulator/faults`); absent fields keep
/// their value.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub latency_ms: Option<u64>,
    pub bandwidth: Option<u64>,
    pub rate_limit: Option<u32>,
    pub fail_rate: Option<f64>,
    pub reset_rate: Option<f64>,
    pub stall_rate: Option<f64>,
    pub stall_ms: Option<u64>,
    pub ignore_range_rate: Option<f64>,
    pub wrong_range_rate: Option<f64>,
    pub short_body_rate: Option<f64>,
    pub long_body_rate: Option<f64>,
    pub burst_429: Option<u32>,
    pub down: Option<bool>,
    pub token_ttl: Option<u64>,
    /// Invalidates every token issued so far (the next API call gets 401).
    pub revoke_tokens: Option<bool>,
}

/// Checks that `p` is a probability.
pub(crate) fn check_probability(name: &str, p: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{name} must be between 0 and 1, got {p}"))
    }
}

impl FaultPatch {
    /// Applies the patch to `cfg`, or explains why it is invalid (then nothing changes).
    pub fn apply(&self, cfg: &mut FaultConfig) -> Result<(), String> {
        let rates = [
            ("fail_rate", self.fail_rate),
            ("reset_rate", self.reset_rate),
            ("stall_rate", self.stall_rate),
            ("ignore_range_rate", self.ignore_range_rate),
            ("wrong_range_rate", self.wrong_range_rate),
            ("short_body_rate", self.short_body_rate),
            ("long_body_rate", self.long_body_rate),
        ];
        for (name, p) in rates {
            if let Some(p) = p {
                check_probability(name, p)?;
            }
        }
        if self.token_ttl == Some(0) {
            return Err("token_ttl must be at least 1".into());
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { cfg.$f = v; } )* };
        }
        set!(
            latency_ms,
            bandwidth,
            rate_limit,
            fail_rate,
            reset_rate,
            stall_rate,
            stall_ms,
            ignore_range_rate,
            wrong_range_rate,
            short_body_rate,
            long_body_rate,
            burst_429,
            down,
            token_ttl
        );
        Ok(())
    }
}

/// The live settings.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    cfg: RwLock<FaultConfig>,
}

/// What happens to a ranged request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFault {
    None,
    /// Answer 200 with the full body.
    Ignore,
    /// Answer 206 for a shifted range.
    Wrong,
    /// Answer 206 with the right `Content-Range` but a body that runs past it.
    Long,
}

/// Where and how a body is interrupted; `at` is an absolute offset in the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    Reset { at: u64 },
    Short { at: u64 },
    Stall { at: u64, ms: u64 },
}

/// True with probability `p`.
pub(crate) fn roll(p: f64) -> bool {
    p >= 1.0 || (p > 0.0 && rand::rng().random_bool(p))
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        Self {
            cfg: RwLock::new(cfg),
        }
    }

    /// A copy of the current settings.
    pub fn get(&self) -> FaultConfig {
        self.cfg.read().clone()
    }

    /// Applies a patch; returns the new settings.
    pub fn patch(&self, patch: &FaultPatch) -> Result<FaultConfig, String> {
        let mut cfg = self.cfg.write();
        let mut next = cfg.clone();
        patch.apply(&mut next)?;
        *cfg = next.clone();
        Ok(next)
    }

    /// Consumes one request of a 429 burst; true if this request must get 429.
    pub fn take_burst_429(&self) -> bool {
        let mut cfg = self.cfg.write();
        if cfg.burst_429 > 0 {
            cfg.burst_429 -= 1;
            true
        } else {
            false
        }
    }

    /// Dice for a ranged request.
    pub fn range_fault(cfg: &FaultConfig) -> RangeFault {
        if roll(cfg.ignore_range_rate) {
            RangeFault::Ignore
        } else if roll(cfg.wrong_range_rate) {
            RangeFault::Wrong
        } else if roll(cfg.long_body_rate) {
            RangeFault::Long
        } else {
            RangeFault::None
        }
    }

    /// Dice for a body covering `start..start+len`: at most one interruption (reset
    /// wins over short body, which wins over a stall).
    pub fn body_cut(cfg: &FaultConfig, start: u64, len: u64) -> Option<Cut> {
        if len == 0 {
            return None;
        }
        let mut rng = rand::rng();
        // Somewhere in the body, after at least one byte when there are two or more.
        let mut at = || start + rng.random_range(u64::from(len > 1)..len);
        if roll(cfg.reset_rate) {
            Some(Cut::Reset { at: at() })
        } else if roll(cfg.short_body_rate) {
            Some(Cut::Short { at: at() })
        } else if roll(cfg.stall_rate) && cfg.stall_ms > 0 {
            Some(Cut::Stall {
                at: at(),
                ms: cfg.stall_ms,
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_validates_and_applies() {
        let f = Faults::new(FaultConfig::default());
        let bad: FaultPatch = serde_json::from_str(r#"{"fail_rate": 1.5}"#).expect("json");
        assert!(f.patch(&bad).is_err());
        assert!(serde_json::from_str::<FaultPatch>(r#"{"nope": 1}"#).is_err());
        let good: FaultPatch =
            serde_json::from_str(r#"{"fail_rate": 0.5, "down": true, "burst_429": 2}"#)
                .expect("json");
        let cfg = f.patch(&good).expect("patch");
        assert!(cfg.down && cfg.fail_rate == 0.5);
        assert!(f.take_burst_429() && f.take_burst_429() && !f.take_burst_429());
    }

    #[test]
    fn dice_respect_certainty_and_bounds() {
        let cfg = FaultConfig {
            reset_rate: 1.0,
            ..FaultConfig::default()
        };
        for _ in 0..100 {
            match Faults::body_cut(&cfg, 10, 5) {
                Some(Cut::Reset { at }) => assert!((11..15).contains(&at)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(Faults::body_cut(&cfg, 0, 0), None);
        assert_eq!(Faults::body_cut(&FaultConfig::default(), 0, 100), None);
        assert!(!roll(0.0) && roll(1.0));
    }
}
