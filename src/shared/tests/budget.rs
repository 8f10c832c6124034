use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::AsyncCommands;

use super::{client, config};
use crate::shared::testing::RedisServer;
use crate::shared::{fallback_rpm, Shared, SharedBudget, Turn};

/// Reserve `n` slots on each client at once; every slot as server µs (now + wait).
async fn slots(clients: &[Shared], n: usize, rpm: u32, burst: u32) -> Vec<(usize, u64)> {
    let per_host = clients.iter().enumerate().map(|(h, c)| async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = c.reserve_slot(rpm, burst).await.expect("reserve");
            out.push((h, r.now_us + r.wait.as_micros() as u64));
        }
        out
    });
    let mut all: Vec<(usize, u64)> = join_all(per_host).await.concat();
    all.sort_by_key(|s| s.1);
    all
}

/// The most slots in any window of `window_us`.
fn most_in_window(slots: &[(usize, u64)], window_us: u64) -> usize {
    (0..slots.len())
        .map(|i| {
            slots[i..]
                .iter()
                .take_while(|s| s.1 < slots[i].1 + window_us)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_three_hosts_never_exceed_rate_plus_burst_in_any_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    // 60 a minute, bursts of 5: 150 reservations span about two and a half minutes
    // of schedule; no 60 s window may hold more than 65.
    let all = slots(&hosts, 50, 60, 5).await;
    assert_eq!(all.len(), 150);
    let most = most_in_window(&all, 60_000_000);
    assert!(most <= 65, "{most} slots in one 60 s window");
    assert!(most >= 60, "the budget is used, not wasted: {most}");
    // The schedule is first come, first served: each host has slots all along it.
    for h in 0..3 {
        let mine: Vec<u64> = all.iter().filter(|s| s.0 == h).map(|s| s.1).collect();
        assert_eq!(mine.len(), 50);
        let (first, last) = (all[0].1, all[149].1);
        assert!(
            mine[0] < first + 30_000_000,
            "host {h} waits its turn, not the end"
        );
        assert!(mine[49] > last - 30_000_000, "host {h} is not served first");
    }
    assert!(hosts.iter().map(|h| h.stats().budget_waits).sum::<u64>() >= 140);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_spacing_at_a_high_rate() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    // 6000 a minute: one slot each 10 ms after a burst of 5.
    let all = slots(&hosts, 40, 6000, 5).await;
    for w in [10_000u64, 50_000, 100_000, 600_000] {
        let most = most_in_window(&all, w);
        assert!(
            most as u64 <= w / 10_000 + 5,
            "{most} slots in a window of {w} µs"
        );
    }
    // Past the burst, consecutive slots are at least one interval apart (the clock
    // advances between reservations, so gaps can only be longer).
    for pair in all[5..].windows(2) {
        assert!(pair[1].1 - pair[0].1 >= 10_000, "{pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_back_delays_every_host() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b, c) = (
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    );
    assert_eq!(b.reserve(60, 5).await.expect("reserve"), Duration::ZERO);
    a.push_back(Duration::from_secs(2)).await;
    let wb = b.reserve(60, 5).await.expect("reserve");
    let wc = c.reserve(60, 5).await.expect("reserve");
    assert!(
        wb >= Duration::from_millis(1900) && wb <= Duration::from_secs(2),
        "{wb:?}"
    );
    // After a pause the schedule is paced, not a burst.
    assert!(wc >= wb + Duration::from_millis(900), "{wb:?} then {wc:?}");
    assert_eq!(a.stats().push_backs, 1);
    // A shorter push-back never shortens a longer one.
    c.push_back(Duration::from_millis(100)).await;
    assert!(a.reserve(60, 5).await.expect("reserve") >= wc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_budget_key_is_reset_not_trusted() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shared = client(config(&server)).await;
    let key = shared.inner.keys.budget.clone();
    let mut raw = server.raw().await;
    let spoil: [&[(&str, &str)]; 4] = [
        &[("tat", "garbage")],
        &[("tat", "1e30")],
        &[("until", "9999999999999999999")],
        &[("tat", "nan"), ("until", "-5")],
    ];
    for (n, fields) in spoil.iter().enumerate() {
        let _: () = raw.del(&key).await.expect("del");
        for (f, v) in fields.iter() {
            let _: () = raw.hset(&key, *f, *v).await.expect("hset");
        }
        let wait = shared.reserve(60, 5).await.expect("reserve");
        assert_eq!(wait, Duration::ZERO, "{fields:?} is not obeyed");
        assert_eq!(shared.stats().resets, n as u64 + 1);
    }
    // Another type altogether.
    let _: () = raw.del(&key).await.expect("del");
    let _: () = raw.rpush(&key, "x").await.expect("rpush");
    assert_eq!(
        shared.reserve(60, 5).await.expect("reserve"),
        Duration::ZERO
    );
    let _: () = raw.set(&key, "x").await.expect("set");
    shared.push_back(Duration::from_millis(500)).await;
    let wait = shared.reserve(60, 5).await.expect("reserve");
    assert!(wait > Duration::from_millis(400), "{wait:?}");
    assert_eq!(shared.stats().resets, 6);
    // The hosts set, likewise.
    let hosts = shared.inner.keys.hosts.clone();
    let _: () = raw.set(&hosts, "x").await.expect("set");
    assert_eq!(shared.hosts_seen().await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_seen_counts_the_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    for _ in 0..2 {
        for h in &hosts {
            h.hosts_seen().await;
        }
    }
    let n = hosts[0].hosts_seen().await;
    assert_eq!(n, Some(3));
    assert_eq!(fallback_rpm(150, n), 50);
    // Once Redis is gone the last answer stands.
    drop(server);
    assert_eq!(hosts[1].hosts_seen().await, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_budget_falls_back_to_this_hosts_share() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    for _ in 0..2 {
        for h in &hosts {
            h.hosts_seen().await;
        }
    }
    let budget = SharedBudget::new(hosts[0].clone(), 6000, 2, None);
    assert_eq!(budget.wait_turn().await, Turn::Shared);
    assert_eq!(budget.fallback_rpm(), 2000, "a third of the fleet's budget");
    assert_eq!(
        SharedBudget::new(hosts[0].clone(), 6000, 2, Some(7)).fallback_rpm(),
        7
    );
    drop(server);
    // 2000 a minute: one turn each 30 ms (and a local burst of one).
    let start = Instant::now();
    for _ in 0..4 {
        assert_eq!(budget.wait_turn().await, Turn::Local);
    }
    assert!(
        start.elapsed() >= Duration::from_millis(89),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    crate::api::FleetPacer::push_back(&budget, Duration::from_millis(300)).await;
    assert_eq!(budget.wait_turn().await, Turn::Local);
    assert!(
        start.elapsed() >= Duration::from_millis(299),
        "{:?}",
        start.elapsed()
    );
    assert!(hosts[0].stats().budget_fallbacks >= 5);
}
