use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{client, config, root, tenant};
use crate::fleet::testing::RedisServer;
use crate::fleet::{Fleet, FleetStore};
use crate::seal::Purpose;
use crate::version::ContentVersion;

fn version(guid: &str, key: &str) -> Arc<ContentVersion> {
    Arc::new(ContentVersion::new(tenant(), guid, key, 8, None))
}

async fn all_keys(server: &RedisServer) -> Vec<String> {
    let mut raw = server.raw().await;
    let mut keys: Vec<String> = raw.keys("*").await.expect("keys");
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_guid_removes_exactly_that_interactions_blocks() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a = client(config(&server)).await;
    let (s4, s8) = (FleetStore::new(a.clone(), 4), FleetStore::new(a.clone(), 8));
    let blocks = [Bytes::from_static(b"abcd"), Bytes::from_static(b"efgh")];
    let (a_call, a_screen) = (
        version("guid-a", "callRecording"),
        version("guid-a", "screen"),
    );
    let b_call = version("guid-b", "callRecording");
    for v in [&a_call, &a_screen, &b_call] {
        s4.write(v, 0, &blocks, None).await.expect("write");
    }
    s8.write(&a_call, 0, &[Bytes::from_static(b"abcdefgh")], None)
        .await
        .expect("write");
    a.reserve(60, crate::fleet::FLEET_WINDOW)
        .await
        .expect("a budget key");
    let before = all_keys(&server).await;
    let g = a.config().root.name(b"guid-a");
    assert_eq!(
        before.iter().filter(|k| k.contains(&g)).count(),
        5,
        "{before:?}"
    );
    assert!(
        !before.iter().any(|k| k.contains("guid-")),
        "no guid in a key name: {before:?}"
    );

    assert_eq!(a.erase_guid("guid-a").await.expect("erase"), 5);
    let after = all_keys(&server).await;
    let kept: Vec<&String> = before.iter().filter(|k| !k.contains(&g)).collect();
    assert_eq!(
        after.iter().collect::<Vec<_>>(),
        kept,
        "only guid-a's keys went"
    );
    assert_eq!(
        after.iter().filter(|k| k.contains(":b:")).count(),
        2,
        "guid-b's blocks stay"
    );
    assert!(s4.lookup(&b_call, 1, 4, true).await.expect("get").is_some());
    assert!(s4.lookup(&a_call, 1, 4, true).await.expect("get").is_none());
    assert_eq!(a.erase_guid("guid-a").await.expect("erase again"), 0);
    assert_eq!(a.stats().erased, 5);
}

/// Wait until `n` connections listen on the erasure channel.
async fn listeners(server: &RedisServer, shared: &Fleet, n: u64) {
    let channel = shared.inner.keys.erase_channel.clone();
    let mut raw = server.raw().await;
    let start = tokio::time::Instant::now();
    loop {
        let got: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut raw)
            .await
            .expect("numsub");
        if got.first().is_some_and(|(_, k)| *k >= n) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{n} listeners");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(rx: &mut UnboundedReceiver<String>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_erasure_reaches_every_host_within_a_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let (mut rx_a, mut rx_b) = (a.subscribe_erasures(), b.subscribe_erasures());
    listeners(&server, &a, 2).await;
    a.announce_erasure("guid-x").await.expect("announce");
    let second = Duration::from_secs(1);
    assert_eq!(next(&mut rx_b, second).await.as_deref(), Some("guid-x"));
    assert_eq!(next(&mut rx_a, second).await.as_deref(), Some("guid-x"));
    assert_eq!(
        (a.stats().erasures_announced, b.stats().erasures_received),
        (1, 1)
    );

    // Nothing in Redis names the guid in the clear.
    let mut raw = server.raw().await;
    let erased = a.inner.keys.erased.clone();
    let members: Vec<Vec<u8>> = raw.zrange(&erased, 0, -1).await.expect("zrange");
    assert_eq!(members.len(), 1);
    assert!(!members[0].windows(6).any(|w| w == b"guid-x"));
    let ttl: i64 = raw.pttl(&erased).await.expect("pttl");
    assert!(ttl > 0 && ttl <= 7 * 24 * 3600 * 1000, "{ttl}");

    // Redis goes away and comes back: the listener resubscribes by itself.
    let mut server = server;
    let port_url = server.url();
    server.restart();
    assert_eq!(server.url(), port_url);
    listeners(&server, &a, 2).await;
    super::healthy_within(&a, Duration::from_secs(10)).await;
    let start = tokio::time::Instant::now();
    while a.announce_erasure("guid-y").await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "announce after restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(next(&mut rx_b, second).await.as_deref(), Some("guid-y"));
    // The receiver dropped: the listener ends (its connection goes).
    drop(rx_b);
    let _ = next(&mut rx_a, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_listed_since_a_time_and_garbage_is_ignored() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let mut rx = b.subscribe_erasures();
    listeners(&server, &b, 1).await;
    let mut raw = server.raw().await;
    let (erased, channel) = (
        a.inner.keys.erased.clone(),
        a.inner.keys.erase_channel.clone(),
    );
    // Garbage in the set and on the channel, and a tombstone sealed with another key.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    // Scored in the future, so that every listing below meets them.
    let future = now_ms + 24 * 3600 * 1000;
    let _: () = raw.zadd(&erased, "garbage", future).await.expect("zadd");
    let foreign = root("another secret")
        .sealer(Purpose::Redis)
        .seal(&a.tombstone_aad(), b"\0\0\0\0\0\0\0\0guid-z");
    let _: () = raw.zadd(&erased, &foreign, future).await.expect("zadd");
    let _: () = raw.publish(&channel, "garbage").await.expect("publish");
    let _: () = raw.publish(&channel, &foreign).await.expect("publish");

    a.announce_erasure("guid-1").await.expect("announce");
    tokio::time::sleep(Duration::from_millis(5)).await;
    a.announce_erasure("guid-2").await.expect("announce");
    let second = Duration::from_secs(1);
    assert_eq!(next(&mut rx, second).await.as_deref(), Some("guid-1"));
    assert_eq!(next(&mut rx, second).await.as_deref(), Some("guid-2"));
    assert_eq!(b.stats().erasures_rejected, 2, "{:?}", b.stats());

    let all = b.erasures_since(0).await.expect("since 0");
    let guids: Vec<&str> = all.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(guids, ["guid-1", "guid-2"]);
    assert!(all[0].1 < all[1].1, "{all:?}");
    assert!(
        all[0].1.abs_diff(now_ms) < 60_000,
        "server time, ms: {all:?}"
    );
    let later = b.erasures_since(all[0].1).await.expect("since");
    assert_eq!(later, vec![all[1].clone()]);
    assert!(b.erasures_since(all[1].1).await.expect("since").is_empty());
    assert_eq!(b.stats().erasures_rejected, 2 + 2 * 3, "{:?}", b.stats());

    // A tombstone set that is not a sorted set is no tombstones, and is reset by the
    // next announcement.
    let _: () = raw.del(&erased).await.expect("del");
    let _: () = raw.set(&erased, "x").await.expect("set");
    assert!(b.erasures_since(0).await.expect("since").is_empty());
    a.announce_erasure("guid-3")
        .await
        .expect("announce over a spoiled set");
    let list = b.erasures_since(0).await.expect("since");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, "guid-3");
}
