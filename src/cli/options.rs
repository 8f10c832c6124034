//! `vccfs mount` flags → [`MountOptions`]: every check that needs no network and no
//! mountpoint (times, URLs, credentials, limits, sizes), each failing with one
//! [`CliError::Usage`] line that names the flag.
//!
//! Safe on a shared host:
//! - secret files (`--credentials`, `--redis-credentials`, `--cache-key-file`) are read
//!   with [`crate::util::read_private_file`] only (one `O_NOFOLLOW` open, `fstat`
//!   checks: ours, regular, mode `0600` or tighter);
//! - no secret is accepted on the command line, where every local user can read it
//!   (`/proc/PID/cmdline`), and so none reaches the `--daemon` child, which is given
//!   the same arguments: a password inside a `--redis`/`--redis-control` URL (or
//!   `REDIS_URL`, or fstab `redis=`) is refused in favour of `--redis-credentials`;
//! - nothing secret travels in clear: `--api-url`/`--auth-url` must be https unless
//!   loopback (checked by [`ApiConfig::new`]); a plain `redis://` URL to another host
//!   needs `--redis-allow-plaintext`; a `--metrics` address off loopback is warned
//!   about ([`warnings`]).

use std::time::Duration;

use crate::api::{ApiConfig, Credentials};
use crate::mount::{DiskOptions, MountOptions, RedisOptions};
use crate::source::disk::DiskEncryption;
use crate::util::{format_rfc3339, now_secs, parse_time_spec};

use super::{CliError, ConnectArgs, MountArgs};

/// Check and resolve the command-line options (no network yet).
pub fn mount_options(a: &MountArgs) -> Result<MountOptions, CliError> {
    let now = now_secs();
    let from =
        parse_time_spec(&a.from, now).map_err(|e| CliError::Usage(format!("--from: {e}")))?;
    let to = parse_time_spec(&a.to, now).map_err(|e| CliError::Usage(format!("--to: {e}")))?;
    if from >= to {
        return Err(CliError::Usage(format!(
            "--from ({}) must be before --to ({})",
            format_rfc3339(from),
            format_rfc3339(to)
        )));
    }
    let mut api = api_config(&a.connect)?;
    if let Some(rpm) = a.max_rpm {
        if rpm == 0 {
            return Err(CliError::Usage("--max-rpm must be at least 1".into()));
        }
        api.max_rpm = Some(rpm);
    }
    if a.io_timeout == 0 {
        return Err(CliError::Usage(
            "--io-timeout must be at least 1 second".into(),
        ));
    }
    api.retry_deadline = Duration::from_secs(a.io_timeout);
    // A stalled body is abandoned after a quarter of the retry time, so it can be retried.
    api.read_timeout = Duration::from_secs((a.io_timeout / 4).clamp(1, 10));
    check_sizes(a.cache_size, a.block_size)?;
    if a.catalog_memory == 0 {
        return Err(CliError::Usage(
            "--catalog-memory must be more than 0 (e.g. 256M)".into(),
        ));
    }
    if let Some(path) = &a.cache_key_file {
        // Checked now, so a bad key file is a one-line error before anything mounts.
        crate::seal::RootKey::from_key_file(path, api.tenant())
            .map_err(|e| CliError::Usage(format!("--cache-key-file: {e}")))?;
    }
    Ok(MountOptions {
        mountpoint: a.mountpoint.clone(),
        api,
        from,
        to,
        cache_size: a.cache_size,
        catalog_memory: a.catalog_memory,
        block_size: a.block_size,
        allow_other: a.allow_other,
        allow_root: a.allow_root,
        access: super::owner::access(a)?,
        daemon: a.daemon,
        refresh: Duration::from_secs(a.refresh),
        log_file: a.log_file.clone(),
        audit_log: audit_log(a)?,
        calls_name: crate::catalog::views::Template::parse(&a.calls_name)
            .map_err(|e| CliError::Usage(e.to_string()))?,
        banner: None,
        disk: disk_options(a)?,
        redis: redis_options(a)?,
        metrics: a.metrics,
        rolling: a.to.trim().eq_ignore_ascii_case("now"),
        cache_key_file: a.cache_key_file.clone(),
    })
}

/// `--region`, `--api-url`, `--auth-url`, `--credentials` (or the environment) →
/// the client's configuration; `mount` and `doctor` both resolve them here.
pub fn api_config(a: &ConnectArgs) -> Result<ApiConfig, CliError> {
    let (api_url, auth_url) = match (&a.api_url, &a.auth_url) {
        (Some(api), Some(auth)) => (api.clone(), auth.clone()),
        (Some(api), None) => (api.clone(), derived_auth_url(api)?),
        (None, Some(auth)) => (a.region.api_url(), auth.clone()),
        (None, None) => (a.region.api_url(), a.region.auth_url()),
    };
    if !api_url
        .trim_end_matches('/')
        .ends_with("/interaction-content")
    {
        return Err(CliError::Usage(format!(
            "--api-url {api_url:?} must end in /interaction-content (e.g. https://emea.api.newvoicemedia.com/interaction-content)"
        )));
    }
    let credentials = match &a.credentials {
        Some(path) => Credentials::from_file(path)?,
        None => Credentials::from_env().ok_or_else(|| {
            CliError::Usage(
                "no credentials: set VCC_CLIENT_ID and VCC_CLIENT_SECRET, or pass --credentials FILE (try `vccfs demo` to run without an account)".into(),
            )
        })?,
    };
    Ok(ApiConfig::new(&api_url, &auth_url, credentials)?)
}

/// `--redis`, `--redis-credentials`, `--fallback-rpm`.
/// What the mount may do but should be told about: one line each, printed before it
/// starts (by the process the user started, not the `--daemon` child).
pub fn warnings(opts: &MountOptions) -> Vec<String> {
    metrics_warning(opts.metrics).into_iter().collect()
}

/// The warning a `--metrics` address off loopback gets.
fn metrics_warning(addr: Option<std::net::SocketAddr>) -> Option<String> {
    let addr = addr.filter(|a| !a.ip().is_loopback())?;
    Some(format!(
        "--metrics {addr} is not a loopback address: metrics have no authentication, anyone who can reach it reads them"
    ))
}

/// `--redis`, `--redis-credentials`, `--redis-control`, `--redis-allow-plaintext`,
/// `--fallback-rpm`.
fn redis_options(a: &MountArgs) -> Result<Option<RedisOptions>, CliError> {
    let Some(url) = &a.redis else {
        return Ok(None);
    };
    check_redis_url("--redis", url, a.redis_allow_plaintext)?;
    if let Some(c) = &a.redis_control {
        check_redis_url("--redis-control", c, a.redis_allow_plaintext)?;
    }
    let password = a
        .redis_credentials
        .as_deref()
        .map(read_secret)
        .transpose()?;
    let with_password = |flag: &str, url: &str| -> Result<String, CliError> {
        let Some(password) = &password else {
            return Ok(url.to_string());
        };
        let mut parsed =
            url::Url::parse(url).map_err(|e| CliError::Usage(format!("{flag}: {e}")))?;
        parsed
            .set_password(Some(password.as_str()))
            .map_err(|()| CliError::Usage(format!("{flag}: this URL cannot carry a password")))?;
        Ok(parsed.to_string())
    };
    let url = with_password("--redis", url)?;
    let control_url = a
        .redis_control
        .as_deref()
        .map(|c| with_password("--redis-control", c))
        .transpose()?;
    if a.fallback_rpm == Some(0) {
        return Err(CliError::Usage("--fallback-rpm must be at least 1".into()));
    }
    let ca_pem = a
        .redis_ca
        .as_deref()
        .map(|path| read_ca(path, &url, control_url.as_deref()))
        .transpose()?;
    Ok(Some(RedisOptions {
        url,
        control_url,
        fallback_rpm: a.fallback_rpm,
        ca_pem,
    }))
}

/// Longest `--redis-ca` file read.
const MAX_REDIS_CA: u64 = 1 << 20;

/// `--redis-ca FILE`: PEM certificates a TLS client takes, for `rediss://` URLs only
/// (a CA certificate is not secret: any owner and mode).
fn read_ca(path: &std::path::Path, url: &str, control: Option<&str>) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let shown = path.display();
    let tls = |u: &str| u.starts_with("rediss://");
    if !tls(url) || control.is_some_and(|c| !tls(c)) {
        return Err(CliError::Usage(
            "--redis-ca applies to rediss:// URLs only (TLS)".into(),
        ));
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_REDIS_CA + 1).read_to_end(&mut pem))
        .map_err(|e| CliError::Usage(format!("--redis-ca {shown}: {e}")))?;
    if pem.len() as u64 > MAX_REDIS_CA {
        return Err(CliError::Usage(format!("--redis-ca {shown}: over 1 MiB")));
    }
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(CliError::Usage(format!(
            "--redis-ca {shown}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
        )));
    }
    // What the client will be built with: refused here, in one line, not at connect.
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        },
    )
    .map_err(|e| CliError::Usage(format!("--redis-ca {shown}: {e}")))?;
    Ok(pem)
}

/// A Redis URL as given on the command line (or `REDIS_URL`, or fstab `redis=`): a
/// `redis://`/`rediss://` URL without a password, and TLS unless the host is loopback
/// or `allow_plaintext`. Messages never show the password.
fn check_redis_url(flag: &str, url: &str, allow_plaintext: bool) -> Result<(), CliError> {
    let named = if flag == "--redis" {
        "--redis (or REDIS_URL)"
    } else {
        flag
    };
    crate::fleet::check_url(url).map_err(|e| CliError::Usage(format!("{named}: {e}")))?;
    let parsed = url::Url::parse(url).map_err(|e| CliError::Usage(format!("{named}: {e}")))?;
    if parsed.password().is_some() {
        return Err(CliError::Usage(format!(
            "{named}: the URL holds a password, which every local user can read in the process list; put it in a mode-600 file and pass --redis-credentials FILE"
        )));
    }
    if parsed.scheme() == "redis" && !allow_plaintext && !crate::util::wire::is_loopback(&parsed) {
        return Err(CliError::Usage(format!(
            "{named} {}: plain redis:// to another host sends the Redis password and the access pattern in clear; use rediss:// (TLS), or pass --redis-allow-plaintext",
            crate::util::wire::origin(&parsed)
        )));
    }
    Ok(())
}

/// The longest `--redis-credentials` file read.
const MAX_REDIS_CREDENTIALS: u64 = 4096;

/// The one-line secret in `path`, which only its owner may read
/// ([`crate::util::read_private_file`]); wiped from memory when dropped.
fn read_secret(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, CliError> {
    let shown = path.display();
    let raw = crate::util::read_private_file(path, MAX_REDIS_CREDENTIALS)
        .map_err(|e| CliError::Usage(format!("--redis-credentials {e}")))?;
    let text = std::str::from_utf8(&raw)
        .map_err(|_| CliError::Usage(format!("--redis-credentials {shown}: not UTF-8 text")))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let secret = line
        .map(|l| l.strip_prefix("REDIS_PASSWORD=").unwrap_or(l).to_string())
        .filter(|s| !s.is_empty())
        .map(zeroize::Zeroizing::new)
        .ok_or_else(|| CliError::Usage(format!("--redis-credentials {shown} is empty")))?;
    Ok(secret)
}

/// `--cache-dir`, `--disk-cache-size`, `--no-disk-cache`, `--disk-encryption`,
/// `--disk-cache-max-age`.
fn disk_options(a: &MountArgs) -> Result<Option<DiskOptions>, CliError> {
    if a.no_disk_cache {
        return Ok(None);
    }
    if a.disk_cache_size == 0 {
        return Err(CliError::Usage(
            "--disk-cache-size must be more than 0 (or use --no-disk-cache)".into(),
        ));
    }
    if a.disk_cache_max_age.is_zero() {
        return Err(CliError::Usage(
            "--disk-cache-max-age must be more than 0".into(),
        ));
    }
    let root = match &a.cache_dir {
        Some(d) => d.clone(),
        // No default without HOME or XDG_CACHE_HOME (never /tmp): a one-line error.
        None => crate::source::disk::default_root().map_err(|e| CliError::Usage(e.to_string()))?,
    };
    let plain = a.disk_encryption == DiskEncryption::None;
    Ok(Some(DiskOptions {
        root,
        max_bytes: a.disk_cache_size,
        // A sealed file cannot be handed to the kernel.
        passthrough: !a.no_passthrough && plain,
        encryption: a.disk_encryption,
        max_age: a.disk_cache_max_age,
    }))
}

/// `https://host/x/interaction-content` → `https://host/Auth/connect/token`.
fn derived_auth_url(api_url: &str) -> Result<String, CliError> {
    let url = url::Url::parse(api_url)
        .map_err(|e| CliError::Usage(format!("--api-url {api_url:?}: {e}")))?;
    let mut auth = url.clone();
    auth.set_path("/Auth/connect/token");
    auth.set_query(None);
    Ok(auth.to_string())
}

/// `--cache-size` and `--block-size` (also the demo's): non-zero, within this machine's
/// memory, a power-of-two block no bigger than the cache.
pub(super) fn check_sizes(cache_size: u64, block_size: u64) -> Result<(), CliError> {
    if cache_size == 0 {
        return Err(CliError::Usage(
            "--cache-size must be more than 0 (e.g. 256M)".into(),
        ));
    }
    if let Some(mem) = physical_memory() {
        if cache_size > mem {
            return Err(CliError::Usage(format!(
                "--cache-size {} MiB is more than this machine's memory ({} MiB)",
                cache_size >> 20,
                mem >> 20
            )));
        }
    }
    if !(4096..=(64 << 20)).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(CliError::Usage(
            "--block-size must be a power of two between 4K and 64M".into(),
        ));
    }
    if block_size > cache_size {
        return Err(CliError::Usage(
            "--block-size must not exceed --cache-size".into(),
        ));
    }
    Ok(())
}

fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && page > 0).then(|| pages as u64 * page as u64)
}

/// `--audit-log FILE`: made absolute (a daemon may change directory); a symlink or a
/// directory is a one-line error now, before anything mounts (the daemon opens it
/// with `O_NOFOLLOW` again).
fn audit_log(a: &MountArgs) -> Result<Option<std::path::PathBuf>, CliError> {
    let Some(path) = &a.audit_log else {
        return Ok(None);
    };
    let path = std::path::absolute(path)
        .map_err(|e| CliError::Usage(format!("--audit-log {}: {e}", path.display())))?;
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(CliError::Usage(
            crate::audit::AuditError::Symlink(path).to_string(),
        )),
        Ok(m) if !m.is_file() => Err(CliError::Usage(
            crate::audit::AuditError::NotAFile(path).to_string(),
        )),
        _ => Ok(Some(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_url_is_derived_from_the_api_host() {
        assert_eq!(
            derived_auth_url("https://emea.api.newvoicemedia.com/interaction-content?x=1")
                .ok()
                .as_deref(),
            Some("https://emea.api.newvoicemedia.com/Auth/connect/token")
        );
        assert!(matches!(
            derived_auth_url("not a url"),
            Err(CliError::Usage(_))
        ));
    }

    fn mount_args(extra: &[&str]) -> MountArgs {
        use clap::Parser;
        let mut argv = vec!["vccfs", "mount", "/m"];
        argv.extend_from_slice(extra);
        match super::super::Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(super::super::Command::Mount(a)) => *a,
            other => panic!("not a mount: {other:?}"),
        }
    }

    fn redis_err(extra: &[&str]) -> String {
        match redis_options(&mount_args(extra)) {
            Err(e) => e.to_string(),
            Ok(o) => panic!("accepted: {:?}", o.map(|o| o.fallback_rpm)),
        }
    }

    #[test]
    fn redis_ca_is_pem_certificates_for_tls_urls_only() {
        let dir = tempfile::tempdir().expect("a dir");
        let file = |name: &str, body: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).expect("write");
            p.to_string_lossy().to_string()
        };
        let junk = file("junk.pem", b"not a certificate");
        let e = redis_err(&["--redis", "rediss://h:6380", "--redis-ca", &junk]);
        assert!(
            e.starts_with("--redis-ca ") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = redis_err(&["--redis", "rediss://h", "--redis-ca", "/nonexistent/ca.pem"]);
        assert!(e.starts_with("--redis-ca /nonexistent/ca.pem: "), "{e}");
        let Some(ca) = crate::fleet::testing::test_ca() else {
            return;
        };
        let ca = file("ca.pem", &ca);
        let e = redis_err(&["--redis", "redis://127.0.0.1:6379", "--redis-ca", &ca]);
        assert!(e.contains("rediss:// URLs only"), "{e}");
        let e = redis_err(&[
            "--redis",
            "rediss://h",
            "--redis-control",
            "redis://127.0.0.1",
            "--redis-ca",
            &ca,
        ]);
        assert!(e.contains("rediss:// URLs only"), "{e}");
        let o = redis_options(&mount_args(&[
            "--redis",
            "rediss://h:6380",
            "--redis-ca",
            &ca,
        ]))
        .expect("accepted")
        .expect("redis options");
        assert_eq!(o.ca_pem.as_deref(), std::fs::read(&ca).ok().as_deref());
    }

    #[test]
    fn redis_urls_carry_no_password_and_travel_in_tls_off_loopback() {
        for url in [
            "redis://:pw@127.0.0.1:6379",
            "rediss://user:pw@cache.example:6380/0",
        ] {
            let e = redis_err(&["--redis", url]);
            assert!(
                e.contains("--redis-credentials") && !e.contains("pw@"),
                "{e}"
            );
        }
        let e = redis_err(&["--redis", "rediss://h", "--redis-control", "rediss://:pw@h"]);
        assert!(
            e.starts_with("--redis-control:") && e.contains("--redis-credentials"),
            "{e}"
        );
        let e = redis_err(&["--redis", "redis://cache.example:6379"]);
        assert!(
            e.contains("--redis-allow-plaintext") && e.contains("rediss://"),
            "{e}"
        );
        let e = redis_err(&[
            "--redis",
            "rediss://h",
            "--redis-control",
            "redis://10.0.0.5",
        ]);
        assert!(e.contains("--redis-control redis://10.0.0.5"), "{e}");
        for ok in [
            &["--redis", "redis://127.0.0.1:6379/0"][..],
            &["--redis", "redis://[::1]:6379"],
            &["--redis", "rediss://cache.example:6380"],
            &[
                "--redis",
                "redis://user@cache.example",
                "--redis-allow-plaintext",
            ],
        ] {
            assert!(redis_options(&mount_args(ok)).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn a_password_file_is_read_privately_into_the_url() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("redis.pw");
        std::fs::write(&p, "# fleet\nREDIS_PASSWORD=s3cr3t\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let f = p.display().to_string();
        let o = redis_options(&mount_args(&[
            "--redis",
            "rediss://h",
            "--redis-credentials",
            &f,
        ]))
        .expect("accepted")
        .expect("redis");
        assert_eq!(o.url, "rediss://:s3cr3t@h");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        let l = link.display().to_string();
        let e = redis_err(&["--redis", "rediss://h", "--redis-credentials", &l]);
        assert!(
            e.starts_with("--redis-credentials ") && e.contains("symlink"),
            "{e}"
        );
    }

    #[test]
    fn metrics_off_loopback_are_warned_about() {
        assert_eq!(metrics_warning(None), None);
        assert_eq!(metrics_warning("127.0.0.1:9464".parse().ok()), None);
        assert_eq!(metrics_warning("[::1]:9464".parse().ok()), None);
        let w = metrics_warning("0.0.0.0:9464".parse().ok()).expect("warned");
        assert!(w.contains("no authentication"), "{w}");
    }

    #[test]
    fn sizes_are_checked() {
        assert!(check_sizes(256 << 20, 256 << 10).is_ok());
        assert!(check_sizes(0, 256 << 10).is_err());
        assert!(check_sizes(256 << 20, 3000).is_err());
        assert!(check_sizes(256 << 20, 128 << 20).is_err());
        assert!(check_sizes(1 << 20, 2 << 20).is_err());
    }
}
