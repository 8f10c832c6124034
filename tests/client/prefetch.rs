//! The read path (cache + read-ahead) against the emulator over loopback HTTP.

use std::sync::Arc;

use parking_lot::Mutex;
use proptest::prelude::*;
use vccfs::api::{ApiClient, ApiConfig, Credentials};
use vccfs::emulator::{self, EmulatorArgs, RunningEmulator};
use vccfs::testing::{BlockCache, ContentId, ContentVersion};
use vccfs::testing::{OpenVersion, Prefetcher, ReadAhead, ReadAheadConfig, Retention};

const BLOCK: u64 = 256 << 10;

fn args(extra: &[&str]) -> EmulatorArgs {
    let mut flags = vec!["--listen", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    EmulatorArgs::from_flags(&flags).expect("flags parse")
}

struct Rig {
    rt: tokio::runtime::Runtime,
    emu: RunningEmulator,
    client: ApiClient,
}

impl Rig {
    fn new(extra: &[&str]) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt");
        let emu = rt.block_on(emulator::start(args(extra))).expect("emulator");
        let creds = Credentials {
            client_id: emu.client_id().to_string(),
            client_secret: emu.client_secret().to_string(),
        };
        let client =
            ApiClient::new(ApiConfig::new(&emu.api_url, &emu.auth_url, creds).expect("cfg"))
                .expect("client");
        Rig { rt, emu, client }
    }

    fn prefetcher(&self, cache_size: u64) -> Prefetcher {
        self.prefetcher_with(cache_size, ReadAheadConfig::default())
    }

    fn prefetcher_with(&self, cache_size: u64, cfg: ReadAheadConfig) -> Prefetcher {
        Prefetcher::new(
            Arc::new(self.client.clone()),
            Arc::new(BlockCache::new(cache_size, BLOCK)),
            cfg,
            self.rt.handle().clone(),
        )
    }

    /// The big screen recording: (source, ground-truth reader).
    fn big(&self, content: u64) -> (OpenVersion, String, String) {
        let (guid, key) = self.emu.tenant().big_file().expect("big file");
        let item = self.emu.tenant().item(&guid, &key).expect("item");
        let v = ContentVersion::new(
            self.client.config().tenant(),
            &guid,
            &key,
            item.content_length.expect("len"),
            item.last_modified,
        );
        (
            OpenVersion {
                content: ContentId(content),
                version: Arc::new(v),
            },
            guid,
            key,
        )
    }
}

#[test]
fn sequential_reads_use_few_large_requests() {
    let rig = Rig::new(&["--interactions", "5", "--big-file-mib", "64"]);
    let p = rig.prefetcher(256 << 20);
    let (src, guid, key) = rig.big(1);
    let truth = rig.emu.tenant().bytes(&guid, &key).expect("truth");
    let ra = Mutex::new(ReadAhead::default());
    let retention = p.retention(src.version.size, false);
    let before = rig.client.stats().content_requests;
    let mut off = 0u64;
    while off < src.version.size {
        let got = rig
            .rt
            .block_on(p.read(&src, &ra, off, 128 << 10, &retention))
            .expect("read");
        assert!(
            got[..] == truth[off as usize..off as usize + got.len()],
            "bytes at {off}"
        );
        off += got.len() as u64;
    }
    let requests = rig.client.stats().content_requests - before;
    let avg = src.version.size / requests.max(1);
    assert!(requests <= 32, "{requests} requests for 64 MiB");
    assert!(avg >= 2 << 20, "average request {avg} bytes");

    // A tail probe after that is served from cache; a seek elsewhere in a cold file
    // costs one request, not a restart of a big stream.
    let (cold, _, _) = rig.big(2);
    let ra = Mutex::new(ReadAhead::default());
    let before = rig.client.stats().content_requests;
    let d = p.retention(cold.version.size, false);
    let head = rig
        .rt
        .block_on(p.read(&cold, &ra, 0, 4096, &d))
        .expect("head");
    assert_eq!(head.len(), 4096);
    let tail_at = cold.version.size - 10_000;
    let tail = rig
        .rt
        .block_on(p.read(&cold, &ra, tail_at, 10_000, &d))
        .expect("tail");
    assert!(tail[..] == truth[tail_at as usize..]);
    let mid = rig
        .rt
        .block_on(p.read(&cold, &ra, 30 << 20, 4096, &d))
        .expect("seek");
    assert!(mid[..] == truth[30 << 20..(30 << 20) + 4096]);
    assert_eq!(
        rig.client.stats().content_requests - before,
        3,
        "one request per probe"
    );
}

/// A large file read through the page cache leaves the block cache as the kernel takes
/// it; small files, and what an O_DIRECT reader reads, stay for the next reader.
#[test]
fn streamed_files_hand_blocks_to_the_page_cache_others_stay_cached() {
    let rig = Rig::new(&["--interactions", "5", "--big-file-mib", "64"]);
    let truth = rig
        .emu
        .tenant()
        .bytes(&rig.big(1).1, &rig.big(1).2)
        .expect("truth");
    let cfg = ReadAheadConfig {
        max_window: 8 << 20,
        ..ReadAheadConfig::default()
    };
    let stream = |p: &Prefetcher, src: &OpenVersion, retention: &Retention, step: u64| {
        let ra = Mutex::new(ReadAhead::default());
        let mut peak = 0;
        let mut off = 0u64;
        while off < src.version.size {
            let got = rig
                .rt
                .block_on(p.read(src, &ra, off, step, retention))
                .expect("read");
            assert!(got[..] == truth[off as usize..off as usize + got.len()]);
            off += got.len() as u64;
            peak = peak.max(p.cache().stats().cached_bytes);
        }
        peak
    };
    for step in [1 << 20, 100_000] {
        // Page cache: only read-ahead not yet consumed is cached, and the buffers are
        // reused: the pool maps far less than the file.
        let p = rig.prefetcher_with(96 << 20, cfg.clone());
        let (src, _, _) = rig.big(10 + step);
        let retention = p.retention(src.version.size, false);
        assert!(matches!(retention, Retention::HandOver(_)));
        assert!(matches!(
            p.retention(src.version.size, true),
            Retention::Keep
        ));
        assert!(matches!(p.retention(8 << 20, false), Retention::Keep));
        let peak = stream(&p, &src, &retention, step);
        let left = p.cache().stats();
        assert!(
            left.cached_bytes <= 2 * BLOCK,
            "step {step}: {} bytes still cached after a page-cache read",
            left.cached_bytes
        );
        assert!(peak < 20 << 20, "step {step}: peak {peak} cached");
        let mapped = p.cache().pool().mapped_bytes() as u64;
        assert!(mapped < 24 << 20, "step {step}: pool mapped {mapped}");

        // Direct: everything stays, and a second reader costs no request.
        let p = rig.prefetcher_with(96 << 20, cfg.clone());
        let (src, _, _) = rig.big(20 + step);
        stream(&p, &src, &Retention::Keep, step);
        assert_eq!(p.cache().stats().cached_bytes, src.version.size);
        let before = rig.client.stats().content_requests;
        stream(&p, &src, &Retention::Keep, step);
        assert_eq!(rig.client.stats().content_requests, before);
    }
}

#[test]
fn small_files_cost_one_request() {
    let rig = Rig::new(&["--interactions", "20"]);
    let p = rig.prefetcher(64 << 20);
    let tenant = rig.emu.tenant();
    let mut n = 0;
    for (k, i) in tenant.interactions().into_iter().enumerate() {
        for c in &i.content {
            let size = c.content_length.expect("len");
            if size == 0 || size > BLOCK {
                continue;
            }
            let v = ContentVersion::new(
                rig.client.config().tenant(),
                &i.guid,
                &c.content_key,
                size,
                c.last_modified,
            );
            let src = OpenVersion {
                content: ContentId(1000 + k as u64 * 100 + n),
                version: Arc::new(v),
            };
            let ra = Mutex::new(ReadAhead::default());
            let before = rig.client.stats().content_requests;
            let mut got = Vec::new();
            while (got.len() as u64) < size {
                let chunk = rig
                    .rt
                    .block_on(p.read(&src, &ra, got.len() as u64, 4096, &Retention::Keep))
                    .expect("read");
                got.extend_from_slice(&chunk);
            }
            assert_eq!(
                rig.client.stats().content_requests - before,
                1,
                "{}/{}",
                i.guid,
                c.content_key
            );
            assert!(got == tenant.bytes(&i.guid, &c.content_key).expect("truth"));
            n += 1;
        }
    }
    assert!(n > 20, "only {n} small files");
}

/// One rig for all property cases.
fn shared() -> &'static (Rig, Prefetcher) {
    static SHARED: std::sync::OnceLock<(Rig, Prefetcher)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let rig = Rig::new(&["--interactions", "5", "--big-file-mib", "16"]);
        // A small cache so that eviction happens during the cases.
        let p = rig.prefetcher(6 << 20);
        (rig, p)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn random_read_sequences_return_exact_bytes(reads in proptest::collection::vec((0u64..(16 << 20), 1u64..(1 << 20), any::<bool>()), 1..40), keep in any::<bool>()) {
        let (rig, p) = shared();
        let (src, guid, key) = rig.big(7);
        let tenant = rig.emu.tenant();
        let ra = Mutex::new(ReadAhead::default());
        let retention = if keep { Retention::Keep } else { p.retention(src.version.size, false) };
        let mut last_end = 0u64;
        for (off, len, sequential) in reads {
            // Mix seeks with sequential continuations.
            let off = if sequential { last_end } else { off };
            let got = rig.rt.block_on(p.read(&src, &ra, off, len, &retention)).expect("read");
            let end = (off + len).min(src.version.size);
            let want = tenant.read(&guid, &key, off..end.max(off)).expect("truth");
            prop_assert!(got[..] == want[..], "read {}+{}", off, len);
            last_end = end;
        }
    }
}
