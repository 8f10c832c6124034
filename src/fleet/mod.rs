//! The shared tier: one Redis (`--redis URL`) that all hosts of a fleet use, so N hosts
//! cost the API requests of one and together never exceed the tenant's budget.
//!
//! Three building blocks over one [`Fleet`] handle:
//! - **One request budget** ([`Fleet::reserve`], [`FleetBudget`]): a schedule of
//!   slots kept inside Redis by a Lua script that reads the *server's* clock (`TIME`),
//!   so host clocks never matter — GCRA's virtual scheduling, with a whole minute as
//!   its burst: slot `k` is no earlier than slot `k - N` plus the window. A reservation
//!   returns how long to wait before sending: first come, first served across hosts,
//!   no polling. A 429 seen by any host ([`Fleet::push_back`]) moves the shared
//!   schedule past its `Retry-After`, so every host backs off together (slots reserved
//!   before it are not taken back), and paces it for a window after. In any 60 s the
//!   schedule admits at most `--max-rpm` requests, whichever hosts ask.
//! - **A content tier** ([`FleetStore`], a `BlockStore`): blocks under
//!   `vccfs:<tenant>:v2:b:<g>:<content key>:<block size>:<index>` with a TTL, where
//!   `<g>` is the keyed name of the interaction's guid (`RootKey::name`: the same on
//!   every host with the key, the guid to nobody else), so one interaction's blocks are
//!   found by one `SCAN` prefix. Each value is sealed (AES-256-GCM, `Purpose::Redis` of
//!   the tenant's [`RootKey`]) with associated data naming its key and exactly which
//!   bytes it holds (see `format`). A value that is truncated, garbage, moved, another
//!   tenant's or version's, or does not open is a miss (counted as `rejected`), never
//!   served.
//! - **Erasure** (`erase`): [`Fleet::erase_guid`] unlinks every block of one
//!   interaction; [`Fleet::announce_erasure`] records a tombstone (the guid sealed,
//!   with the server's time) in `vccfs:{<tenant>}:erased` and publishes it on
//!   `vccfs:{<tenant>}:erase`, which [`Fleet::subscribe_erasures`] delivers to every
//!   host and [`Fleet::erasures_since`] lists for a host that was away.
//! - **Cross-host single-flight** ([`Fleet::lease`], [`FleetSource`]): a block missing
//!   from Redis is fetched by the one host that wins its lease (`SET NX PX`, random
//!   token, compare-and-delete release); the others wait for the value, and take over
//!   when the holder dies (its lease expires with no value).
//!
//! Invariants:
//! - **Redis is never a reason to fail or stall.** [`Fleet::connect`] returns at once
//!   and connects in the background (`ConnectionManager` reconnects by itself); every
//!   operation has a short timeout (`op_timeout`); after `breaker_threshold`
//!   consecutive failures a circuit breaker skips Redis for `breaker_cooldown`, then a
//!   probe (the presence heartbeat, or any operation) closes it again. A failed or
//!   skipped operation is a miss for the content tier, a fetch from the next source for
//!   [`FleetSource`], and an `Err` from [`Fleet::reserve`], on which the caller uses
//!   its local limiter at the fallback rate ([`fallback_rpm`]).
//! - **Nothing read from Redis is trusted.** Block values are opened whole (AES-GCM
//!   with their key name and every identity field as associated data), tombstones
//!   likewise; a control key that is not what the scripts write (wrong
//!   type, non-numeric, absurdly far in the future) is reset, not obeyed.
//! - **Keys carry the tenant** (its hash, never the client id). Control keys carry it
//!   as a Redis Cluster hash tag (`vccfs:{<tenant>}:budget`, `vccfs:{<tenant>}:hosts`);
//!   block keys carry none, so they spread over shards; lease keys are tagged by the
//!   content key (`vccfs:<tenant>:lease:{<key>}:<block size>:<index>`), so one script
//!   can take the leases of a run. No script touches keys of two hash tags.
//! - **Writes never block a read.** `FleetStore::put` spawns its `SET`s with a bounded
//!   number of blocks in flight; beyond that it drops them (counted). Each handle has
//!   three connections (lanes): control (budget, leases, presence), block reads and
//!   block writes, so a reservation never queues behind a block transfer, nor a read
//!   behind a background write.
//! - **Every operation may run twice**: one whose connection had died is retried once
//!   on the connection its manager remakes. All are idempotent except a reservation,
//!   which then takes a second slot (wasted, never over the budget).
//! - **No plaintext recording, guid or validator is written to Redis**: block values and
//!   tombstones are sealed, key names carry only keyed names and hashes.
//! - Secrets (the root key, a password in the URL) are never logged or printed; the
//!   URLs (which may hold a password) are wiped from memory when dropped.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rand::Rng;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisResult, ServerErrorKind};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::seal::{Purpose, RootKey, Sealer};
use crate::version::TenantId;

mod breaker;
mod erase;
mod format;
mod lease;
mod schedule;
mod stats;
mod store;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use lease::FleetSource;
pub use schedule::FleetBudget;
#[cfg(test)]
pub(crate) use schedule::{fallback_rpm, Turn, FLEET_WINDOW};
pub use stats::FleetStats;
pub use store::FleetStore;

use breaker::{Breaker, Position};
use stats::{bump, get, Counters};

/// How to reach the shared Redis, and how to use it.
#[derive(Clone)]
pub struct FleetConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS); wiped when
    /// dropped (it may hold a password).
    pub url: Zeroizing<String>,
    /// The Redis of the control keys (budget, leases, presence, tombstones), if not
    /// `url`'s: one that never evicts, while `url`'s may evict blocks under memory
    /// pressure.
    pub control_url: Option<Zeroizing<String>>,
    pub tenant: TenantId,
    /// The tenant's root key: seals values and tombstones (`Purpose::Redis`) and names
    /// guids in block keys. Every host of the fleet must have the same.
    pub root: RootKey,
    /// How long a block stays in Redis.
    pub block_ttl: Duration,
    /// Longest any one Redis operation may take before it counts as a failure.
    pub op_timeout: Duration,
    /// How long a lease on a missing block holds unless renewed: its holder renews it
    /// while it waits for its budget turn and fetches; a dead holder's lapses in this.
    pub lease_ttl: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips Redis before it probes again.
    pub breaker_cooldown: Duration,
    /// Blocks being written to Redis at once; more are dropped.
    pub max_puts_in_flight: usize,
    /// With `rediss://`: the certificates (PEM) of the CA to trust instead of the
    /// system's, for a Redis behind a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

impl FleetConfig {
    pub fn new(url: impl Into<String>, tenant: TenantId, root: RootKey) -> FleetConfig {
        FleetConfig {
            url: Zeroizing::new(url.into()),
            control_url: None,
            tenant,
            root,
            block_ttl: Duration::from_secs(7 * 24 * 3600),
            op_timeout: Duration::from_millis(250),
            lease_ttl: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            // Four whole small files (16 MiB, 64 blocks of 256 KiB, one run each) at once.
            max_puts_in_flight: 256,
            ca_pem: None,
        }
    }
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &redacted(&self.url))
            .field(
                "control_url",
                &self.control_url.as_deref().map(|u| redacted(u)),
            )
            .field("tenant", &self.tenant)
            .field("root", &self.root)
            .field("block_ttl", &self.block_ttl)
            .field("op_timeout", &self.op_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("max_puts_in_flight", &self.max_puts_in_flight)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .finish()
    }
}

/// `url` with any password replaced, for logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable redis url>".into(),
    }
}

/// Is `url` one [`Fleet::connect`] can use? (For flag parsing; `connect` itself
/// never fails.)
pub fn check_url(url: &str) -> Result<(), FleetError> {
    let ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !ok {
        return Err(FleetError::Redis(format!(
            "{}: not a redis:// or rediss:// URL",
            redacted(url)
        )));
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| FleetError::Redis(format!("{}: {e}", redacted(url))))
}

/// The clients for `cfg`'s URLs (and CA): the cache's, and the control keys' (the
/// same unless `control_url` names another).
fn clients(cfg: &FleetConfig) -> Result<(redis::Client, redis::Client), FleetError> {
    let data = client(cfg, &cfg.url)?;
    let control = match cfg.control_url.as_deref() {
        Some(url) => client(cfg, url)?,
        None => data.clone(),
    };
    Ok((data, control))
}

fn client(cfg: &FleetConfig, url: &str) -> Result<redis::Client, FleetError> {
    check_url(url)?;
    let client = match &cfg.ca_pem {
        Some(pem) if url.starts_with("rediss://") => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        _ => redis::Client::open(url),
    };
    client.map_err(|e| FleetError::Redis(e.to_string()))
}

/// Why a shared operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    /// Not connected yet, or the breaker is open: Redis was not asked.
    #[error("shared tier unavailable (not connected, or cooling down after failures)")]
    Unavailable,
    #[error("shared tier timed out after {0:?}")]
    Timeout(Duration),
    /// Redis could not be used (connection, I/O, a server not ready).
    #[error("shared tier: {0}")]
    Redis(String),
    /// Redis answered with an error (a key of the wrong type, a script error).
    #[error("shared tier refused: {0}")]
    Refused(String),
}

/// The keys of one tenant.
#[derive(Debug)]
struct Keys {
    /// `vccfs:<tenant>`: blocks and leases.
    base: String,
    budget: String,
    /// The budget's reservation log (a list; same hash tag as `budget`).
    budget_log: String,
    hosts: String,
    /// Tombstones of erased interactions (a sorted set scored by server time, ms).
    erased: String,
    /// The channel erasures are announced on (not a key).
    erase_channel: String,
}

impl Keys {
    fn new(tenant: TenantId) -> Keys {
        Keys {
            base: format!("vccfs:{tenant}"),
            budget: format!("vccfs:{{{tenant}}}:budget"),
            budget_log: format!("vccfs:{{{tenant}}}:budget:log"),
            hosts: format!("vccfs:{{{tenant}}}:hosts"),
            erased: format!("vccfs:{{{tenant}}}:erased"),
            erase_channel: format!("vccfs:{{{tenant}}}:erase"),
        }
    }

    fn lease(&self, name: &str) -> String {
        format!("{}:lease:{name}", self.base)
    }
}

/// How often this host says it is alive.
const PRESENCE_EVERY: Duration = Duration::from_secs(10);
/// Hosts not seen for this long no longer count.
const PRESENCE_MAX_AGE: Duration = Duration::from_secs(60);
/// How often the keeper task wakes (to probe a half-open breaker, or say it is alive).
const KEEPER_TICK: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Which connection an operation uses: small control operations (budget, leases,
/// presence) never queue behind block transfers, and background writes never delay
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Control,
    Read,
    Write,
}

/// One connection per lane.
#[derive(Clone)]
struct Conns {
    control: ConnectionManager,
    read: ConnectionManager,
    write: ConnectionManager,
}

impl Conns {
    fn lane(&self, lane: Lane) -> ConnectionManager {
        match lane {
            Lane::Control => self.control.clone(),
            Lane::Read => self.read.clone(),
            Lane::Write => self.write.clone(),
        }
    }
}

struct Inner {
    cfg: FleetConfig,
    keys: Keys,
    /// `cfg.root`'s sealer for Redis values and tombstones.
    sealer: Sealer,
    /// This host's id in the presence set.
    host: String,
    conn: RwLock<Option<Conns>>,
    breaker: Breaker,
    counters: Counters,
    /// Hosts seen at the last presence check (0: never).
    hosts: AtomicU32,
    /// Presence last registered (for the keeper).
    last_presence: parking_lot::Mutex<Option<Instant>>,
    /// Blocks being written.
    puts: Arc<Semaphore>,
}

/// A handle on the shared Redis (cheap to clone; see the module essay).
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &redacted(&self.inner.cfg.url))
            .field("tenant", &self.inner.cfg.tenant)
            .field("host", &self.inner.host)
            .field("healthy", &self.healthy())
            .finish()
    }
}

impl Fleet {
    /// Start using the Redis at `cfg.url`. Never fails and never waits: the connection
    /// is made (and remade) in the background on the current tokio runtime, and until
    /// it is up every operation answers [`FleetError::Unavailable`] at once. A URL
    /// that cannot be used is logged, and the tier stays unavailable.
    pub fn connect(cfg: FleetConfig) -> Fleet {
        let host = format!("{:016x}", rand::rng().random::<u64>());
        let inner = Arc::new(Inner {
            keys: Keys::new(cfg.tenant),
            sealer: cfg.root.sealer(Purpose::Redis),
            host,
            conn: RwLock::new(None),
            breaker: Breaker::new(cfg.breaker_threshold, cfg.breaker_cooldown),
            counters: Counters::default(),
            hosts: AtomicU32::new(0),
            last_presence: parking_lot::Mutex::new(None),
            puts: Arc::new(Semaphore::new(cfg.max_puts_in_flight.max(1))),
            cfg,
        });
        let url = redacted(&inner.cfg.url);
        let tls = std::iter::once(&inner.cfg.url)
            .chain(inner.cfg.control_url.as_ref())
            .any(|u| u.starts_with("rediss://"));
        if tls {
            // TLS through rustls with the provider the API client uses too.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        match (clients(&inner.cfg), tokio::runtime::Handle::try_current()) {
            (Ok(clients), Ok(rt)) => {
                tracing::info!(%url, "shared tier: connecting in the background");
                rt.spawn(keeper(Arc::downgrade(&inner), clients));
            }
            (Err(e), _) => tracing::warn!(%url, error = %e, "shared tier disabled"),
            (_, Err(_)) => tracing::warn!(%url, "shared tier disabled: no tokio runtime"),
        }
        Fleet { inner }
    }

    /// Connected, and the breaker closed: worth asking.
    pub fn healthy(&self) -> bool {
        self.inner.conn.read().is_some()
            && self.inner.breaker.position(Instant::now()) == Position::Closed
    }

    pub fn stats(&self) -> FleetStats {
        let c = &self.inner.counters;
        let hosts = self.inner.hosts.load(Ordering::Relaxed);
        FleetStats {
            connected: self.inner.conn.read().is_some(),
            healthy: self.healthy(),
            breaker_open: self.inner.breaker.position(Instant::now()) == Position::Open,
            breaker_trips: self.inner.breaker.trips(),
            hits: get(&c.hits),
            misses: get(&c.misses),
            rejected: get(&c.rejected),
            errors: get(&c.errors),
            timeouts: get(&c.timeouts),
            skipped: get(&c.skipped),
            stored: get(&c.stored),
            puts_dropped: get(&c.puts_dropped),
            resets: get(&c.resets),
            budget_reserved: get(&c.budget_reserved),
            budget_waits: get(&c.budget_waits),
            budget_fallbacks: get(&c.budget_fallbacks),
            push_backs: get(&c.push_backs),
            leases_won: get(&c.leases_won),
            lease_waits: get(&c.lease_waits),
            lease_takeovers: get(&c.lease_takeovers),
            bypassed: get(&c.bypassed),
            erased: get(&c.erased),
            erasures_announced: get(&c.erasures_announced),
            erasures_received: get(&c.erasures_received),
            erasures_rejected: get(&c.erasures_rejected),
            hosts: (hosts > 0).then_some(hosts),
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.inner.cfg
    }

    fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Run one Redis operation on `lane` with the op timeout, through the breaker.
    async fn run<T, F, Fut>(&self, lane: Lane, op: F) -> Result<T, FleetError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_sized(lane, 0, op).await
    }

    /// [`Fleet::run`] for an operation moving `bytes` of values: its timeout grows by
    /// 10 ms a MiB (a link of 100 MB/s), so a large block is not a failure.
    /// An operation that fails because its connection had died is tried once more (on
    /// the connection its manager is remaking), within the same timeout: every
    /// operation is idempotent, or (a reservation) errs on the safe side if repeated.
    async fn run_sized<T, F, Fut>(&self, lane: Lane, bytes: usize, op: F) -> Result<T, FleetError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &self.inner;
        let conn = inner.conn.read().as_ref().map(|c| c.lane(lane));
        let Some(conn) = conn.filter(|_| inner.breaker.allows(Instant::now())) else {
            bump(&inner.counters.skipped);
            return Err(FleetError::Unavailable);
        };
        let timeout = inner.cfg.op_timeout + Duration::from_nanos(bytes as u64 * 10);
        let attempts = async {
            match op(conn.clone()).await {
                Err(e) if e.is_connection_dropped() || e.is_io_error() => op(conn).await,
                first => first,
            }
        };
        match tokio::time::timeout(timeout, attempts).await {
            Ok(Ok(v)) => {
                inner.breaker.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                bump(&inner.counters.errors);
                tracing::debug!(error = %e, "shared tier: operation failed");
                // An error Redis answered with (a wrong type, a script error) says
                // Redis is up; the rest (I/O, loading, read-only, auth) that it is not
                // usable.
                let answered = matches!(
                    e.kind(),
                    ErrorKind::Server(
                        ServerErrorKind::ResponseError
                            | ServerErrorKind::ExecAbort
                            | ServerErrorKind::NoScript
                    ) | ErrorKind::Extension
                        | ErrorKind::UnexpectedReturnType
                );
                if answered {
                    inner.breaker.success();
                    Err(FleetError::Refused(e.to_string()))
                } else {
                    self.failed();
                    Err(FleetError::Redis(e.to_string()))
                }
            }
            Err(_) => {
                bump(&inner.counters.timeouts);
                self.failed();
                Err(FleetError::Timeout(timeout))
            }
        }
    }

    fn failed(&self) {
        if self.inner.breaker.failure(Instant::now()) {
            tracing::warn!(
                cooldown = ?self.inner.cfg.breaker_cooldown,
                "shared tier: Redis keeps failing; skipping it for a while"
            );
        }
    }
}

fn manager_config(cfg: &FleetConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        // A backstop: every operation has its own, shorter timeout.
        .set_response_timeout(Some(cfg.op_timeout.max(Duration::from_secs(10))))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

/// The three lanes' connections (each reconnects by itself from then on): control to
/// the control keys' Redis, read and write to the cache's.
async fn connect_all(
    (data, control): &(redis::Client, redis::Client),
    cfg: ConnectionManagerConfig,
) -> RedisResult<Conns> {
    let connect = |c: &redis::Client| ConnectionManager::new_with_config(c.clone(), cfg.clone());
    Ok(Conns {
        control: connect(control).await?,
        read: connect(data).await?,
        write: connect(data).await?,
    })
}

/// Connects, then keeps this host's presence fresh and probes a half-open breaker,
/// until the last [`Fleet`] is dropped.
async fn keeper(weak: Weak<Inner>, client: (redis::Client, redis::Client)) {
    let mut backoff = Duration::from_millis(100);
    let conns = loop {
        let Some(cfg) = weak.upgrade().map(|i| manager_config(&i.cfg)) else {
            return;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT * 3, connect_all(&client, cfg)).await {
            Ok(Ok(c)) => break c,
            Ok(Err(e)) => tracing::debug!(error = %e, "shared tier: not connected yet"),
            Err(_) => tracing::debug!("shared tier: connecting timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    match weak.upgrade() {
        Some(inner) => {
            tracing::info!(url = %redacted(&inner.cfg.url), "shared tier: connected");
            *inner.conn.write() = Some(conns);
        }
        None => return,
    }
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        let probe = inner.breaker.position(now) == Position::HalfOpen;
        let due = inner
            .last_presence
            .lock()
            .is_none_or(|t| now.duration_since(t) >= PRESENCE_EVERY);
        if probe || due {
            let shared = Fleet { inner };
            if shared.register().await.is_ok() {
                *shared.inner.last_presence.lock() = Some(Instant::now());
            }
        } else {
            drop(inner);
        }
        tokio::time::sleep(KEEPER_TICK).await;
    }
}
