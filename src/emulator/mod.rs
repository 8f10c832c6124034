//! `vccfs emulator`: a local Vonage Contact Center Interaction Content API
//! (`../shared/api.md` §2–§7, §10), the backend of tests, benchmarks and the demo.
//!
//! Routes (one listener, `--listen`):
//! - `POST /Auth/connect/token` (`auth`);
//! - `GET /interaction-content/interactions` (`search`), `.../interactions/{guid}`,
//!   `.../interactions/{guid}/content/{contentKey}` (`api`, `content`), all behind
//!   the `guard` (rate limit, bearer, scope, `Accept` version, faults);
//! - `/_emulator/stats`, `/_emulator/faults`, `/_emulator/mutate`, `/_emulator/delete`,
//!   `/_emulator/tenant`, `/_emulator/client` (`control`);
//!
//! and with `--redirect` a second listener (`--storage-listen`, another host name) for
//! the signed storage URLs (`storage`). The tenant (`tenant`, of `record`s) is
//! synthetic, built on demand (`synthetic`, `text`, [`media`]), or read from
//! `--data-dir` (`datadir`).

pub mod media;

mod api;
mod args;
mod auth;
mod content;
mod control;
mod datadir;
mod error;
mod faults;
mod guard;
mod ratelimit;
mod record;
mod search;
mod server;
mod source;
mod stats;
mod storage;
mod synthetic;
pub mod tenant;
mod text;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use args::{EmulatorArgs, StorageValidators};
pub use faults::{FaultConfig, FaultPatch};
pub use stats::StatsSnapshot;
pub use tenant::Tenant;

use auth::TokenStore;
use faults::Faults;
use guard::Surface;
use ratelimit::RateLimiter;
use stats::Stats;
use storage::Signer;

/// Why the emulator could not start.
#[derive(thiserror::Error, Debug)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot load data directory {}: {reason}", path.display())]
    DataDir { path: PathBuf, reason: String },
    #[error("invalid emulator option: {0}")]
    InvalidArgs(String),
    #[error("emulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state of all handlers.
pub(crate) struct App {
    pub args: EmulatorArgs,
    pub tenant: Arc<Tenant>,
    pub tokens: TokenStore,
    pub stats: Stats,
    pub faults: Faults,
    pub limiter: RateLimiter,
    /// Set with `--redirect`.
    pub storage: Option<Signer>,
    /// `POST /_emulator/client {"revoked": true}`: the client is refused.
    pub revoked: std::sync::atomic::AtomicBool,
}

impl App {
    /// Is the client's access revoked (token endpoint 400 `invalid_client`, API 403)?
    pub(crate) fn client_revoked(&self) -> bool {
        self.revoked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A running emulator (see [`start`]). Dropping it stops the listeners too.
pub struct RunningEmulator {
    /// `http://HOST:PORT/interaction-content`.
    pub api_url: String,
    /// `http://HOST:PORT/Auth/connect/token`.
    pub auth_url: String,
    /// `http://HOST:PORT/_emulator/stats`.
    pub stats_url: String,
    /// The address actually listened on.
    pub addr: SocketAddr,
    /// The storage listener's address, with `--redirect`.
    pub storage_addr: Option<SocketAddr>,
    app: Arc<App>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The accepted client id.
    pub fn client_id(&self) -> &str {
        &self.app.args.client_id
    }

    /// The accepted client secret.
    pub fn client_secret(&self) -> &str {
        &self.app.args.client_secret
    }

    /// The served tenant: ground truth for in-process tests.
    pub fn tenant(&self) -> Arc<Tenant> {
        self.app.tenant.clone()
    }

    /// Whether the API lists `guid`/`key` without `contentLength`
    /// (`--omit-content-length`); false for an unknown item.
    pub fn omits_content_length(&self, guid: &str, key: &str) -> bool {
        let a = &self.app.args;
        self.app.tenant.view(guid, key).is_some_and(|v| {
            api::omits_content_length(a.seed, a.omit_content_length, &v.guid, &v.key)
        })
    }

    /// The current counters (same as `GET /_emulator/stats`).
    pub fn stats(&self) -> StatsSnapshot {
        self.app.stats.snapshot()
    }

    /// The current fault settings (same as `GET /_emulator/faults`).
    pub fn faults(&self) -> FaultConfig {
        self.app.faults.get()
    }

    /// Changes fault settings (same as `POST /_emulator/faults`).
    pub fn set_faults(&self, patch: &FaultPatch) -> Result<FaultConfig, String> {
        let cfg = self.app.faults.patch(patch)?;
        if patch.revoke_tokens == Some(true) {
            self.app.tokens.revoke_all();
        }
        Ok(cfg)
    }

    /// Stops accepting connections, drops open ones and waits for the listeners.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Printable `host:port` (an unspecified IP becomes loopback).
fn public_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| EmulatorError::Listen {
            addr,
            reason: match e.kind() {
                std::io::ErrorKind::AddrInUse => "address in use".into(),
                std::io::ErrorKind::AddrNotAvailable => {
                    "address not available on this machine".into()
                }
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => e.to_string(),
            },
        })
}

async fn build_tenant(args: &EmulatorArgs) -> Result<Tenant, EmulatorError> {
    let Some(dir) = args.data_dir.clone() else {
        return Ok(Tenant::synthetic(&synthetic::SyntheticSpec {
            seed: args.seed,
            interactions: args.interactions,
            days: args.days,
            big_file_mib: args.big_file_mib,
            long_call_secs: args.long_call_secs,
            anchor: args.end.unwrap_or_else(synthetic::hour_anchor),
            until: match args.end {
                Some(_) => synthetic::Until::Fixed,
                None => synthetic::Until::Wall,
            },
        }));
    };
    let joined = tokio::task::spawn_blocking(move || {
        datadir::load(&dir).map_err(|e| EmulatorError::DataDir {
            path: e.path,
            reason: e.reason,
        })
    })
    .await;
    joined.map_err(|e| EmulatorError::Io(std::io::Error::other(e)))?
}

fn routes(app: &Arc<App>) -> (Router, Router) {
    let g = |s: Surface| from_fn_with_state((app.clone(), s), guard::guard);
    let main = Router::new()
        .route(
            "/Auth/connect/token",
            post(auth::token).layer(g(Surface::Token)),
        )
        .route(
            "/interaction-content/interactions",
            get(api::search).layer(g(Surface::Search)),
        )
        .route(
            "/interaction-content/interactions/{guid}",
            get(api::interaction).layer(g(Surface::Interaction)),
        )
        .route(
            "/interaction-content/interactions/{guid}/content/{key}",
            get(api::content).layer(g(Surface::Content)),
        )
        .route(
            "/_emulator/stats",
            get(control::stats).delete(control::reset_stats),
        )
        .route(
            "/_emulator/faults",
            get(control::faults).post(control::set_faults),
        )
        .route("/_emulator/mutate", post(control::mutate))
        .route("/_emulator/delete", post(control::delete))
        .route("/_emulator/client", post(control::set_client))
        .route("/_emulator/tenant", get(control::tenant))
        .with_state(app.clone());
    let storage = Router::new()
        .route(
            "/storage/{guid}/{key}",
            get(storage::download).layer(g(Surface::Storage)),
        )
        .with_state(app.clone());
    (main, storage)
}

/// Builds the tenant, binds the listener(s) and serves on the current tokio runtime;
/// returns once listening.
pub async fn start(args: EmulatorArgs) -> Result<RunningEmulator, EmulatorError> {
    args.validate()?;
    let started = std::time::Instant::now();
    let tenant = Arc::new(build_tenant(&args).await?);
    tracing::info!(
        interactions = tenant.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "tenant ready"
    );
    let listener = bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let storage_listener = if args.redirect {
        Some(bind(args.storage_listen).await?)
    } else {
        None
    };
    let storage_addr = match &storage_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let storage =
        storage_addr.map(|a| Signer::new(format!("http://{}", public_addr(a)), args.redirect_ttl));
    let app = Arc::new(App {
        faults: Faults::new(args.initial_faults()),
        args,
        tenant,
        tokens: TokenStore::default(),
        stats: Stats::default(),
        limiter: RateLimiter::default(),
        storage,
        revoked: Default::default(),
    });
    let (main_router, storage_router) = routes(&app);
    let shutdown = CancellationToken::new();
    let mut tasks = vec![tokio::spawn(server::serve(
        listener,
        main_router,
        shutdown.clone(),
    ))];
    if let Some(l) = storage_listener {
        tasks.push(tokio::spawn(server::serve(
            l,
            storage_router,
            shutdown.clone(),
        )));
    }
    let base = format!("http://{}", public_addr(addr));
    tracing::info!(%addr, ?storage_addr, "emulator listening");
    Ok(RunningEmulator {
        api_url: format!("{base}/interaction-content"),
        auth_url: format!("{base}/Auth/connect/token"),
        stats_url: format!("{base}/_emulator/stats"),
        addr,
        storage_addr,
        app,
        shutdown,
        tasks,
    })
}

/// The banner: machine-parseable `key=value` lines first, then a hint for humans.
fn banner(emu: &RunningEmulator) -> String {
    let t = emu.tenant();
    let end = t.anchor();
    let start = end - time::Duration::days(7);
    let fmt = |x: time::OffsetDateTime| x.format(&Rfc3339).unwrap_or_default();
    let source = match &emu.app.args.data_dir {
        Some(d) => format!("from {}", d.display()),
        None => format!(
            "synthetic, seed {}, over {} days{}",
            emu.app.args.seed,
            emu.app.args.days,
            match emu.app.args.end {
                Some(_) => "",
                None => ", more arriving while it runs",
            }
        ),
    };
    format!(
        "api_url={api}\nauth_url={auth}\nstats_url={stats}\nclient_id={id}\nclient_secret={secret}\n\
         \n\
         Interaction Content API emulator: {n} interactions ({source}).\n\
         Try:\n  \
         TOKEN=$(curl -s -u {id}:{secret} -d grant_type=client_credentials \
         -d scope=interaction-content:read {auth} | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Accept: application/vnd.newvoicemedia.v3+json' \
         '{api}/interactions?start={s}&end={e}&limit=5'\n\
         Press Ctrl-C to stop.\n",
        api = emu.api_url,
        auth = emu.auth_url,
        stats = emu.stats_url,
        id = emu.client_id(),
        secret = emu.client_secret(),
        n = t.len(),
        s = fmt(start),
        e = fmt(end),
    )
}

/// Starts the emulator, prints the banner on stdout and serves until Ctrl-C or SIGTERM.
pub async fn run(args: EmulatorArgs) -> Result<(), EmulatorError> {
    let emu = start(args).await?;
    {
        let mut out = std::io::stdout().lock();
        out.write_all(banner(&emu).as_bytes())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    tracing::info!("stopping the emulator");
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn banner_starts_with_machine_lines() {
        let emu = start(EmulatorArgs {
            listen: "127.0.0.1:0".parse().expect("addr"),
            interactions: 5,
            ..EmulatorArgs::default()
        })
        .await
        .expect("start");
        let text = banner(&emu);
        println!("{text}");
        let base = format!("http://{}", emu.addr);
        let lines: Vec<&str> = text.lines().take(6).collect();
        assert_eq!(
            lines,
            [
                format!("api_url={base}/interaction-content").as_str(),
                &format!("auth_url={base}/Auth/connect/token"),
                &format!("stats_url={base}/_emulator/stats"),
                "client_id=demo-client",
                "client_secret=demo-secret",
                "",
            ]
        );
        assert_ne!(emu.addr.port(), 0);
        emu.shutdown().await;
    }

    #[tokio::test]
    async fn busy_port_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind(addr).await.expect_err("error");
        assert_eq!(
            err.to_string(),
            format!("cannot listen on {addr}: address in use")
        );
    }
}
