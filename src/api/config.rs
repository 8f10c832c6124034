//! Where the API is, who we are, and how hard we may push it.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::ApiError;

/// A Vonage Contact Center region (api.md §1–§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Region {
    Emea,
    Nam,
    Apac,
}

impl Region {
    fn label(self) -> &'static str {
        match self {
            Region::Emea => "emea",
            Region::Nam => "nam",
            Region::Apac => "apac",
        }
    }

    /// The API base, ending in `/interaction-content`.
    pub fn api_url(self) -> String {
        format!(
            "https://{}.api.newvoicemedia.com/interaction-content",
            self.label()
        )
    }

    /// The OAuth2 token endpoint.
    pub fn auth_url(self) -> String {
        format!("https://{}.cc.vonage.com/Auth/connect/token", self.label())
    }
}

/// Client id and secret. `Debug` never shows the secret, and it is wiped from memory
/// when dropped (every clone too).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.client_secret);
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// From `VCC_CLIENT_ID` / `VCC_CLIENT_SECRET`.
    pub fn from_env() -> Option<Credentials> {
        let client_id = std::env::var("VCC_CLIENT_ID").ok()?;
        let client_secret = std::env::var("VCC_CLIENT_SECRET").ok()?;
        (!client_id.is_empty() && !client_secret.is_empty()).then_some(Credentials {
            client_id,
            client_secret,
        })
    }

    /// From a file of `KEY=VALUE` lines (`VCC_CLIENT_ID=...`, `VCC_CLIENT_SECRET=...`;
    /// `client_id`/`client_secret` also accepted; `#` comments). Refuses a file that
    /// group or others can read.
    pub fn from_file(path: &Path) -> Result<Credentials, ApiError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| ApiError::Config(format!("cannot read credentials file {shown}: {e}")))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ApiError::Config(format!(
                "credentials file {shown} is accessible by group or others (mode {:o}); run: chmod 600 {shown}",
                mode & 0o777
            )));
        }
        // The file's text holds the secret too: wiped when dropped.
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                ApiError::Config(format!("cannot read credentials file {shown}: {e}"))
            })?);
        let mut id = None;
        let mut secret = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "VCC_CLIENT_ID" | "client_id" => id = Some(v),
                "VCC_CLIENT_SECRET" | "client_secret" => secret = Some(v),
                _ => {}
            }
        }
        match (id, secret) {
            (Some(client_id), Some(client_secret))
                if !client_id.is_empty() && !client_secret.is_empty() =>
            {
                Ok(Credentials {
                    client_id,
                    client_secret,
                })
            }
            _ => Err(ApiError::Config(format!(
                "credentials file {shown} must set VCC_CLIENT_ID=... and VCC_CLIENT_SECRET=..."
            ))),
        }
    }
}

/// Everything the client needs to run.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base URL ending in `/interaction-content` (no trailing slash).
    pub api_url: String,
    /// Full token endpoint URL.
    pub auth_url: String,
    pub credentials: Credentials,
    /// Client-wide request budget per minute; `None` = unlimited.
    pub max_rpm: Option<u32>,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Connect timeout of one attempt.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response before the attempt is abandoned.
    pub read_timeout: Duration,
    /// Total time one call may spend retrying before its error surfaces.
    pub retry_deadline: Duration,
}

impl ApiConfig {
    /// The tenant this configuration reads: its API and account, hashed.
    pub fn tenant(&self) -> crate::version::TenantId {
        crate::version::TenantId::new(&self.api_url, &self.credentials.client_id)
    }

    /// Defaults for the given endpoints: 150 requests/minute for remote hosts, unlimited
    /// on loopback (an emulator).
    pub fn new(api_url: &str, auth_url: &str, credentials: Credentials) -> Result<Self, ApiError> {
        let api_url = api_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&api_url)
            .map_err(|e| ApiError::Config(format!("bad --api-url {api_url:?}: {e}")))?;
        reqwest::Url::parse(auth_url)
            .map_err(|e| ApiError::Config(format!("bad --auth-url {auth_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::Config(format!(
                "--api-url must be http(s), got {api_url:?}"
            )));
        }
        let max_rpm = (!is_loopback(&parsed)).then_some(150);
        Ok(ApiConfig {
            api_url,
            auth_url: auth_url.to_string(),
            credentials,
            max_rpm,
            max_concurrency: 32,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            retry_deadline: Duration::from_secs(30),
        })
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_urls() {
        assert_eq!(
            Region::Emea.api_url(),
            "https://emea.api.newvoicemedia.com/interaction-content"
        );
        assert_eq!(
            Region::Nam.auth_url(),
            "https://nam.cc.vonage.com/Auth/connect/token"
        );
    }

    #[test]
    fn loopback_is_unlimited_remote_is_budgeted() {
        let c = Credentials {
            client_id: "a".into(),
            client_secret: "b".into(),
        };
        let local = ApiConfig::new(
            "http://127.0.0.1:9/interaction-content/",
            "http://127.0.0.1:9/t",
            c.clone(),
        )
        .expect("config");
        assert_eq!(local.max_rpm, None);
        assert_eq!(local.api_url, "http://127.0.0.1:9/interaction-content");
        let remote = ApiConfig::new(&Region::Apac.api_url(), &Region::Apac.auth_url(), c.clone())
            .expect("config");
        assert_eq!(remote.max_rpm, Some(150));
        assert!(ApiConfig::new("ftp://x/interaction-content", "http://x/", c).is_err());
    }

    #[test]
    fn debug_hides_secret() {
        let c = Credentials {
            client_id: "id".into(),
            client_secret: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn credentials_file_permissions_and_format() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("creds");
        std::fs::write(&p, "# vcc\nVCC_CLIENT_ID=abc\nVCC_CLIENT_SECRET=\"xyz\"\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = Credentials::from_file(&p).expect_err("group-readable must be refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let c = Credentials::from_file(&p).expect("read");
        assert_eq!(c.client_id, "abc");
        assert_eq!(c.client_secret, "xyz");
    }
}
