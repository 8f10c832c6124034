//! A real `redis-server` for tests: on a free loopback port, without persistence,
//! killed when dropped (and, should the test process die, by the kernel: the server
//! gets SIGKILL when the thread that started it ends).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Serving TLS only, with a certificate for `localhost` signed by this CA (PEM).
    cert: Option<Vec<u8>>,
}

/// Say a test was skipped, past libtest's capture of `eprintln!` (so it shows without
/// `--nocapture`).
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// A fresh server, or `None` (said on stderr) when `redis-server` is not installed
    /// and `CI` is unset. With `CI` set a missing server fails the test.
    pub(crate) fn start() -> Option<RedisServer> {
        RedisServer::start_with(false)
    }

    /// A server that speaks TLS only, with a certificate for `localhost` from a fresh
    /// CA (made by the `openssl` command; without it, `None`, said on stderr).
    pub(crate) fn start_tls() -> Option<RedisServer> {
        RedisServer::start_with(true)
    }

    fn start_with(tls: bool) -> Option<RedisServer> {
        if !installed() {
            if std::env::var_os("CI").is_some() {
                panic!("redis-server is not installed (scripts/deps.sh test installs it)");
            }
            skipped("redis-server is not installed (scripts/deps.sh test installs it)");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let cert = match tls {
            false => None,
            true => Some(make_certificates(dir.path())?),
        };
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir,
            cert,
        };
        // Another process may take the port between our probe and the server's bind.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("redis-server did not start");
    }

    /// Start the server on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        let port = self.port.to_string();
        match self.cert {
            None => cmd.args(["--port", &port]),
            Some(_) => cmd
                .args(["--port", "0", "--tls-port", &port])
                .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
                .args(["--tls-auth-clients", "no"]),
        };
        cmd.current_dir(self.dir.path())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let up = match self.cert {
                None => pings(self.port),
                // Listening is enough: the client under test does the handshake.
                Some(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if up {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false; // exited: the port was taken
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub(crate) fn url(&self) -> String {
        match self.cert {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(_) => format!("rediss://localhost:{}/", self.port),
        }
    }

    /// The certificate (PEM) of the CA that signed the TLS server's.
    pub(crate) fn cert(&self) -> Option<Vec<u8>> {
        self.cert.clone()
    }

    /// Kill the server (SIGKILL: no goodbye to clients).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open, nothing is answered.
    pub(crate) fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub(crate) fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.child.as_ref().expect("a running server").id();
        // SAFETY: a plain syscall on our own child's pid.
        let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(rc, 0, "signal {sig} to redis-server");
    }

    /// Start it again on the same port, empty.
    pub(crate) fn restart(&mut self) {
        self.kill();
        assert!(self.spawn(), "redis-server restarts on port {}", self.port);
    }

    /// A plain connection for a test to look at or spoil what the tier wrote.
    pub(crate) async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }
}

/// A CA certificate (PEM) made for a test (`None` without the `openssl` command).
pub(crate) fn test_ca() -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    make_certificates(dir.path())
}

/// In `dir`: `ca.pem`, a CA made for the test, and `cert.pem` and `key.pem`, a
/// certificate for `localhost` it signed (webpki takes no CA as a server's own). The
/// CA's certificate (PEM), or `None` (said on stderr) without the `openssl` command.
fn make_certificates(dir: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n",
    )
    .expect("write the certificate extensions");
    let steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out ca.pem \
         -subj /CN=vccfs-test-CA",
        "req -newkey rsa:2048 -nodes -keyout key.pem -out leaf.csr -subj /CN=localhost",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile leaf.ext -out cert.pem",
    ];
    for args in steps {
        let made = Command::new("openssl")
            .args(args.split_whitespace())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            skipped("the openssl command is needed to make test certificates");
            return None;
        }
    }
    Some(std::fs::read(dir.join("ca.pem")).expect("read the test CA"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
