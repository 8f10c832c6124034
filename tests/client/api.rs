//! The API client against the emulator over loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use time::OffsetDateTime;
use vccfs::api::{ApiClient, ApiConfig, ApiError, Credentials};
use vccfs::emulator::{self, EmulatorArgs, RunningEmulator};
use vccfs::model::Interaction;
use vccfs::testing::ContentVersion;

fn args(extra: &[&str]) -> EmulatorArgs {
    let mut flags = vec!["--listen", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    EmulatorArgs::from_flags(&flags).expect("flags parse")
}

async fn start(extra: &[&str]) -> RunningEmulator {
    emulator::start(args(extra)).await.expect("emulator starts")
}

fn client(emu: &RunningEmulator, tweak: impl FnOnce(&mut ApiConfig)) -> ApiClient {
    let creds = Credentials {
        client_id: emu.client_id().to_string(),
        client_secret: emu.client_secret().to_string(),
    };
    let mut cfg = ApiConfig::new(&emu.api_url, &emu.auth_url, creds).expect("config");
    cfg.retry_deadline = Duration::from_secs(20);
    tweak(&mut cfg);
    ApiClient::new(cfg).expect("client")
}

async fn stats(emu: &RunningEmulator) -> serde_json::Value {
    reqwest::get(&emu.stats_url)
        .await
        .expect("stats")
        .json()
        .await
        .expect("json")
}

async fn reset(emu: &RunningEmulator) {
    reqwest::Client::new()
        .delete(&emu.stats_url)
        .send()
        .await
        .expect("reset");
}

fn version(i: &Interaction, key: &str) -> ContentVersion {
    let item = i.item(key).expect("item");
    ContentVersion::new(
        vccfs::testing::TenantId::new("http://test/interaction-content", "test"),
        &i.guid,
        key,
        item.content_length.expect("len"),
        item.last_modified,
    )
}

/// The largest content item of the tenant.
fn biggest(emu: &RunningEmulator) -> (Interaction, String) {
    let tenant = emu.tenant();
    let mut best: Option<(Interaction, String, u64)> = None;
    for i in tenant.interactions() {
        for c in &i.content {
            let len = c.content_length.unwrap_or(0);
            if best.as_ref().is_none_or(|b| len > b.2) {
                best = Some((i.clone(), c.content_key.clone(), len));
            }
        }
    }
    let (i, k, _) = best.expect("content");
    (i, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_day_search_sees_everything_once_in_fewest_requests() {
    let emu = start(&["--interactions", "2600", "--days", "20"]).await;
    let c = client(&emu, |_| {});
    let now = OffsetDateTime::now_utc();
    let (from, to) = (
        now - time::Duration::days(21),
        now + time::Duration::hours(1),
    );
    reset(&emu).await;
    let got = c.search_all(from, to).await.expect("search");
    let truth: Vec<Interaction> = emu
        .tenant()
        .interactions()
        .into_iter()
        .filter(|i| i.start >= from && i.start < to)
        .collect();
    assert_eq!(got.len(), truth.len());
    let mut guids: Vec<&str> = got.iter().map(|i| i.guid.as_str()).collect();
    guids.sort();
    guids.dedup();
    assert_eq!(guids.len(), truth.len(), "each interaction exactly once");
    // Fewest requests: ceil(n/1000) per 7-day window (at least one).
    let expected: u64 = vccfs::api::search_windows(from, to)
        .iter()
        .map(|(a, b)| {
            let n = truth
                .iter()
                .filter(|i| i.start >= *a && i.start < *b)
                .count() as u64;
            n.div_ceil(1000).max(1)
        })
        .sum();
    let s = stats(&emu).await;
    assert_eq!(s["search_requests"].as_u64(), Some(expected), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_refresh_during_a_long_read() {
    let emu = start(&[
        "--token-ttl",
        "2",
        "--big-file-mib",
        "8",
        "--bandwidth",
        "1500000",
    ])
    .await;
    let c = client(&emu, |_| {});
    let (i, key) = biggest(&emu);
    let v = version(&i, &key);
    let truth = emu.tenant().bytes(&i.guid, &key).expect("truth");
    let mut off = 0u64;
    while off < v.size {
        let n = (1u64 << 20).min(v.size - off);
        let got = c
            .read_range(&v, off, n)
            .await
            .expect("no call fails while tokens expire");
        assert!(
            got[..] == truth[off as usize..(off + n) as usize],
            "bytes at {off}"
        );
        off += n;
    }
    let s = stats(&emu).await;
    assert!(
        s["token_requests"].as_u64().unwrap_or(0) >= 3,
        "tokens were refreshed: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_without_the_token() {
    let emu = start(&["--redirect", "--interactions", "20"]).await;
    let c = client(&emu, |_| {});
    let (i, key) = biggest(&emu);
    let v = version(&i, &key);
    let truth = emu.tenant().bytes(&i.guid, &key).expect("truth");
    for (off, len) in [(0u64, 100u64), (1000, 70_000), (v.size - 10, 10)] {
        let got = c.read_range(&v, off, len).await.expect("read via redirect");
        assert!(got[..] == truth[off as usize..(off + len) as usize]);
    }
    let s = stats(&emu).await;
    assert_eq!(s["auth_leaked"], 0, "{s}");
    assert!(s["storage_requests"].as_u64().unwrap_or(0) >= 3, "{s}");
    assert!(
        s["content_requests"].as_u64().unwrap_or(0) < 3,
        "the signed URL is reused, not re-requested from the API: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_server_still_gives_exact_bytes() {
    let emu = start(&[
        "--fail-rate",
        "0.2",
        "--reset-rate",
        "0.2",
        "--interactions",
        "20",
    ])
    .await;
    let c = client(&emu, |_| {});
    let (i, key) = biggest(&emu);
    let v = Arc::new(version(&i, &key));
    let truth = emu.tenant().bytes(&i.guid, &key).expect("truth");
    let mut x: u64 = 12345;
    for _ in 0..60 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = (x >> 33) % v.size;
        let len = 1 + (x >> 20) % 300_000;
        let got = c
            .read_range(&v, off, len)
            .await
            .expect("transient faults are retried");
        let end = (off + len).min(v.size);
        assert!(
            got[..] == truth[off as usize..end as usize],
            "range {off}+{len}"
        );
    }
    let s = stats(&emu).await;
    assert!(
        s["status_5xx"].as_u64().unwrap_or(0) > 0 && s["resets"].as_u64().unwrap_or(0) > 0,
        "faults were injected: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_servers_never_yield_wrong_bytes() {
    for flag in [
        "--wrong-range-rate",
        "--short-body-rate",
        "--ignore-range-rate",
    ] {
        // Sometimes lying: retries give the exact bytes.
        let emu = start(&[flag, "0.5", "--interactions", "10"]).await;
        let c = client(&emu, |cfg| cfg.retry_deadline = Duration::from_secs(20));
        let (i, key) = biggest(&emu);
        let v = version(&i, &key);
        let truth = emu.tenant().bytes(&i.guid, &key).expect("truth");
        for k in 0..20u64 {
            let off = (k * 7919 * 131) % v.size;
            match c.read_range(&v, off, 5000).await {
                Ok(got) => {
                    let end = (off + 5000).min(v.size);
                    assert!(
                        got[..] == truth[off as usize..end as usize],
                        "{flag}: wrong bytes at {off}"
                    );
                }
                Err(e) => panic!("{flag} 0.5: {e}"),
            }
        }
        emu.shutdown().await;
    }
    // Always lying: a typed error, never bytes.
    let emu = start(&["--wrong-range-rate", "1", "--interactions", "10"]).await;
    let c = client(&emu, |cfg| cfg.retry_deadline = Duration::from_secs(2));
    let (i, key) = biggest(&emu);
    let v = version(&i, &key);
    match c.read_range(&v, 1000, 5000).await {
        Err(ApiError::Protocol { .. }) => {}
        other => panic!("expected Protocol, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_content_is_reported_not_mixed() {
    let emu = start(&["--interactions", "10"]).await;
    let c = client(&emu, |_| {});
    let (i, key) = biggest(&emu);
    let v = version(&i, &key);
    let first = c.read_range(&v, 0, 4096).await.expect("first read");
    assert_eq!(first.len(), 4096);
    emu.tenant().mutate(&i.guid, &key, 60).expect("mutate");
    match c.read_range(&v, 4096, 4096).await {
        Err(ApiError::Changed { .. }) => {}
        other => panic!("expected Changed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_typed() {
    let emu = start(&["--interactions", "5"]).await;
    let c = client(&emu, |_| {});
    match c.interaction("00000000-0000-4000-8000-000000000000").await {
        Err(ApiError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_unauthorized() {
    let emu = start(&["--interactions", "5"]).await;
    let creds = Credentials {
        client_id: emu.client_id().to_string(),
        client_secret: "nope".into(),
    };
    let c = ApiClient::new(ApiConfig::new(&emu.api_url, &emu.auth_url, creds).expect("cfg"))
        .expect("client");
    match c.interaction("2480fc2c-bbd7-427c-9439-02f76583aef5").await {
        Err(e @ ApiError::Unauthorized { .. }) => assert!(!e.to_string().contains("nope")),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_burst_queues_instead_of_failing() {
    let emu = start(&["--rate-limit", "60", "--interactions", "30"]).await;
    let c = client(&emu, |cfg| {
        cfg.max_rpm = Some(60);
        cfg.retry_deadline = Duration::from_secs(120);
    });
    let guids: Vec<String> = emu
        .tenant()
        .interactions()
        .iter()
        .map(|i| i.guid.clone())
        .collect();
    let calls = (0..100).map(|k| {
        let c = c.clone();
        let g = guids[k % guids.len()].clone();
        tokio::spawn(async move { c.interaction(&g).await })
    });
    for r in futures::future::join_all(calls).await {
        r.expect("task").expect("every call succeeds");
    }
    let s = stats(&emu).await;
    assert!(
        s["status_429"].as_u64().unwrap_or(99) <= 5,
        "few or no 429s: {s}"
    );
}

/// One emulator and client shared by all property-test cases.
struct Shared {
    rt: tokio::runtime::Runtime,
    emu: RunningEmulator,
    client: ApiClient,
    items: Vec<(Interaction, String)>,
}

fn shared() -> &'static Shared {
    static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let emu = rt.block_on(start(&["--interactions", "12"]));
        let client = client(&emu, |_| {});
        let items = emu
            .tenant()
            .interactions()
            .into_iter()
            .flat_map(|i| {
                let keys: Vec<String> = i.content.iter().map(|c| c.content_key.clone()).collect();
                keys.into_iter().map(move |k| (i.clone(), k))
            })
            .collect();
        Shared {
            rt,
            emu,
            client,
            items,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]
    #[test]
    fn random_ranges_match_the_source(pick in 0u64..u64::MAX, len in 1u64..400_000) {
        let s = shared();
        let (i, key) = &s.items[(pick % s.items.len() as u64) as usize];
        let v = version(i, key);
        let off = (pick >> 7) % v.size.max(1);
        let got = s.rt.block_on(s.client.read_range(&v, off, len)).expect("read");
        let end = (off + len).min(v.size);
        let want = s.emu.tenant().read(&i.guid, key, off..end).expect("truth");
        prop_assert!(got[..] == want[..], "{}/{} {}+{}", i.guid, key, off, len);
    }
}
