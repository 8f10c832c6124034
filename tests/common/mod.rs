//! Test harness: a real `vccfs emulator` process, a real FUSE mount by a real `vccfs
//! mount` process, and ground truth fetched directly over HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod redis;

pub const BIN: &str = env!("CARGO_BIN_EXE_vccfs");

/// A cache directory of this test process's own, for `vccfs` commands run directly
/// (`Mount` gives each mount its own): nothing carries over from another run.
pub fn scratch_cache() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// FUSE is required in CI; elsewhere a missing FUSE skips with a visible message.
pub fn fuse_available() -> bool {
    let ok = Path::new("/dev/fuse").exists() && which("fusermount3");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "FUSE (/dev/fuse, fusermount3) is required in CI"
        );
        eprintln!("SKIP: FUSE not available (need /dev/fuse and fusermount3)");
    }
    ok
}

pub fn which(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A running `vccfs emulator`.
pub struct Emulator {
    child: Child,
    pub api_url: String,
    pub auth_url: String,
    pub stats_url: String,
    pub client_id: String,
    pub client_secret: String,
    http: Http,
}

impl Emulator {
    pub fn start(args: &[&str]) -> Emulator {
        let mut child = Command::new(BIN)
            .arg("emulator")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start emulator");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut kv = HashMap::new();
        while kv.len() < 5 {
            let line = lines
                .next()
                .expect("emulator exited early")
                .expect("read line");
            if let Some((k, v)) = line.split_once('=') {
                kv.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        // Keep draining stdout so the emulator never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let get = |k: &str| {
            kv.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("emulator did not print {k}"))
        };
        Emulator {
            api_url: get("api_url"),
            auth_url: get("auth_url"),
            stats_url: get("stats_url"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            child,
            http: Http::new(),
        }
    }

    /// `GET /_emulator/stats`.
    pub fn stats(&self) -> Value {
        self.http.get_json(&self.stats_url, None)
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("stats has no {name}"))
    }

    /// `DELETE /_emulator/stats`.
    pub fn reset_stats(&self) {
        self.http.delete(&self.stats_url);
    }

    pub fn control(&self, path: &str, body: Value) {
        let base = self.stats_url.trim_end_matches("/_emulator/stats");
        self.http.post_json(&format!("{base}{path}"), body);
    }

    pub fn token(&self) -> String {
        let v = self.http.post_form(
            &self.auth_url,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "interaction-content:read"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
            ],
        );
        v["access_token"].as_str().expect("token").to_string()
    }

    /// Every interaction between `from` and `to` (RFC 3339), via the API directly.
    pub fn interactions(
        &self,
        token: &str,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        let mut a = from;
        while a < to {
            let b = (a + time::Duration::days(7)).min(to);
            let mut cont: Option<String> = None;
            loop {
                let mut url = format!(
                    "{}/interactions?start={}&end={}&limit=1000",
                    self.api_url,
                    vccfs::util::format_rfc3339(a),
                    vccfs::util::format_rfc3339(b)
                );
                if let Some(c) = &cont {
                    url.push_str(&format!("&continuationToken={}", urlencode(c)));
                }
                let page = self.http.get_json(&url, Some(token));
                out.extend(page["items"].as_array().expect("items").iter().cloned());
                match page["meta"]["nextContinuationToken"].as_str() {
                    Some(c) => cont = Some(c.to_string()),
                    None => break,
                }
            }
            a = b;
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|i| seen.insert(i["guid"].as_str().unwrap_or_default().to_string()));
        out
    }

    /// The bytes of one content item, downloaded directly.
    pub fn content(&self, token: &str, guid: &str, key: &str) -> Vec<u8> {
        self.http.get_bytes(
            &format!("{}/interactions/{guid}/content/{key}", self.api_url),
            token,
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A live `vccfs mount` of an emulator.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    child: Option<Child>,
    pub from: time::OffsetDateTime,
    pub to: time::OffsetDateTime,
}

impl Mount {
    /// The daemon's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let pid = self.child.as_ref().map(|c| c.id()).expect("daemon running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .expect("VmHWM")
    }

    /// Mount `emu` covering the last 40 days, with extra flags.
    pub fn start(emu: &Emulator, extra: &[&str]) -> Mount {
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("ns");
        let from = now - time::Duration::days(40);
        let to = now + time::Duration::days(1);
        Self::start_window(emu, from, to, extra)
    }

    pub fn start_window(
        emu: &Emulator,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
        extra: &[&str],
    ) -> Mount {
        Self::spawn(emu, from, to, &vccfs::util::format_rfc3339(to), extra)
    }

    /// A mount from `from` to `--to now`: a window whose end follows the clock.
    pub fn start_rolling(emu: &Emulator, from: time::OffsetDateTime, extra: &[&str]) -> Mount {
        let to = time::OffsetDateTime::now_utc();
        Self::spawn(emu, from, to, "now", extra)
    }

    fn spawn(
        emu: &Emulator,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
        to_arg: &str,
        extra: &[&str],
    ) -> Mount {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mkdir");
        // Each mount its own cache directory unless the test names one: nothing carries
        // over between tests or runs by accident.
        let own_cache = ["--cache-dir", "--no-disk-cache"]
            .iter()
            .all(|f| !extra.contains(f));
        let cache_dir = dir.path().join("cache");
        let cache_flag: Vec<&std::ffi::OsStr> = if own_cache {
            vec!["--cache-dir".as_ref(), cache_dir.as_os_str()]
        } else {
            Vec::new()
        };
        let child = Command::new(BIN)
            .arg("mount")
            .arg(&path)
            .args(cache_flag)
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            // root's default (never /tmp): this mount's own, like the XDG one for others
            .env(
                "CACHE_DIRECTORY",
                dir.path().join("xdg-cache").join("vccfs"),
            )
            .args(["--api-url", &emu.api_url, "--auth-url", &emu.auth_url])
            .args(["--from", &vccfs::util::format_rfc3339(from), "--to", to_arg])
            .args(extra)
            .env("VCC_CLIENT_ID", &emu.client_id)
            .env("VCC_CLIENT_SECRET", &emu.client_secret)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vccfs mount");
        let mut m = Mount {
            dir,
            path,
            child: Some(child),
            from,
            to,
        };
        m.wait_mounted();
        m
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if is_mounted(&self.path) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("vccfs mount exited early: {status}");
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mount did not come up within 30 s");
    }

    pub fn interactions_dir(&self) -> PathBuf {
        self.path.join("interactions")
    }

    /// `vccfs status --json` of this mount (the command must succeed).
    pub fn status(&self) -> Value {
        let out = Command::new(BIN)
            .args(["status", "--json", &self.path.to_string_lossy()])
            .output()
            .expect("vccfs status --json");
        assert!(
            out.status.success(),
            "vccfs status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status json")
    }

    /// The cache directory this mount uses unless the test named one.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Unmount and wait for the daemon to exit.
    pub fn stop(mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.path)
            .status();
        assert!(
            self.wait_exit(Duration::from_secs(20)).is_some(),
            "the daemon did not exit after unmount"
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Wait for the serving process to exit (after an unmount or a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if is_mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.path)
                .status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if is_mounted(&self.path) {
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.path)
                .status();
        }
    }
}

/// `vccfs unmount PATH`, with this run's scratch cache (the command must run).
pub fn vccfs_unmount(path: &Path) -> std::process::Output {
    Command::new(BIN)
        .env("XDG_CACHE_HOME", scratch_cache())
        .env("CACHE_DIRECTORY", scratch_cache().join("vccfs"))
        .arg("unmount")
        .arg(path)
        .output()
        .expect("unmount")
}

pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Run a shell command, returning (status ok, stdout, stderr).
pub fn sh(cmd: &str) -> (bool, String, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A small synchronous HTTP client for the tests (reqwest on a private runtime).
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt"),
            client: reqwest::Client::new(),
        }
    }

    pub fn get_json(&self, url: &str, token: Option<&str>) -> Value {
        self.rt.block_on(async {
            let mut req = self
                .client
                .get(url)
                .header("Accept", "application/vnd.newvoicemedia.v3+json");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.expect("GET");
            assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
            resp.json().await.expect("json")
        })
    }

    pub fn get_bytes(&self, url: &str, token: &str) -> Vec<u8> {
        self.rt.block_on(async {
            let resp = self
                .client
                .get(url)
                .header("Accept", "application/vnd.newvoicemedia.v3+json")
                .bearer_auth(token)
                .send()
                .await
                .expect("GET");
            assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
            resp.bytes().await.expect("body").to_vec()
        })
    }

    pub fn delete(&self, url: &str) {
        self.rt.block_on(async {
            let resp = self.client.delete(url).send().await.expect("DELETE");
            assert!(
                resp.status().is_success(),
                "DELETE {url}: {}",
                resp.status()
            );
        })
    }

    pub fn post_json(&self, url: &str, body: Value) {
        self.rt.block_on(async {
            let resp = self
                .client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
        })
    }

    pub fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Value {
        self.rt.block_on(async {
            let resp = self.client.post(url).form(form).send().await.expect("POST");
            assert!(resp.status().is_success(), "POST {url}: {}", resp.status());
            resp.json().await.expect("json")
        })
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}
