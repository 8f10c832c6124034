use std::time::{Duration, Instant};

use futures::future::join_all;
use redis::AsyncCommands;

use super::{client, config};
use crate::fleet::testing::RedisServer;
use crate::fleet::{fallback_rpm, Fleet, FleetBudget, Turn, FLEET_WINDOW};

/// Reserve `n` slots on each client at once under a budget of `per` in any `window`;
/// every slot as server µs (now + wait).
/// (Third: the server's clock at the reservation.)
async fn slots(clients: &[Fleet], n: usize, per: u32, window: Duration) -> Vec<(usize, u64, u64)> {
    let per_host = clients.iter().enumerate().map(|(h, c)| async move {
        let mut out = Vec::new();
        for _ in 0..n {
            let r = c.reserve_slot(per, window).await.expect("reserve");
            out.push((h, r.now_us + r.wait.as_micros() as u64, r.now_us));
        }
        out
    });
    let mut all: Vec<(usize, u64, u64)> = join_all(per_host).await.concat();
    all.sort_by_key(|s| s.1);
    all
}

/// The most slots in any window of `window_us`.
fn most_in_window(slots: &[(usize, u64, u64)], window_us: u64) -> usize {
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
async fn three_hosts_get_a_minute_at_once_and_never_more_in_any_minute() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    for h in &hosts {
        h.hosts_seen().await; // connected before the race starts
    }
    // 60 a minute: 150 reservations are 60 at once, 60 a window later, 30 after that.
    let all = slots(&hosts, 50, 60, FLEET_WINDOW).await;
    assert_eq!(all.len(), 150);
    let most = most_in_window(&all, 60_000_000);
    assert_eq!(most, 60, "{most} slots in one 60 s window");
    let first = all[0].1;
    let w = FLEET_WINDOW.as_micros() as u64;
    let immediate = all.iter().filter(|s| s.1 < first + 1_000_000).count();
    assert_eq!(
        immediate, 60,
        "a minute's worth goes at once, as on one host"
    );
    for (k, s) in all.iter().enumerate().skip(60) {
        assert!(
            s.1 >= all[k - 60].1 + w,
            "slot {k} is a window after slot {}",
            k - 60
        );
    }
    assert!(
        all[149].1 < first + 2 * w + 2_000_000,
        "the budget is used, not wasted"
    );
    // First come, first served: slots follow the order of arrival at the server, and
    // every host, asking at once, is among the first window.
    let mut by_arrival = all.clone();
    by_arrival.sort_by_key(|s| (s.2, s.1));
    assert!(
        by_arrival.windows(2).all(|p| p[0].1 <= p[1].1),
        "slots out of arrival order"
    );
    for h in 0..3 {
        assert!(
            all[..60].iter().any(|s| s.0 == h),
            "host {h} waits its turn"
        );
    }
    assert_eq!(
        hosts.iter().map(|h| h.stats().budget_waits).sum::<u64>(),
        90
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_windows_hold_at_a_high_rate() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let hosts = [
        client(config(&server)).await,
        client(config(&server)).await,
        client(config(&server)).await,
    ];
    // 10 in any 200 ms: 120 reservations span about 2.4 s.
    let window = Duration::from_millis(200);
    let all = slots(&hosts, 40, 10, window).await;
    assert_eq!(most_in_window(&all, 200_000), 10);
    for (k, s) in all.iter().enumerate().skip(10) {
        assert!(s.1 >= all[k - 10].1 + 200_000, "{k}: {s:?}");
    }
    let span = all[119].1 - all[0].1;
    assert!((2_200_000..3_500_000).contains(&span), "{span} µs");
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
    assert_eq!(
        b.reserve(60, FLEET_WINDOW).await.expect("reserve"),
        Duration::ZERO
    );
    a.push_back(Duration::from_secs(2)).await;
    let wb = b.reserve(60, FLEET_WINDOW).await.expect("reserve");
    let wc = c.reserve(60, FLEET_WINDOW).await.expect("reserve");
    assert!(
        wb >= Duration::from_millis(1900) && wb <= Duration::from_secs(2),
        "{wb:?}"
    );
    // After a pause the schedule is paced, not a burst.
    assert!(wc >= wb + Duration::from_millis(900), "{wb:?} then {wc:?}");
    assert_eq!(a.stats().push_backs, 1);
    // A shorter push-back never shortens a longer one.
    c.push_back(Duration::from_millis(100)).await;
    assert!(a.reserve(60, FLEET_WINDOW).await.expect("reserve") >= wc);
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
        let wait = shared.reserve(60, FLEET_WINDOW).await.expect("reserve");
        assert_eq!(wait, Duration::ZERO, "{fields:?} is not obeyed");
        assert_eq!(shared.stats().resets, n as u64 + 1);
    }
    // Another type altogether.
    let _: () = raw.del(&key).await.expect("del");
    let _: () = raw.rpush(&key, "x").await.expect("rpush");
    assert_eq!(
        shared.reserve(60, FLEET_WINDOW).await.expect("reserve"),
        Duration::ZERO
    );
    let _: () = raw.set(&key, "x").await.expect("set");
    shared.push_back(Duration::from_millis(500)).await;
    let wait = shared.reserve(60, FLEET_WINDOW).await.expect("reserve");
    assert!(wait > Duration::from_millis(400), "{wait:?}");
    assert_eq!(shared.stats().resets, 6);
    // The reservation log, likewise: another type, or a slot that is not a number.
    let log = shared.inner.keys.budget_log.clone();
    let _: () = raw.del(&key).await.expect("del");
    let _: () = raw.set(&log, "x").await.expect("set");
    assert_eq!(
        shared.reserve(60, FLEET_WINDOW).await.expect("reserve"),
        Duration::ZERO
    );
    for v in ["garbage", "1e30"] {
        let _: () = raw.del(&log).await.expect("del");
        let _: () = raw.rpush(&log, v).await.expect("rpush");
        let wait = shared.reserve(1, FLEET_WINDOW).await.expect("reserve");
        assert_eq!(wait, Duration::ZERO, "{v} is not obeyed");
    }
    assert_eq!(shared.stats().resets, 9);
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
    // 9 in any 2 s for the fleet: 3 for this host alone.
    let window = Duration::from_secs(2);
    let budget = FleetBudget::with_window(hosts[0].clone(), 9, window, None);
    assert_eq!(budget.wait_turn().await, Turn::Fleet);
    assert_eq!(budget.fallback_rpm(), 3, "a third of the fleet's budget");
    assert_eq!(
        FleetBudget::new(hosts[0].clone(), 6000, Some(7)).fallback_rpm(),
        7
    );
    drop(server);
    let start = Instant::now();
    for _ in 0..3 {
        assert_eq!(budget.wait_turn().await, Turn::Local);
    }
    // (Each turn first finds Redis gone, which takes a moment until the breaker opens.)
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(budget.wait_turn().await, Turn::Local);
    assert!(
        start.elapsed() >= Duration::from_millis(1990),
        "the fourth waits for the window: {:?}",
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
