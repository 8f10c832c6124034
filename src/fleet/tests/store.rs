use std::sync::Arc;

use redis::AsyncCommands;

use super::{client, config, expected, req, root, stored, tenant, BS};
use crate::fleet::format;
use crate::fleet::testing::RedisServer;
use crate::fleet::{Fleet, FleetStore};
use crate::seal::Purpose;
use crate::source::mock::MockSource;
use crate::source::{BlockSource, Tiered};
use crate::version::{ContentVersion, TenantId, Validator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_round_trip_to_another_host_without_origin_requests() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (client(config(&server)).await, client(config(&server)).await);
    let origin_a = Arc::new(MockSource::new(30));
    let tiered_a = Tiered::new(Arc::new(FleetStore::new(a.clone(), BS)), origin_a.clone());
    let got = tiered_a
        .fetch(req(&origin_a.version(), 0, 8))
        .await
        .expect("fetch");
    assert_eq!(got.blocks.concat(), origin_a.bytes().to_vec());
    assert_eq!(origin_a.requests(), [(0, 8)]);
    stored(&a, 8).await;
    assert_eq!(a.stats().misses, 8);

    // Host B: its own origin and its own (unpinned) version of the same file.
    let origin_b = Arc::new(MockSource::new(30));
    let tiered_b = Tiered::new(Arc::new(FleetStore::new(b.clone(), BS)), origin_b.clone());
    let version_b = origin_b.version();
    let got = tiered_b.fetch(req(&version_b, 0, 8)).await.expect("fetch");
    assert_eq!(got.blocks.concat(), origin_b.bytes().to_vec());
    assert!(origin_b.requests().is_empty(), "{:?}", origin_b.requests());
    assert_eq!(tiered_b.stats().hits, 8);
    assert_eq!(b.stats().hits, 8);
    assert_eq!(
        version_b.pinned(),
        Some(&Validator::ETag("\"mock\"".into())),
        "the stored validator pins the version"
    );
    // Blocks are keyed by block size too: another block size is another set of blocks.
    let other_size = FleetStore::new(b.clone(), 8);
    assert_ne!(
        other_size.key(&version_b, 1),
        FleetStore::new(b, BS).key(&version_b, 1)
    );
}

/// Host A has blocks 0..8 of a 30-byte file in Redis: its fleet, its store, the
/// file's version and its origin.
async fn filled(server: &RedisServer) -> (Fleet, FleetStore, Arc<ContentVersion>, Arc<MockSource>) {
    let a = client(config(server)).await;
    let origin = Arc::new(MockSource::new(30));
    let store = FleetStore::new(a.clone(), BS);
    let tiered = Tiered::new(Arc::new(store.clone()), origin.clone());
    let v = origin.version();
    tiered.fetch(req(&v, 0, 8)).await.expect("fill");
    stored(&a, 8).await;
    (a, store, v, origin)
}

/// Host B reads blocks 0..8 of its own copy of the file, exactly: its fleet and its
/// origin (whose requests say which blocks Redis did not serve).
async fn read_on_another_host(server: &RedisServer) -> (Fleet, Arc<MockSource>) {
    let b = client(config(server)).await;
    let origin_b = Arc::new(MockSource::new(30));
    let tiered_b = Tiered::new(Arc::new(FleetStore::new(b.clone(), BS)), origin_b.clone());
    let got = tiered_b
        .fetch(req(&origin_b.version(), 0, 8))
        .await
        .expect("fetch");
    assert_eq!(got.blocks.concat(), origin_b.bytes().to_vec());
    (b, origin_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoiled_values_are_misses_never_data() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, store, v, origin) = filled(&server).await;

    let mut raw = server.raw().await;
    let key = |i: u64| store.key(&v, i);
    let reader = raw.clone();
    let value = |i: u64| {
        let mut raw = reader.clone();
        let k = key(i);
        async move { raw.get::<_, Vec<u8>>(k).await.expect("get") }
    };
    let etag = Validator::ETag("\"mock\"".into());
    let data = |i: u64| expected(&origin, i, 1);
    // 0: garbage; 1: truncated; 2: another tenant's block under our key; 3: a flipped
    // sealed byte; 4: sealed with another root key; 5: block 6's value under 5's key;
    // 6: not a string at all. Block 7 stays intact.
    let _: () = raw.set(key(0), "garbage").await.expect("set");
    let v1 = value(1).await;
    let _: () = raw.set(key(1), &v1[..v1.len() - 5]).await.expect("set");
    let other = TenantId::new("http://other/interaction-content", "test");
    let ours = a.config().root.sealer(Purpose::Redis);
    let theirs = format::encode(&ours, &key(2), other, &v, BS, 2, Some(&etag), &data(2));
    let _: () = raw.set(key(2), theirs).await.expect("set");
    let mut v3 = value(3).await;
    let at = v3.len() - 17;
    v3[at] ^= 1;
    let _: () = raw.set(key(3), v3).await.expect("set");
    let forged = format::encode(
        &root("another secret").sealer(Purpose::Redis),
        &key(4),
        tenant(),
        &v,
        BS,
        4,
        Some(&etag),
        &data(4),
    );
    let _: () = raw.set(key(4), forged).await.expect("set");
    let v6 = value(6).await;
    let _: () = raw.set(key(5), v6).await.expect("set");
    let _: () = raw.del(key(6)).await.expect("del");
    let _: () = raw.rpush(key(6), "x").await.expect("rpush");

    // Another host reads: the spoiled blocks come from its origin, the intact one not.
    let (b, origin_b) = read_on_another_host(&server).await;
    assert_eq!(origin_b.requests(), [(0, 7)]);
    let s = b.stats();
    assert_eq!((s.rejected, s.hits, s.errors), (7, 1, 1), "{s:?}");
    assert!(
        b.healthy(),
        "a spoiled value is no reason to stop using Redis"
    );
}

/// Bytes Redis has sent its clients so far (`INFO stats`).
async fn sent_by(raw: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(raw)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_net_output_bytes")
}

/// A value planted under a block's key, however long, costs a reader no more than a
/// block's value can be (`GETRANGE`, not `GET`): refused, the block served from the
/// origin, and Redis sent the reader a small part of the 32 MiB planted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_huge_value_is_read_no_further_than_a_block_can_be() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (_a, store, v, _origin) = filled(&server).await;
    let mut raw = server.raw().await;
    let planted = 32u64 << 20;
    let _: () = redis::cmd("SETRANGE")
        .arg(store.key(&v, 3))
        .arg(planted - 1)
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("setrange");
    let before = sent_by(&mut raw).await;
    let (b, origin_b) = read_on_another_host(&server).await;
    assert_eq!(origin_b.requests(), [(3, 1)]);
    let s = b.stats();
    assert_eq!((s.rejected, s.hits), (1, 7), "{s:?}");
    let sent = sent_by(&mut raw).await - before;
    assert!(
        sent < 1 << 20,
        "Redis sent {sent} bytes to read 8 blocks of {BS} (32 MiB planted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_control_redis_the_budget_and_leases_live_there_and_blocks_in_the_cache() {
    let (Some(cache), Some(control)) = (RedisServer::start(), RedisServer::start()) else {
        return;
    };
    let cfg = || {
        let mut cfg = config(&cache);
        cfg.control_url = Some(control.url().into());
        cfg
    };
    let (a, b) = (client(cfg()).await, client(cfg()).await);
    // The budget is shared through the control instance: a window of 2.
    let w = std::time::Duration::from_secs(60);
    assert!(a.reserve(2, w).await.expect("reserve").is_zero());
    assert!(b.reserve(2, w).await.expect("reserve").is_zero());
    assert!(
        a.reserve(2, w).await.expect("reserve") > w / 2,
        "the fleet's third"
    );
    // A block fetched by A through its lease is a hit for B.
    let origin = Arc::new(MockSource::new(30));
    let source_a = crate::fleet::FleetSource::new(a.clone(), origin.clone());
    let got = source_a
        .fetch(req(&origin.version(), 0, 2))
        .await
        .expect("fetch");
    assert_eq!(got.blocks.concat(), expected(&origin, 0, 2));
    stored(&a, 2).await;
    let other = Arc::new(MockSource::with_version(origin.version()));
    let source_b = crate::fleet::FleetSource::new(b.clone(), other.clone());
    let got = source_b
        .fetch(req(&origin.version(), 0, 2))
        .await
        .expect("fetch");
    assert_eq!(got.blocks.concat(), expected(&origin, 0, 2));
    assert!(other.requests().is_empty());
    // Where the keys went.
    let (mut raw_cache, mut raw_control) = (cache.raw().await, control.raw().await);
    let in_cache: Vec<String> = raw_cache.keys("*").await.expect("keys");
    let in_control: Vec<String> = raw_control.keys("*").await.expect("keys");
    assert!(in_cache.iter().any(|k| k.contains(":b:")), "{in_cache:?}");
    assert!(
        !in_cache
            .iter()
            .any(|k| k.contains("budget") || k.contains("hosts")),
        "{in_cache:?}"
    );
    assert!(
        in_control.iter().any(|k| k.contains("budget")),
        "{in_control:?}"
    );
    assert!(
        !in_control.iter().any(|k| k.contains(":b:")),
        "{in_control:?}"
    );
}
