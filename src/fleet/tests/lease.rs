use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::AsyncCommands;

use super::{client, config, expected, req, stored};
use crate::fleet::lease::lease_name;
use crate::fleet::testing::RedisServer;
use crate::fleet::FleetSource;
use crate::source::mock::MockSource;
use crate::source::{BlockSource, Fetched};

fn bytes(f: &Fetched) -> Vec<u8> {
    f.blocks.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_exclusive_and_released_by_their_holder_only() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let ttl = Duration::from_secs(5);
    let mine = a.lease("x", ttl).await.expect("lease").expect("free");
    assert!(b.lease("x", ttl).await.expect("lease").is_none(), "held");
    assert!(mine.release().await.expect("release"));
    let theirs = b.lease("x", ttl).await.expect("lease").expect("free again");
    // An expired lease taken by another is not ours to release.
    let short = a
        .lease("y", Duration::from_millis(50))
        .await
        .expect("lease");
    let short = short.expect("free");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = b.lease("y", ttl).await.expect("lease").expect("expired");
    assert!(!short.release().await.expect("release"));
    assert!(a.lease("y", ttl).await.expect("lease").is_none());
    drop(other); // released in the background
    drop(theirs);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.lease("x", ttl).await.expect("lease").is_some());
    assert!(a.lease("y", ttl).await.expect("lease").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_reading_one_block_cost_one_origin_fetch() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    let origin = Arc::new(MockSource::new(30).delayed(Duration::from_millis(300)));
    let sources: Vec<FleetSource> = hosts
        .iter()
        .map(|h| FleetSource::new(h.clone(), origin.clone()))
        .collect();
    let v = origin.version();
    let got = join_all(sources.iter().map(|s| s.fetch(req(&v, 2, 3)))).await;
    for g in got {
        assert_eq!(bytes(&g.expect("fetch")), expected(&origin, 2, 3));
    }
    assert_eq!(
        origin.requests(),
        [(2, 3)],
        "one host fetched, the others waited"
    );
    let won: u64 = hosts.iter().map(|h| h.stats().leases_won).sum();
    let waited: u64 = hosts.iter().map(|h| h.stats().lease_waits).sum();
    assert_eq!((won, waited), (3, 6));
    // Afterwards every host reads them from Redis.
    let fetcher = sources.iter().find(|s| s.shared().stats().leases_won > 0);
    stored(fetcher.expect("a winner").shared(), 3).await;
    let again = sources[1].fetch(req(&v, 0, 5)).await.expect("fetch");
    assert_eq!(bytes(&again), expected(&origin, 0, 5));
    assert_eq!(
        origin.requests(),
        [(2, 3), (0, 2)],
        "only the blocks never fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_is_taken_over_after_its_lease_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut cfg = config(&server);
    cfg.lease_ttl = Duration::from_secs(1);
    let (dead, b) = (client(cfg.clone()).await, client(cfg).await);
    let origin = Arc::new(MockSource::new(30));
    let v = origin.version();
    let r = req(&v, 0, 2);
    // The holder takes block 0's lease and dies (never releases it).
    let held = dead.lease(&lease_name(&r, 0), Duration::from_secs(1)).await;
    std::mem::forget(held.expect("lease").expect("free"));
    let start = Instant::now();
    let got = FleetSource::new(b.clone(), origin.clone())
        .fetch(r)
        .await
        .expect("fetch");
    let took = start.elapsed();
    assert_eq!(bytes(&got), expected(&origin, 0, 2));
    assert!(
        took >= Duration::from_millis(900),
        "waited for the lease: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "then took over: {took:?}");
    let mut asked = origin.requests();
    asked.sort();
    assert_eq!(
        asked,
        [(0, 1), (1, 1)],
        "block 1 at once, block 0 once its lease expired"
    );
    assert_eq!(b.stats().lease_takeovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_fails_lets_a_waiter_fetch_at_once() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let origin = Arc::new(MockSource::new(30));
    let v = origin.version();
    let r = req(&v, 0, 1);
    let lease = a.lease(&lease_name(&r, 0), Duration::from_secs(30)).await;
    let lease = lease.expect("lease").expect("free");
    let waiter = tokio::spawn(FleetSource::new(b.clone(), origin.clone()).fetch(r));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    lease.release().await.expect("release"); // as a failed fetch does
    let got = waiter.await.expect("join").expect("fetch");
    assert_eq!(bytes(&got), expected(&origin, 0, 1));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no wait for the TTL"
    );
    assert_eq!(b.stats().lease_takeovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_slower_than_its_lease_keeps_it_and_is_waited_for() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // The holder's fetch (its budget wait, say) lasts three lease lifetimes.
    let mut cfg = config(&server);
    cfg.lease_ttl = Duration::from_millis(500);
    let (a, b) = (client(cfg.clone()).await, client(cfg).await);
    let slow = Arc::new(MockSource::new(30).delayed(Duration::from_millis(1500)));
    let v = slow.version();
    let first = tokio::spawn(FleetSource::new(a.clone(), slow.clone()).fetch(req(&v, 0, 2)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The second host must not fetch, although the holder outlives its TTL.
    let other = Arc::new(MockSource::with_version(v.clone()));
    let got = FleetSource::new(b.clone(), other.clone())
        .fetch(req(&v, 0, 2))
        .await
        .expect("fetch");
    assert_eq!(bytes(&got), expected(&slow, 0, 2));
    first.await.expect("join").expect("fetch");
    assert_eq!(slow.requests(), [(0, 2)]);
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(b.stats().lease_takeovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_key_no_holder_wrote_is_taken_over_not_waited_for() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = client(config(&server)).await;
    let mut raw = server.raw().await;
    // Garbage with no expiry, a token-shaped value with none, one expiring in two hours.
    let spoil: [(&str, Option<u64>); 3] = [
        ("garbage, not a token", None),
        ("0123456789abcdef0123456789abcdef", None),
        ("0123456789abcdef0123456789abcdef", Some(7_200_000)),
    ];
    for (n, (value, px)) in spoil.iter().enumerate() {
        // Another file each time (what is stored in Redis is not asked for again).
        let origin = Arc::new(MockSource::new(30 + n as u64));
        let r = req(&origin.version(), 0, 1);
        let key = a.inner.keys.lease(&lease_name(&r, 0));
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(*value)
            .query_async(&mut raw)
            .await
            .expect("set");
        if let Some(px) = px {
            let _: () = raw.pexpire(&key, *px as i64).await.expect("pexpire");
        }
        let start = Instant::now();
        let got = FleetSource::new(a.clone(), origin.clone())
            .fetch(r.clone())
            .await
            .expect("fetch");
        assert_eq!(bytes(&got), expected(&origin, 0, 1));
        assert!(start.elapsed() < Duration::from_secs(2), "{value}: waited");
        assert_eq!(a.stats().resets, n as u64 + 1);
    }
    // A live holder's lease (a token with a lease's expiry) is still waited for.
    let origin = Arc::new(MockSource::new(40));
    let r = req(&origin.version(), 0, 1);
    let held = a.lease(&lease_name(&r, 0), Duration::from_secs(1)).await;
    std::mem::forget(held.expect("lease").expect("free"));
    let b = client(config(&server)).await;
    let start = Instant::now();
    FleetSource::new(b, origin.clone())
        .fetch(r)
        .await
        .expect("fetch");
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "not waited for"
    );
}
