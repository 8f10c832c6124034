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
    /// `client_id`/`client_secret` also accepted; `#` comments), read with
    /// [`crate::util::read_private_file`]: opened once without following a symlink,
    /// refused unless it is a regular file owned by the running user that group and
    /// others cannot read, at most [`MAX_CREDENTIALS_FILE`] bytes.
    pub fn from_file(path: &Path) -> Result<Credentials, ApiError> {
        let shown = path.display();
        let raw = crate::util::read_private_file(path, MAX_CREDENTIALS_FILE)
            .map_err(|e| ApiError::Config(format!("--credentials {e}")))?;
        // The file's text holds the secret too: wiped when dropped (`raw` as well).
        let text = zeroize::Zeroizing::new(
            std::str::from_utf8(&raw)
                .map_err(|_| ApiError::Config(format!("--credentials {shown}: not UTF-8 text")))?
                .to_string(),
        );
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
                "--credentials {shown} must set VCC_CLIENT_ID=... and VCC_CLIENT_SECRET=..."
            ))),
        }
    }
}

/// The longest credentials file read (a few lines; anything longer is not one).
pub const MAX_CREDENTIALS_FILE: u64 = 64 << 10;

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
        let parsed =
            crate::util::wire::require_https("--api-url", &api_url).map_err(ApiError::Config)?;
        crate::util::wire::require_https("--auth-url", auth_url).map_err(ApiError::Config)?;
        let max_rpm = (!crate::util::wire::is_loopback(&parsed)).then_some(150);
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
        assert!(ApiConfig::new("ftp://x/interaction-content", "http://x/", c.clone()).is_err());
        let e = ApiConfig::new(
            "http://example.com/interaction-content",
            &Region::Apac.auth_url(),
            c.clone(),
        )
        .expect_err("plain http off loopback");
        assert!(e.to_string().contains("https is required"), "{e}");
        let e = ApiConfig::new(
            &Region::Apac.api_url(),
            "http://10.0.0.1/Auth/connect/token",
            c,
        )
        .expect_err("plain http token endpoint");
        assert!(e.to_string().contains("--auth-url"), "{e}");
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
