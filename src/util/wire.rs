//! Which URLs may carry secrets or recordings in clear.
//!
//! Invariants:
//! - plain `http://` is accepted only for a loopback host (`127.0.0.0/8`, `::1`,
//!   `localhost`: the emulator, a local proxy); everything that leaves the machine is
//!   `https://` (the API, the token endpoint, which receives the client secret, and
//!   the storage hosts content redirects to);
//! - a redirect never lowers the transport: https → http is refused whatever the host,
//!   and a redirect to plain http is refused unless both ends are loopback;
//! - a check never echoes a URL's password or query (signed storage links carry
//!   secrets in their query): messages name the scheme and host only.

use url::{Host, Url};

/// Is `url`'s host this machine (`127.0.0.0/8`, `::1`, `localhost`)?
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        // Hosts of URLs of other schemes (`redis://`) are not parsed: an address may
        // come as a name.
        Some(Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `scheme://host[:port]` of `url`: what a message may show of it.
pub fn origin(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        (Some(h), None) => format!("{}://{h}", url.scheme()),
        _ => format!("{}:", url.scheme()),
    }
}

/// `flag`'s URL must be https, or http to a loopback host. The error is one line
/// naming the flag and saying https is required.
pub fn require_https(flag: &str, url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("bad {flag} {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(format!(
            "{flag} {}: https is required (plain http is allowed only for a loopback host such as 127.0.0.1, since the client secret and recordings would cross the network in clear)",
            origin(&parsed)
        )),
        other => Err(format!("{flag} must be an https URL, got scheme {other:?}")),
    }
}

/// May a response from `from` send us to `to`? `Err` says why not.
pub fn redirect_allowed(from: &Url, to: &Url) -> Result<(), String> {
    match to.scheme() {
        "https" => Ok(()),
        "http" if from.scheme() == "https" => Err(format!(
            "refused a redirect from https to plain http ({}): content is fetched over https only",
            origin(to)
        )),
        "http" if is_loopback(to) && is_loopback(from) => Ok(()),
        "http" => Err(format!(
            "refused a redirect to plain http on a non-loopback host ({}): content is fetched over https only",
            origin(to)
        )),
        _ => Err("redirect to a non-HTTP URL".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "http://127.0.0.1:9/x",
            "http://127.1.2.3/",
            "http://[::1]:80/",
            "http://localhost/",
            "http://LOCALHOST:8080/",
            "redis://127.0.0.1:6379/0",
            "redis://[::1]:6379",
        ] {
            assert!(is_loopback(&u(ok)), "{ok}");
        }
        for not in [
            "http://example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://localhost.example.com/",
            "http://128.0.0.1/",
            "redis://10.0.0.5:6379",
            "redis://cache.example",
        ] {
            assert!(!is_loopback(&u(not)), "{not}");
        }
    }

    #[test]
    fn https_is_required_off_loopback() {
        assert!(require_https("--api-url", "https://emea.api.newvoicemedia.com/x").is_ok());
        assert!(require_https("--api-url", "http://127.0.0.1:8080/x").is_ok());
        assert!(require_https("--auth-url", "http://[::1]/t").is_ok());
        let e = require_https("--api-url", "http://example.com/interaction-content")
            .expect_err("plain http off loopback");
        assert!(e.contains("https is required"), "{e}");
        assert!(e.starts_with("--api-url http://example.com:"), "{e}");
        let e = require_https("--auth-url", "http://u:pw@10.1.1.1/t?sig=abc").expect_err("http");
        assert!(!e.contains("pw") && !e.contains("sig"), "{e}");
        assert!(require_https("--api-url", "ftp://x/").is_err());
        assert!(require_https("--api-url", "not a url").is_err());
    }

    #[test]
    fn redirects_never_lower_the_transport() {
        let api = u("https://emea.api.newvoicemedia.com/interaction-content/x");
        let local = u("http://127.0.0.1:9/interaction-content/x");
        assert!(redirect_allowed(&api, &u("https://storage.example/o?sig=1")).is_ok());
        assert!(redirect_allowed(&local, &u("http://127.0.0.1:10/o")).is_ok());
        assert!(redirect_allowed(&local, &u("https://storage.example/o")).is_ok());
        let e =
            redirect_allowed(&api, &u("http://storage.example/o?sig=secret")).expect_err("down");
        assert!(
            e.contains("https to plain http") && !e.contains("secret"),
            "{e}"
        );
        let e = redirect_allowed(&api, &u("http://127.0.0.1/o")).expect_err("down to loopback");
        assert!(e.contains("https to plain http"), "{e}");
        let e = redirect_allowed(&local, &u("http://storage.example/o")).expect_err("remote http");
        assert!(e.contains("non-loopback"), "{e}");
        assert!(redirect_allowed(&api, &u("file:///etc/passwd")).is_err());
    }
}
