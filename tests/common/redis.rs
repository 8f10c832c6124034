//! A real `redis-server` for a test: an ephemeral loopback port, no persistence,
//! killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// TLS only: the directory of its certificates (`ca.pem` the CA that signed its
    /// `localhost` certificate).
    tls: Option<tempfile::TempDir>,
}

/// Is `redis-server` installed? (Required in CI.)
pub fn available() -> bool {
    let ok = super::which("redis-server");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is required in CI (scripts/deps.sh installs it)"
        );
        eprintln!("SKIP: redis-server is not installed");
    }
    ok
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis::start_plain_port();
        r.spawn();
        r
    }

    /// A server that speaks TLS only, with a certificate for `localhost` signed by a
    /// CA made for the test (`ca_pem`); `None` without the `openssl` command.
    pub fn start_tls() -> Option<Redis> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        if !make_certificates(dir.path()) {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is required in CI (scripts/deps.sh installs it)"
            );
            eprintln!("SKIP: the openssl command is needed to make test certificates");
            return None;
        }
        let mut r = Redis::start_plain_port();
        r.tls = Some(dir);
        r.spawn();
        Some(r)
    }

    fn start_plain_port() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Redis {
            port,
            child: None,
            tls: None,
        }
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(dir) => cmd
                .current_dir(dir.path())
                .args(["--port", "0", "--tls-port", &port])
                .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
                .args(["--tls-auth-clients", "no"]),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let up = match self.tls {
                None => self
                    .command(&["PING"])
                    .is_some_and(|r| r.starts_with("+PONG")),
                // Listening is enough: the mount under test does the handshake.
                Some(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not come up within 10 s");
    }

    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://localhost:{}", self.port),
        }
    }

    /// TLS only: the CA certificate (PEM file) that signed the server's.
    pub fn ca_pem(&self) -> Option<std::path::PathBuf> {
        self.tls.as_ref().map(|d| d.path().join("ca.pem"))
    }

    /// Kill the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Send one command (RESP), return the raw reply.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut out = Vec::new();
        // Read until the reply stops arriving for a moment.
        s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        let reply = self.command(&["KEYS", "*"]).unwrap_or_default();
        reply
            .split("\r\n")
            .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
            .map(str::to_string)
            .collect()
    }
}

/// In `dir`: `ca.pem`, a CA made for the test, and `cert.pem` and `key.pem`, a
/// certificate for `localhost` it signed. False without the `openssl` command.
fn make_certificates(dir: &std::path::Path) -> bool {
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n",
    )
    .expect("write the certificate extensions");
    [
        "req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.pem -subj /CN=vccfs-e2e-CA",
        "req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out cert.pem",
    ]
    .iter()
    .all(|args| {
        Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
