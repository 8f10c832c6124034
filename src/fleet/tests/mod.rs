//! The shared tier against a real `redis-server` (see `testing`): budget, content
//! tier, leases, and Redis going away and coming back.

use std::sync::Arc;
use std::time::Duration;

use super::testing::RedisServer;
use super::{Fleet, FleetConfig};
use crate::memory::BlockPool;
use crate::source::mock::MockSource;
use crate::source::BlockRequest;
use crate::version::{ContentVersion, TenantId};

mod erase;
mod lease;
mod outage;
mod schedule;
mod store;

/// The tenant of the mock source's versions.
fn tenant() -> TenantId {
    TenantId::new("http://mock/interaction-content", "test")
}

/// The tenant's root key from `secret`.
fn root(secret: &str) -> crate::seal::RootKey {
    crate::seal::RootKey::from_secret(secret.as_bytes(), tenant())
}

/// A configuration for tests: the defaults, with quick breaker and lease timings.
fn config(server: &RedisServer) -> FleetConfig {
    let mut cfg = FleetConfig::new(server.url(), tenant(), root("secret"));
    cfg.breaker_threshold = 3;
    cfg.breaker_cooldown = Duration::from_millis(300);
    cfg.lease_ttl = Duration::from_secs(5);
    cfg
}

/// A client, once it has connected.
async fn client(cfg: FleetConfig) -> Fleet {
    let shared = Fleet::connect(cfg);
    healthy_within(&shared, Duration::from_secs(10)).await;
    shared
}

async fn healthy_within(shared: &Fleet, limit: Duration) {
    let start = tokio::time::Instant::now();
    while !shared.healthy() {
        assert!(
            start.elapsed() < limit,
            "not healthy after {limit:?}: {:?}",
            shared.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `shared` has written `n` blocks in the background.
async fn stored(shared: &Fleet, n: u64) {
    let start = tokio::time::Instant::now();
    while shared.stats().stored < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "only {:?} stored",
            shared.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const BS: u64 = 4;

fn req(version: &Arc<ContentVersion>, first: u64, count: u64) -> BlockRequest {
    BlockRequest {
        version: Arc::clone(version),
        first,
        count,
        block_size: BS,
        pool: BlockPool::heap_only(),
        purpose: crate::source::Purpose::Demand,
    }
}

/// `count` blocks from `first` of `origin`'s file.
fn expected(origin: &MockSource, first: u64, count: u64) -> Vec<u8> {
    let all = origin.bytes();
    let end = ((first + count) * BS).min(all.len() as u64);
    all[(first * BS) as usize..end as usize].to_vec()
}
