use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{client, config, expected, healthy_within, req, stored};
use crate::fleet::testing::RedisServer;
use crate::fleet::{Fleet, FleetConfig, FleetError, FleetSource, FleetStore, FLEET_WINDOW};
use crate::source::mock::MockSource;
use crate::source::{BlockSource, Tiered};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_never_fails_or_waits() {
    // Nothing listens on a port we just had and let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let tenant = super::tenant();
    let key = super::root("secret");
    for url in [
        format!("redis://127.0.0.1:{port}/"),
        "http://not-redis/".to_string(),
        "redis://[bad".to_string(),
    ] {
        let start = Instant::now();
        let shared = Fleet::connect(FleetConfig::new(url.clone(), tenant, key.clone()));
        assert!(start.elapsed() < Duration::from_millis(50), "{url}");
        assert!(!shared.healthy());
        let r = shared.reserve(60, FLEET_WINDOW).await;
        assert!(matches!(r, Err(FleetError::Unavailable)), "{url}: {r:?}");
        let origin = Arc::new(MockSource::new(30));
        let source = FleetSource::new(shared.clone(), origin.clone());
        let got = source
            .fetch(req(&origin.version(), 0, 8))
            .await
            .expect("read");
        assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
        assert_eq!(shared.stats().budget_fallbacks, 1);
        assert!(start.elapsed() < Duration::from_millis(200), "{url}");
    }
    assert!(crate::fleet::check_url("redis://127.0.0.1:6379/").is_ok());
    assert!(crate::fleet::check_url("rediss://cache.example:6380/0").is_ok());
    assert!(crate::fleet::check_url("http://x/").is_err());
    let secret = "redis://user:hunter2@cache.example:6379/";
    assert!(!crate::fleet::redacted(secret).contains("hunter2"));
    let cfg = FleetConfig::new(secret, tenant, key);
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_reads_go_on_and_it_comes_back_by_itself() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let origin = Arc::new(MockSource::new(64));
    let v = origin.version();
    let source_a = FleetSource::new(a.clone(), origin.clone());
    let tiered_b = Tiered::new(Arc::new(FleetStore::new(b.clone(), 4)), origin.clone());
    source_a.fetch(req(&v, 0, 4)).await.expect("read");
    stored(&a, 4).await;

    server.kill();
    // Reads go on, from the origin, and soon without asking Redis at all.
    let start = Instant::now();
    for round in 0..10u64 {
        let first = (round % 4) * 4;
        let got = source_a.fetch(req(&v, first, 4)).await.expect("read");
        assert_eq!(got.blocks.concat(), expected(&origin, first, 4));
        let got = tiered_b.fetch(req(&v, first, 4)).await.expect("read");
        assert_eq!(got.blocks.concat(), expected(&origin, first, 4));
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    for s in [&a, &b] {
        let st = s.stats();
        assert!(!s.healthy() && st.breaker_trips >= 1, "{st:?}");
        assert!(st.skipped > 0, "{st:?}");
    }
    assert!(a.stats().bypassed > 0);
    assert!(a.reserve(60, FLEET_WINDOW).await.is_err());

    // Back (empty): both clients recover by themselves.
    server.restart();
    healthy_within(&a, Duration::from_secs(10)).await;
    healthy_within(&b, Duration::from_secs(10)).await;
    let before = origin.requests().len();
    source_a.fetch(req(&v, 8, 4)).await.expect("read");
    stored(&a, 8).await;
    let got = tiered_b.fetch(req(&v, 8, 4)).await.expect("read");
    assert_eq!(got.blocks.concat(), expected(&origin, 8, 4));
    assert_eq!(
        origin.requests().len(),
        before + 1,
        "b read what a stored after the restart"
    );
    assert!(a.reserve(60, FLEET_WINDOW).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_timeout_not_a_hang() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = client(config(&server)).await;
    let origin = Arc::new(MockSource::new(64));
    let v = origin.version();
    let source = FleetSource::new(a.clone(), origin.clone());
    let store = Tiered::new(Arc::new(FleetStore::new(a.clone(), 4)), origin.clone());
    source.fetch(req(&v, 0, 4)).await.expect("read");
    stored(&a, 4).await;
    server.pause();
    let start = Instant::now();
    for first in [0, 4, 8, 0] {
        let got = source.fetch(req(&v, first, 4)).await.expect("read");
        assert_eq!(got.blocks.concat(), expected(&origin, first, 4));
        let got = store.fetch(req(&v, first, 4)).await.expect("read");
        assert_eq!(got.blocks.concat(), expected(&origin, first, 4));
    }
    let (took, st) = (start.elapsed(), a.stats());
    assert!(st.timeouts >= 3 && st.breaker_trips >= 1, "{st:?}");
    // One timeout (250 ms) per step until the breaker opens, then none.
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(a.reserve(60, FLEET_WINDOW).await.is_err());
    server.resume();
    healthy_within(&a, Duration::from_secs(10)).await;
    assert!(a.reserve(60, FLEET_WINDOW).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    let mut cfg = config(&server);
    cfg.ca_pem = server.cert();
    let a = client(cfg).await;
    assert!(a.reserve(60, FLEET_WINDOW).await.is_ok());
    let origin = Arc::new(MockSource::new(30));
    let source = FleetSource::new(a.clone(), origin.clone());
    let got = source
        .fetch(req(&origin.version(), 0, 8))
        .await
        .expect("read");
    assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
    stored(&a, 8).await;
    // Without the CA the certificate is not trusted: never healthy, reads go on.
    let untrusting = Fleet::connect(config(&server));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!untrusting.healthy());
    let source = FleetSource::new(untrusting, origin.clone());
    let got = source
        .fetch(req(&origin.version(), 0, 8))
        .await
        .expect("read");
    assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
}
