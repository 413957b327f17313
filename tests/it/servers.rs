//! Real servers for the remote cache's tests, on loopback addresses only (127.0.0.1, and
//! 127.0.0.2 where a test needs a second host). Each is a child process with its config,
//! data and logs in its own temporary directory, on a free port, waited for until it
//! answers, and killed (SIGKILL) and reaped on Drop:
//!
//! - [`Nginx`]: WebDAV (`dav_methods PUT DELETE MKCOL`, `create_full_put_path on`, no body
//!   size limit), optionally behind basic auth, optionally over HTTPS with a [`TestCa`]
//!   certificate: Debian's nginx (`--with-http_dav_module`, `--with-http_ssl_module`).
//! - [`S3`]: `rclone serve s3` (optionally over HTTPS, `--cert`/`--key`) or SeaweedFS's
//!   `weed mini`: real S3 APIs that check SigV4 signatures (a wrong secret gets 403),
//!   path-style, with one bucket made at start.
//! - [`Faulty`]: a misbehaving HTTP server (`tests/it/faulty_server.py`),
//!   [`closed_port`], where nothing listens, and [`SilentPort`], where connecting gets no
//!   answer.
//! - [`TlsReply`]: an HTTPS server (`tests/it/tls_server.py`) with a certificate from a
//!   [`TestCa`] made for the test, on another loopback address (127.0.0.2).
//! - [`DelayProxy`]: a TCP proxy adding latency to every request (`benches/delay_proxy.py`).
//! - [`http`] and [`exchange`]: a tiny HTTP/1.1 client to check what the servers hold.
//!
//! Binaries: `$HASHPYC_NGINX`, `$HASHPYC_RCLONE`, `$HASHPYC_WEED`, `$HASHPYC_CURL` (curl
//! signs the harness's own S3 requests), `$HASHPYC_OPENSSL` (for [`TestCa`]), else PATH, else `/usr/sbin` and the venv that
//! `.ci/install-servers` fills (`$HASHPYC_SERVERS_VENV`, default
//! `~/.cache/hashpyc-servers/venv`). A missing one is a visible `SKIPPED <test>: <why>` and
//! `None`, or, with `HASHPYC_REQUIRE_SERVERS=1` (CI), a failure. A server that is there
//! but does not come up is always a failure, with the tail of its log.
//!
//! Children are also killed if the test process dies (`PR_SET_PDEATHSIG`, tied to a
//! spawner thread that lives as long as the process), so an aborted run leaves none
//! running. A server may therefore be kept in a static and shared by several tests.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use crate::harness;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

// ---------------------------------------------------------------------------------------
// Skips, tools, ports
// ---------------------------------------------------------------------------------------

/// `HASHPYC_REQUIRE_SERVERS=1`: a missing server fails the test instead of skipping it.
pub fn servers_required() -> bool {
    std::env::var_os("HASHPYC_REQUIRE_SERVERS").is_some_and(|v| v == "1")
}

/// The running test's name (libtest names each test's thread after it).
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "servers".to_string(),
    }
}

/// A visible `SKIPPED <test>: <why>` and `None`, or a panic under `HASHPYC_REQUIRE_SERVERS=1`.
pub fn unavailable<T>(why: &str) -> Option<T> {
    let msg = format!("SKIPPED {}: {why}", current_test());
    if servers_required() {
        panic!("{msg} (HASHPYC_REQUIRE_SERVERS=1)");
    }
    harness::visible(&msg);
    None
}

/// The venv `.ci/install-servers` installs rclone and weed into.
pub fn servers_venv() -> PathBuf {
    if let Some(v) = std::env::var_os("HASHPYC_SERVERS_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
    cache.join("hashpyc-servers").join("venv")
}

/// `$env` if set (it must then exist), else `name` on PATH, in `/usr/sbin`, `/usr/local/sbin`
/// or the servers' venv.
pub fn find_tool(env: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("{env}={} does not exist", p.display())) };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([
        PathBuf::from("/usr/sbin"),
        PathBuf::from("/usr/local/sbin"),
        servers_venv().join("bin"),
    ]);
    for dir in dirs {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!("{name} not found (set {env}, or run .ci/install-servers)"))
}

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// A loopback port nothing listens on now, never handed out before by this process (so
/// two servers started by concurrent tests never race for one). With `offset`, port +
/// offset is free and reserved too (SeaweedFS puts gRPC on port + 10000).
fn free_port_with(offset: Option<u16>) -> u16 {
    let mut taken = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if taken.contains(&port) {
            continue;
        }
        let Some(offset) = offset else {
            taken.insert(port);
            return port;
        };
        let Some(other) = port.checked_add(offset) else {
            continue;
        };
        if !taken.contains(&other) && TcpListener::bind((LOCALHOST, other)).is_ok() {
            taken.insert(port);
            taken.insert(other);
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// A free loopback port (see [`closed_port`] for one that must stay closed).
pub fn free_port() -> u16 {
    free_port_with(None)
}

/// A loopback port where nothing listens: connecting is refused. The harness never hands
/// it to a server it starts later.
pub fn closed_port() -> u16 {
    free_port()
}

/// `http://127.0.0.1:<closed_port()>`.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", closed_port())
}

/// A listener on 127.0.0.1 whose accept queue is full (a backlog of 0, holding one
/// connection it never accepts): Linux drops the SYN of every further connection, so a
/// client's connect gets no answer at all, as from a dead host, until it times out.
pub struct SilentPort {
    listener: TcpListener,
    _held: TcpStream,
}

impl SilentPort {
    pub fn start() -> SilentPort {
        use std::os::fd::AsRawFd;
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind 127.0.0.1");
        // SAFETY: listen(2) again on a socket we own only changes its backlog.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0, "{}", io::Error::last_os_error());
        let addr = listener.local_addr().unwrap();
        let held = TcpStream::connect(addr).expect("the one connection the queue holds");
        let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(
            probe.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::TimedOut),
            "a connection to a full accept queue was answered ({probe:?}): the kernel does not drop SYNs here"
        );
        SilentPort { listener, _held: held }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }
}

/// A certificate authority made for one test with `openssl` (on PATH, or
/// `$HASHPYC_OPENSSL`), valid for two days, and a server certificate it signed for one
/// IP address: what a client is told to trust with `SSL_CERT_FILE`. Each has a name of its
/// own, so a client trusting another one finds no issuer (unknown issuer).
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The authority's certificate (PEM).
    pub ca: PathBuf,
    /// The server's certificate and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// The authority's own key (PEM), for a server that serves the authority's certificate
    /// as its own.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.path().join("ca.key")
    }

    /// None (skipped) when `openssl` is not there.
    pub fn new(ip: &str) -> Option<TestCa> {
        let openssl = match find_tool("HASHPYC_OPENSSL", "openssl") {
            Ok(p) => p,
            Err(why) => return unavailable(&why),
        };
        let dir = tempdir("hashpyc-ca-");
        let at = |name: &str| dir.path().join(name);
        std::fs::write(
            at("server.ext"),
            format!(
                "subjectAltName=IP:{ip}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let steps: [Vec<&str>; 3] = [
            [&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]].concat(),
            [&["req", "-new"][..], &ec, &["-keyout", "server.key", "-out", "server.csr"]].concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        ];
        // A name of its own: two authorities of one name would make a certificate of one
        // look forged to a client trusting the other (a bad signature, not an unknown issuer).
        let ca_name = format!("/CN=hashpyc test CA {}", random_hex(12));
        let subjects = [
            vec!["-subj", ca_name.as_str(), "-addext", "basicConstraints=critical,CA:TRUE"],
            vec!["-subj", "/CN=hashpyc test server"],
            vec![],
        ];
        for (step, subject) in steps.iter().zip(&subjects) {
            let out =
                Command::new(&openssl).args(step).args(subject).current_dir(dir.path()).output().unwrap();
            assert!(out.status.success(), "openssl {step:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Some(TestCa { ca: at("ca.pem"), cert: at("server.pem"), key: at("server.key"), dir })
    }
}

/// An HTTPS server (`tests/it/tls_server.py`, needs `python3` on PATH) on a loopback
/// address with a [`TestCa`] certificate, answering every GET with one file's bytes.
pub struct TlsReply {
    dir: tempfile::TempDir,
    pub url: String,
    process: Process,
}

impl TlsReply {
    /// `host`: the address the certificate names; `reply`: the file every GET is answered with.
    pub fn start(host: &str, ca: &TestCa, reply: &Path) -> TlsReply {
        TlsReply::start_with(host, (&ca.cert, &ca.key), reply)
    }

    /// [`TlsReply::start`] with this certificate and key (PEM files).
    pub fn start_with(host: &str, (cert, key): (&Path, &Path), reply: &Path) -> TlsReply {
        let dir = tempdir("hashpyc-tls-");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls_server.py");
        let path = |p: &Path| p.display().to_string();
        let args = [
            "--host".to_string(),
            host.to_string(),
            "--cert".into(),
            path(cert),
            "--key".into(),
            path(key),
            "--reply".into(),
            path(reply),
            "--log".into(),
            path(&dir.path().join("requests.log")),
        ];
        let (process, port, _) = start_python_server("TLS server", dir.path(), script, &args);
        TlsReply { url: format!("https://{host}:{port}"), dir, process }
    }

    /// The requests answered so far, `GET /path`.
    pub fn requests(&self) -> Vec<String> {
        logged_requests(self.dir.path())
    }
}

fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < n {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir")
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawn from one thread that lives as long as the process: PR_SET_PDEATHSIG fires when
/// the *thread* that forked the child ends, and a test's own thread ends with the test.
fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("servers-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        tx
    });
    // SAFETY: prctl is async-signal-safe and the closure touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply, result) = mpsc::channel();
    spawner.send((cmd, reply)).expect("spawner thread alive");
    result.recv().expect("spawner thread answers")
}

/// A server's child process: SIGKILL and reaped on Drop or [`Process::kill`].
pub struct Process {
    name: String,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Process {
    /// Start `cmd` with stdout and stderr appended to `log`, no stdin, no proxy settings.
    fn start(name: &str, mut cmd: Command, log: &Path) -> io::Result<Process> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        for v in ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            cmd.env_remove(v);
        }
        let child = spawn(cmd)?;
        Ok(Process { name: name.to_string(), child: Some(child), logs: vec![log.to_path_buf()] })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Still running (not exited, not killed).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL and reap; a no-op once done.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait up to `timeout` for the process to exit by itself; its status, reaped.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The last lines of each of its logs, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for log in &self.logs {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out.push_str(&format!("--- {} ({}), last {} lines:\n", self.name, log.display(), tail.len()));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Poll `ready` until it holds; Err with the reason and the log's tail when the process
    /// exits or `timeout` passes first.
    fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "{} exited ({status}) before it was ready\n{}",
                    self.name,
                    self.log_tail()
                ));
            }
            if ready() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(format!("{} not ready after {timeout:?}\n{}", self.name, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Start a server up to 3 times on fresh ports (another process may take a port between
/// our check and the server's bind); panics with the log's tail when it never comes up.
fn start_with_retries<T>(what: &str, mut attempt: impl FnMut() -> Result<T, (String, bool)>) -> T {
    let mut last = String::new();
    for _ in 0..3 {
        match attempt() {
            Ok(server) => return server,
            // Exited early: maybe a port clash, try again.
            Err((why, true)) => last = why,
            Err((why, false)) => panic!("{}: {what} did not start: {why}", current_test()),
        }
    }
    panic!("{}: {what} did not start in 3 attempts: {last}", current_test());
}

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub type Headers = Vec<(String, String)>;

/// Split a response into status, headers and the bytes after them, skipping 1xx answers.
pub fn parse_head(mut raw: &[u8]) -> io::Result<(u16, Headers, &[u8])> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    loop {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let rest = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .filter(|_| status_line.starts_with("HTTP/"))
            .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Ok((status, headers, rest));
    }
}

fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body cut short");
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(short)?;
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(short());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// `(addr, path)` of an `http://127.0.0.1:PORT/path` URL; panics for anything but a
/// loopback IPv4 address (test traffic stays on this machine).
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = hostport.parse().unwrap_or_else(|_| panic!("not IP:PORT in {url}"));
    assert!(addr.ip().is_loopback(), "test traffic goes to loopback only, not {url}");
    (addr, if path.is_empty() { "/".to_string() } else { path.to_string() })
}

/// Send `request` (raw bytes) to `addr` and read until the peer closes, an error, or
/// `timeout` (each read, and the whole exchange): the bytes received and how it ended.
pub fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let result = (|| {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(request)?;
        let start = Instant::now();
        let mut buf = [0u8; 65536];
        loop {
            let left = timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero());
            let Some(left) = left else {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "exchange timed out"));
            };
            s.set_read_timeout(Some(left))?;
            match s.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // A read timeout is EAGAIN on Linux.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "exchange timed out"));
                }
                Err(e) => return Err(e),
            }
        }
    })();
    (got, result)
}

/// One HTTP/1.1 request (`Connection: close`) to a loopback URL, 10 s timeout. The body
/// must be complete: a response shorter than its Content-Length is an `UnexpectedEof`.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
    let (addr, path) = split_url(url);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    let (got, ended) = exchange(addr, &raw, Duration::from_secs(10));
    ended?;
    let (status, headers, rest) = parse_head(&got)?;
    let mut resp = Response { status, headers, body: Vec::new() };
    if method == "HEAD" || status == 204 || status == 304 {
        return Ok(resp);
    }
    if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        resp.body = dechunk(rest)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize =
            len.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?;
        if rest.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body has {} of {len} bytes", rest.len()),
            ));
        }
        resp.body = rest[..len].to_vec();
    } else {
        resp.body = rest.to_vec();
    }
    Ok(resp)
}

pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of an `Authorization` header for HTTP basic auth.
pub fn basic_auth(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

// ---------------------------------------------------------------------------------------
// nginx (WebDAV)
// ---------------------------------------------------------------------------------------

/// [`Nginx::launch`]'s `in_location` for basic auth on writes only.
const WRITES_NEED_AUTH: &str = "(writes need auth)";

/// nginx serving WebDAV from `data_dir()` at `url()`: `PUT /a/b/key` writes
/// `data_dir()/a/b/key` (missing directories made), GET/HEAD read it, DELETE removes it.
/// Single process (`master_process off`), so as root it stays root and needs no `user`.
pub struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    auth: Option<(String, String)>,
    /// `https` with [`Nginx::start_tls`], else `http`.
    scheme: &'static str,
    process: Process,
    /// From spawn to the port accepting connections.
    pub startup: Duration,
    /// The nginx binary, for [`Nginx::restart`].
    bin: PathBuf,
}

/// Whether nginx has the WebDAV module (and, with `tls`, the SSL module).
fn nginx_has_modules(bin: &Path, tls: bool) -> Result<(), String> {
    let out = Command::new(bin).arg("-V").output().map_err(|e| format!("{} -V: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    let wanted = if tls {
        &["--with-http_dav_module", "--with-http_ssl_module"][..]
    } else {
        &["--with-http_dav_module"]
    };
    match wanted.iter().find(|m| !text.contains(*m)) {
        None => Ok(()),
        Some(m) => Err(format!("{} is built without {m}", bin.display())),
    }
}

impl Nginx {
    pub fn start() -> Option<Nginx> {
        Nginx::launch(None, None, (512, "", ""))
    }

    /// Rate-limited as a shared store under load: past `rate` requests a second (and a
    /// burst of `burst` more), requests are answered HTTP 503 at once (nginx's
    /// `limit_req … nodelay`), as S3 answers `503 SlowDown` to too many requests on one prefix.
    pub fn start_rate_limited(rate: u32, burst: u32) -> Option<Nginx> {
        // Connections enough for builds at once (128 lookups and 16 uploads each): refused
        // connections would be another fault than the one tested.
        let zone = format!("limit_req_zone $server_addr zone=cache:1m rate={rate}r/s;");
        let limit = format!("limit_req zone=cache burst={burst} nodelay;");
        Nginx::launch(None, None, (4096, &zone, &limit))
    }

    /// Each response's first `fast` bytes sent at once, the rest at `rate` bytes a second
    /// per connection (nginx's `limit_rate_after` and `limit_rate`): bodies larger than
    /// `fast` are read at the same time, however fast the machine.
    pub fn start_with_slow_tails(fast: &str, rate: &str) -> Option<Nginx> {
        let slow = format!("limit_rate_after {fast};\n      limit_rate {rate};");
        Nginx::launch(None, None, (512, "", &slow))
    }

    /// Request bodies over `limit` (nginx's `client_max_body_size`, `16k`) refused with HTTP
    /// 413 under `/limited/`, as a server configured for small files refuses a large entry.
    pub fn start_with_body_limit(limit: &str) -> Option<Nginx> {
        let nested = format!("location /limited/ {{ client_max_body_size {limit}; }}");
        Nginx::launch(None, None, (512, "", &nested))
    }

    /// Over HTTPS only (`listen … ssl`), with the server certificate of `ca` (made for
    /// 127.0.0.1), and basic auth as [`Nginx::start_with_basic_auth`] with `auth`.
    pub fn start_tls(ca: &TestCa, auth: Option<(&str, &str)>) -> Option<Nginx> {
        Nginx::launch(auth.map(|(u, p)| (u.to_string(), p.to_string())), Some(ca), (512, "", ""))
    }

    /// Every request needs `Authorization: Basic user:pass` (401 otherwise).
    pub fn start_with_basic_auth(user: &str, pass: &str) -> Option<Nginx> {
        // An htpasswd line is user:password[:comment]: neither may hold ':' or a newline.
        assert!(!format!("{user}{pass}").contains([':', '\n']), "nginx cannot take {user:?}/{pass:?}");
        Nginx::launch(Some((user.to_string(), pass.to_string())), None, (512, "", ""))
    }

    /// Reads (GET, HEAD) open to anyone, writes needing `Authorization: Basic user:pass`
    /// (401 otherwise: nginx's `limit_except GET HEAD`), as a cache any job may read and only
    /// some write.
    pub fn start_with_writes_behind_basic_auth(user: &str, pass: &str) -> Option<Nginx> {
        assert!(!format!("{user}{pass}").contains([':', '\n']), "nginx cannot take {user:?}/{pass:?}");
        Nginx::launch(Some((user.to_string(), pass.to_string())), None, (512, "", WRITES_NEED_AUTH))
    }

    /// `(connections, in_http, in_location)`: nginx's `worker_connections`, and configuration
    /// added to the `http` block and the location ([`WRITES_NEED_AUTH`]: `auth` for writes
    /// only).
    fn launch(
        auth: Option<(String, String)>,
        tls: Option<&TestCa>,
        (connections, in_http, in_location): (u32, &str, &str),
    ) -> Option<Nginx> {
        let bin = match find_tool("HASHPYC_NGINX", "nginx")
            .and_then(|b| nginx_has_modules(&b, tls.is_some()).map(|()| b))
        {
            Ok(b) => b,
            Err(why) => return unavailable(&why),
        };
        let dir = tempdir("hashpyc-nginx-");
        let d = dir.path();
        std::fs::create_dir(d.join("data")).expect("mkdir data");
        let auth_conf = match &auth {
            Some((user, pass)) => {
                // nginx reads {PLAIN} passwords as they are (besides crypt(3), {SHA}, {SSHA}).
                std::fs::write(d.join("htpasswd"), format!("{user}:{{PLAIN}}{pass}\n")).expect("htpasswd");
                let conf = format!(
                    "auth_basic \"hashpyc cache\";\n      auth_basic_user_file \"{}/htpasswd\";",
                    d.display()
                );
                if in_location == WRITES_NEED_AUTH {
                    format!("limit_except GET HEAD {{ {conf} }}")
                } else {
                    conf
                }
            }
            None => String::new(),
        };
        let in_location = if in_location == WRITES_NEED_AUTH { "" } else { in_location };
        let (ssl, tls_conf) = match tls {
            Some(ca) => (
                " ssl",
                format!(
                    "ssl_certificate \"{}\";\n    ssl_certificate_key \"{}\";",
                    ca.cert.display(),
                    ca.key.display()
                ),
            ),
            None => ("", String::new()),
        };
        let process = start_with_retries("nginx", || {
            let port = free_port();
            let p = d.display();
            let conf = format!(
                r#"daemon off;
master_process off;
worker_processes 1;
pid "{p}/nginx.pid";
error_log "{p}/error.log" info;
events {{ worker_connections {connections}; }}
http {{
  access_log "{p}/access.log";
  client_body_temp_path "{p}/client_body";
  proxy_temp_path "{p}/proxy";
  fastcgi_temp_path "{p}/fastcgi";
  uwsgi_temp_path "{p}/uwsgi";
  scgi_temp_path "{p}/scgi";
  {in_http}
  server {{
    listen 127.0.0.1:{port}{ssl};
    {tls_conf}
    root "{p}/data";
    location / {{
      dav_methods PUT DELETE MKCOL;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      client_max_body_size 0;
      {auth_conf}
      {in_location}
    }}
  }}
}}
"#
            );
            std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
            Nginx::spawn(&bin, d, port).map(|(process, t)| (process, port, t))
        });
        let (process, port, startup) = process;
        let scheme = if tls.is_some() { "https" } else { "http" };
        Some(Nginx { dir, port, auth, scheme, process, startup, bin })
    }

    /// nginx `bin` started with `dir`'s configuration, serving on `port`, waited for until
    /// it accepts connections; else why not, and whether it exited.
    fn spawn(bin: &Path, dir: &Path, port: u16) -> Result<(Process, Duration), (String, bool)> {
        let mut cmd = Command::new(bin);
        // -e: the error log before the config is read (else /var/log/nginx, not writable
        // without root).
        cmd.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf")).arg("-e").arg(dir.join("error.log"));
        let mut process = Process::start("nginx", cmd, &dir.join("nginx.out")).expect("spawn nginx");
        process.logs.push(dir.join("error.log"));
        let addr = SocketAddr::from((LOCALHOST, port));
        match process.wait_ready(Duration::from_secs(10), || accepts(addr)) {
            Ok(t) => Ok((process, t)),
            Err(why) => {
                let exited = !process.running();
                Err((why, exited))
            }
        }
    }

    /// Start it again after [`Nginx::kill`]: the same configuration, data and port, as a
    /// cache service restarted; returns once the port accepts connections again.
    pub fn restart(&mut self) {
        let (process, _) = Nginx::spawn(&self.bin, self.dir.path(), self.port)
            .unwrap_or_else(|(why, _)| panic!("nginx did not restart on port {}: {why}", self.port));
        self.process = process;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`Nginx::start_tls`]; no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Where the objects are: URL path `/a/b` is `data_dir()/a/b`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `(user, password)` for the basic-auth variant.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The access log: one line per request (method, path, status, …).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kill it now (SIGKILL): from then on the port refuses connections.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

// ---------------------------------------------------------------------------------------
// S3: rclone serve s3, SeaweedFS
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Kind {
    Rclone,
    SeaweedFs,
}

/// An S3 API on `endpoint` (path-style: `{endpoint}/{bucket}/{key}`) that checks SigV4
/// signatures against `access_key`/`secret_key` (fresh random ones per server), with
/// `bucket` made at start.
pub struct S3 {
    pub kind: S3Kind,
    /// `http://127.0.0.1:PORT` (`https://` for [`S3::rclone_tls`]; no trailing slash).
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// SeaweedFS: the access key and secret of a second identity allowed only `Read` and
    /// `List` (the README's pull-request policy): its uploads are refused (HTTP 403).
    pub reader: Option<(String, String)>,
    /// What to sign with (neither server checks it).
    pub region: &'static str,
    /// A bucket that exists from the start.
    pub bucket: String,
    /// From spawn to ready (rclone: the port accepts; SeaweedFS: a signed PUT succeeds).
    pub startup: Duration,
    dir: tempfile::TempDir,
    port: u16,
    curl: PathBuf,
    process: Process,
    /// Unix sockets SeaweedFS makes at fixed /tmp paths, removed when it stops.
    sockets: Vec<PathBuf>,
}

impl S3 {
    /// `rclone serve s3 DIR --auth-key AK,SK`: each bucket is a top-level directory of
    /// [`S3::files_dir`], each object a file (a key's `/` are directories).
    pub fn rclone() -> Option<S3> {
        S3::rclone_with_auth(true, None)
    }

    /// [`S3::rclone`] over HTTPS only (`--cert`, `--key`), with the server certificate of
    /// `ca` (made for 127.0.0.1): `endpoint` is `https://127.0.0.1:PORT`. The harness's own
    /// requests ([`S3::request`], [`S3::signed`]) speak plain HTTP: not for this one.
    pub fn rclone_tls(ca: &TestCa) -> Option<S3> {
        S3::rclone_with_auth(true, Some(ca))
    }

    /// `rclone serve s3` without `--auth-key`: a public bucket, anonymous requests welcome
    /// (`access_key`/`secret_key` are then not checked by anyone).
    pub fn rclone_anonymous() -> Option<S3> {
        S3::rclone_with_auth(false, None)
    }

    fn rclone_with_auth(auth: bool, tls: Option<&TestCa>) -> Option<S3> {
        let bin = match find_tool("HASHPYC_RCLONE", "rclone") {
            Ok(b) => b,
            Err(why) => return unavailable(&why),
        };
        let curl = match find_tool("HASHPYC_CURL", "curl") {
            Ok(c) => c,
            Err(why) => return unavailable(&format!("{why}; the harness signs S3 requests with curl")),
        };
        let dir = tempdir("hashpyc-rclone-");
        let d = dir.path();
        let bucket = "hashpyc-test".to_string();
        std::fs::create_dir_all(d.join("data").join(&bucket)).expect("mkdir bucket");
        let access_key = format!("HPC{}", random_hex(17).to_uppercase());
        let secret_key = random_hex(40);
        let (process, port, startup) = start_with_retries("rclone serve s3", || {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["serve", "s3"]).arg(d.join("data")).arg("--addr").arg(format!("127.0.0.1:{port}"));
            if auth {
                cmd.arg("--auth-key").arg(format!("{access_key},{secret_key}"));
            }
            if let Some(ca) = tls {
                cmd.arg("--cert").arg(&ca.cert).arg("--key").arg(&ca.key);
            }
            cmd
                // Objects written or changed on disk by a test are seen within a second
                // (0s makes rclone re-read every directory for every request: many
                // concurrent PUTs then take seconds each).
                .args(["--dir-cache-time", "1s"])
                .args(["--config", "/dev/null"])
                .arg("--cache-dir")
                .arg(d.join("cache"));
            scrub_s3_env(&mut cmd);
            let mut process =
                Process::start("rclone serve s3", cmd, &d.join("rclone.log")).expect("spawn rclone");
            let addr = SocketAddr::from((LOCALHOST, port));
            match process.wait_ready(Duration::from_secs(15), || accepts(addr)) {
                Ok(t) => Ok((process, port, t)),
                Err(why) => {
                    let exited = !process.running();
                    Err((why, exited))
                }
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        Some(S3 {
            kind: S3Kind::Rclone,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            access_key,
            secret_key,
            reader: None,
            region: "us-east-1",
            bucket,
            startup,
            dir,
            port,
            curl,
            process,
            sockets: Vec::new(),
        })
    }

    /// SeaweedFS `weed mini` (master, volume, filer and S3 gateway in one process; WebDAV,
    /// admin UI, Iceberg and telemetry off) with one identity allowed everything, another
    /// allowed to read and list only ([`S3::reader`]), and
    /// `-s3.autoCreateBucket=false` so a missing bucket is NoSuchBucket as on AWS.
    pub fn seaweedfs() -> Option<S3> {
        let bin = match find_tool("HASHPYC_WEED", "weed") {
            Ok(b) => b,
            Err(why) => return unavailable(&why),
        };
        let curl = match find_tool("HASHPYC_CURL", "curl") {
            Ok(c) => c,
            Err(why) => return unavailable(&format!("{why}; the harness signs S3 requests with curl")),
        };
        let dir = tempdir("hashpyc-weed-");
        let d = dir.path().to_path_buf();
        let bucket = "hashpyc-test".to_string();
        let access_key = format!("HPC{}", random_hex(17).to_uppercase());
        let secret_key = random_hex(40);
        let reader = (format!("HPR{}", random_hex(17).to_uppercase()), random_hex(40));
        let identities = format!(
            r#"{{"identities": [{{"name": "hashpyc", "credentials": [{{"accessKey": "{access_key}", "secretKey": "{secret_key}"}}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}}, {{"name": "reader", "credentials": [{{"accessKey": "{}", "secretKey": "{}"}}], "actions": ["Read", "List"]}}]}}"#,
            reader.0, reader.1
        );
        std::fs::write(d.join("s3.json"), identities).expect("s3.json");
        let mut sockets = Vec::new();
        let mut attempt_no = 0;
        let (process, port, startup) = start_with_retries("weed mini", || {
            attempt_no += 1;
            let data = d.join(format!("data{attempt_no}"));
            std::fs::create_dir_all(&data).expect("mkdir data");
            // Each component's gRPC port is its HTTP port + 10000 (the admin's worker
            // assumes so whatever -admin.port.grpc says).
            let [master, volume, filer, s3, admin] = [(); 5].map(|()| free_port_with(Some(10000)));
            for (name, port) in
                [("master", master), ("volume", volume), ("filer", filer), ("s3", s3), ("admin", admin)]
            {
                // weed's fixed path; one left by a weed killed with the test process (no
                // Drop) is stale, as nothing listens on its port.
                let socket = PathBuf::from(format!("/tmp/seaweedfs-{name}-grpc-{}.sock", port + 10000));
                let _ = std::fs::remove_file(&socket);
                sockets.push(socket);
            }
            let mut cmd = Command::new(&bin);
            cmd.arg("-logtostderr")
                .arg("mini")
                .arg(format!("-dir={}", data.display()))
                .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                .arg(format!("-master.port={master}"))
                .arg(format!("-master.port.grpc={}", master + 10000))
                .arg(format!("-volume.port={volume}"))
                .arg(format!("-volume.port.grpc={}", volume + 10000))
                .arg(format!("-filer.port={filer}"))
                .arg(format!("-filer.port.grpc={}", filer + 10000))
                .arg(format!("-filer.localSocket={}", d.join("filer.sock").display()))
                .arg(format!("-s3.port={s3}"))
                .arg(format!("-s3.port.grpc={}", s3 + 10000))
                .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
                .arg(format!("-admin.port={admin}"))
                .arg(format!("-admin.port.grpc={}", admin + 10000))
                .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false"])
                .args(["-master.telemetry=false", "-s3.autoCreateBucket=false"])
                .arg(format!("-s3.config={}", d.join("s3.json").display()))
                .arg(format!("-bucket={bucket}"));
            scrub_s3_env(&mut cmd);
            let mut process = Process::start("weed mini", cmd, &d.join("weed.log")).expect("spawn weed");
            let addr = SocketAddr::from((LOCALHOST, s3));
            let probe = format!("http://127.0.0.1:{s3}/{bucket}/.hashpyc-ready");
            // Ready when a signed PUT is stored: the S3 port answers before the volume
            // server has registered with the master.
            let ready = |process: &mut Process| {
                process.wait_ready(Duration::from_secs(30), || {
                    accepts(addr)
                        && curl_request(&curl, "PUT", &probe, b"ready", Some((&access_key, &secret_key)))
                            .is_ok_and(|r| r.status == 200)
                })
            };
            match ready(&mut process) {
                Ok(t) => {
                    let _ = curl_request(&curl, "DELETE", &probe, b"", Some((&access_key, &secret_key)));
                    Ok((process, s3, t))
                }
                Err(why) => {
                    let exited = !process.running();
                    Err((why, exited))
                }
            }
        });
        Some(S3 {
            kind: S3Kind::SeaweedFs,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key,
            secret_key,
            reader: Some(reader),
            region: "us-east-1",
            bucket,
            startup,
            dir,
            port,
            curl,
            process,
            sockets,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// `{endpoint}/{bucket}/{key}` in the default bucket.
    pub fn object_url(&self, key: &str) -> String {
        format!("{}/{}/{}", self.endpoint, self.bucket, key.trim_start_matches('/'))
    }

    /// rclone only: the directory the buckets are in (a bucket is a directory, an object
    /// a file: tests may corrupt or remove objects there, seen at once).
    pub fn files_dir(&self) -> Option<PathBuf> {
        (self.kind == S3Kind::Rclone).then(|| self.dir.path().join("data"))
    }

    /// A request signed (SigV4, by curl, payload `UNSIGNED-PAYLOAD`) with `creds`
    /// (access key, secret), or unsigned with None. `path` is `/bucket/key`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        creds: Option<(&str, &str)>,
    ) -> Result<Response, String> {
        curl_request(&self.curl, method, &format!("{}{path}", self.endpoint), body, creds)
    }

    /// A request signed with this server's own credentials.
    pub fn signed(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request(method, path, body, Some((&self.access_key, &self.secret_key)))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log_tail()))
    }

    /// CreateBucket through the API (200, or 409 when it already exists).
    pub fn create_bucket(&self, name: &str) {
        let r = self.signed("PUT", &format!("/{name}"), b"");
        assert_eq!(r.status, 200, "CreateBucket {name}: {}\n{}", r.text(), self.log_tail());
    }

    /// An `rclone` command whose remote `hashpyc:` is this server (provider Other,
    /// path-style, signed with `secret`): e.g. `rclone copyto FILE hashpyc:BUCKET/KEY`.
    /// None when rclone is not installed.
    pub fn rclone_client(&self, secret: &str) -> Option<Command> {
        let bin = find_tool("HASHPYC_RCLONE", "rclone").ok()?;
        let mut cmd = Command::new(bin);
        scrub_s3_env(&mut cmd);
        for v in ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            cmd.env_remove(v);
        }
        cmd.args(["--config", "/dev/null", "--retries", "1", "--low-level-retries", "1"])
            .env("RCLONE_CONFIG_HASHPYC_TYPE", "s3")
            .env("RCLONE_CONFIG_HASHPYC_PROVIDER", "Other")
            .env("RCLONE_CONFIG_HASHPYC_ENV_AUTH", "false")
            .env("RCLONE_CONFIG_HASHPYC_ENDPOINT", &self.endpoint)
            .env("RCLONE_CONFIG_HASHPYC_REGION", self.region)
            .env("RCLONE_CONFIG_HASHPYC_FORCE_PATH_STYLE", "true")
            .env("RCLONE_CONFIG_HASHPYC_ACCESS_KEY_ID", &self.access_key)
            .env("RCLONE_CONFIG_HASHPYC_SECRET_ACCESS_KEY", secret);
        Some(cmd)
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kill it now (SIGKILL): from then on the endpoint refuses connections.
    pub fn kill(&mut self) {
        self.process.kill();
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// No RCLONE_* or AWS_* settings of the developer's leak into a server or client.
fn scrub_s3_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k8 = k.to_string_lossy();
        if k8.starts_with("RCLONE_") || k8.starts_with("AWS_") {
            cmd.env_remove(&k);
        }
    }
}

/// One request by curl (SigV4-signed with `creds`, else unsigned), parsed.
fn curl_request(
    curl: &Path,
    method: &str,
    url: &str,
    body: &[u8],
    creds: Option<(&str, &str)>,
) -> Result<Response, String> {
    split_url(url); // loopback only
    let mut cmd = Command::new(curl);
    cmd.args(["-sS", "-i", "--noproxy", "*", "--max-time", "30"]);
    if let Some((ak, sk)) = creds {
        cmd.args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{ak}:{sk}")]);
        // S3 wants the payload's hash (or UNSIGNED-PAYLOAD) in x-amz-content-sha256, signed;
        // curl signs every x-amz-* header given.
        cmd.args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    }
    match method {
        "HEAD" => {
            cmd.arg("--head");
        }
        "PUT" | "POST" => {
            cmd.args(["-X", method, "--data-binary", "@-", "-H", "Content-Type: application/octet-stream"]);
        }
        _ => {
            cmd.args(["-X", method]);
        }
    }
    cmd.arg(url).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", curl.display()))?;
    let mut stdin = child.stdin.take().expect("stdin");
    let data = if matches!(method, "PUT" | "POST") { body.to_vec() } else { Vec::new() };
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!("curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let (status, headers, rest) = parse_head(&out.stdout).map_err(|e| format!("curl output: {e}"))?;
    Ok(Response { status, headers, body: rest.to_vec() })
}

// ---------------------------------------------------------------------------------------
// Faulty servers, delaying proxy
// ---------------------------------------------------------------------------------------

/// What a [`Faulty`] server does with every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This status and a short body (`fault: status N`), connection kept alive.
    Status(u16),
    /// 200 with 4096 random bytes.
    Garbage,
    /// A full server: GET/HEAD 404, PUT 507 Insufficient Storage.
    Full,
    /// GET: 200 with `Content-Length: 2^34` and zeros until the client stops reading (600 MiB
    /// at most), then `SENT <bytes>` logged; other requests 201.
    Huge,
    /// The same without a Content-Length (the body ends with the connection).
    Endless,
    /// The same, the body starting with the cache entry magic `HPYCACHE`.
    EndlessEntry,
    /// 200 announcing 1000 bytes of body, 10 sent, then the connection is closed.
    Truncated,
    /// The response (status line included) one byte per second.
    Trickle,
    /// Connections are accepted, never read from nor answered.
    AcceptNeverAnswer,
    /// GET and HEAD 404; a PUT is read and never answered.
    PutNeverAnswer,
    /// Every request: 302 to `http://127.0.0.2:PORT/PATH?X-Amz-Signature=hunter2sig`.
    Redirect,
    /// A working store that wants collections made first, as Apache's mod_dav: a PUT or a
    /// MKCOL whose parent collection was not made gets 409, a MKCOL of one there 405.
    Collections,
    /// A working in-memory store (PUT 201/204, GET/HEAD 200/404, DELETE 204/404) that
    /// answers this many requests, then closes its listener and connections and exits.
    DieAfter(usize),
    /// The store of [`Fault::Flaky`] (no faults) behind an accept queue that is full at
    /// first (the kernel drops connection attempts) and is emptied this many milliseconds
    /// after the first attempt (`RELEASED` logged then): attempts resent after that connect.
    FullQueue(u64),
    /// The same store (keyed by path without the query string), but of the requests of
    /// each method to each path, the first `first` of every `first + 1` meet `with`: a
    /// request fails `first` times, then is answered.
    Flaky { first: usize, with: Flake },
}

/// What a [`Fault::Flaky`] server does with a request it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flake {
    /// This status and a short body, connection kept alive.
    Status(u16),
    /// The connection is reset (RST), the request unanswered.
    Reset,
    /// The connection is closed (FIN), the request unanswered.
    Close,
}

impl Fault {
    fn arg(self) -> String {
        match self {
            Fault::Status(n) => format!("status:{n}"),
            Fault::Garbage => "garbage".into(),
            Fault::Full => "full".into(),
            Fault::Huge => "huge".into(),
            Fault::Endless => "endless".into(),
            Fault::EndlessEntry => "endless-entry".into(),
            Fault::Truncated => "truncated".into(),
            Fault::Trickle => "trickle".into(),
            Fault::AcceptNeverAnswer => "accept-never-answer".into(),
            Fault::PutNeverAnswer => "put-never-answer".into(),
            Fault::Redirect => "redirect".into(),
            Fault::Collections => "collections".into(),
            Fault::DieAfter(n) => format!("die-after:{n}"),
            Fault::FullQueue(ms) => format!("full-queue:{ms}"),
            Fault::Flaky { first, with } => match with {
                Flake::Status(n) => format!("flaky:{first}:{n}"),
                Flake::Reset => format!("flaky:{first}:reset"),
                Flake::Close => format!("flaky:{first}:close"),
            },
        }
    }
}

/// The interpreter behind `python3` on PATH, resolved once: a pyenv shim costs ~0.2 s a
/// start.
fn python3() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("python3"))
    })
}

/// Start a Python script that binds 127.0.0.1:0 and writes its port to a file; wait for it.
fn start_python_server(name: &str, dir: &Path, script: &str, args: &[String]) -> (Process, u16, Duration) {
    let port_file = dir.join("port");
    let mut cmd = Command::new(python3());
    cmd.arg(script).args(args).arg("--port-file").arg(&port_file);
    let started = Instant::now();
    let mut process = Process::start(name, cmd, &dir.join("server.log"))
        .unwrap_or_else(|e| panic!("python3 {script}: {e}"));
    let mut port = 0u16;
    let waited = process.wait_ready(Duration::from_secs(10), || {
        port = std::fs::read_to_string(&port_file).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        port != 0
    });
    if let Err(why) = waited {
        panic!("{}: {name} did not start: {why}", current_test());
    }
    (process, port, started.elapsed())
}

/// A misbehaving HTTP server (`tests/it/faulty_server.py`, needs `python3` on PATH) on
/// 127.0.0.1, logging each request as `METHOD /path` (`CONNECT` per connection in
/// [`Fault::AcceptNeverAnswer`]).
pub struct Faulty {
    dir: tempfile::TempDir,
    port: u16,
    process: Process,
    pub fault: Fault,
    pub startup: Duration,
}

impl Faulty {
    pub fn start(fault: Fault) -> Faulty {
        Faulty::launch(fault, None)
    }

    /// With `Retry-After: VALUE` (seconds, or an HTTP date) on the statuses of its faults.
    pub fn start_with_retry_after(fault: Fault, value: impl std::fmt::Display) -> Faulty {
        Faulty::launch(fault, Some(value.to_string()))
    }

    fn launch(fault: Fault, retry_after: Option<String>) -> Faulty {
        let dir = tempdir("hashpyc-faulty-");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/faulty_server.py");
        let log = dir.path().join("requests.log");
        let mut args =
            vec!["--mode".to_string(), fault.arg(), "--log".to_string(), log.display().to_string()];
        if let Some(value) = retry_after {
            args.extend(["--retry-after".to_string(), value]);
        }
        let (process, port, startup) = start_python_server("faulty server", dir.path(), script, &args);
        println!("faulty server ({fault:?}) ready in {startup:?}");
        Faulty { dir, port, process, fault, startup }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests seen so far, `METHOD /path` (or `CONNECT`), in order.
    pub fn requests(&self) -> Vec<String> {
        logged_requests(self.dir.path())
    }

    /// Wait for the server to exit by itself ([`Fault::DieAfter`]); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        self.process.wait_exit(timeout).is_some()
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A TCP proxy on 127.0.0.1 (`benches/delay_proxy.py`, needs `python3`) in front of a
/// loopback `upstream`: each request reaches it `delay` later (one-way, pipelined), so
/// every request/response exchange takes `delay` longer; responses are not delayed.
pub struct DelayProxy {
    dir: tempfile::TempDir,
    port: u16,
    process: Process,
    pub delay: Duration,
}

impl DelayProxy {
    pub fn start(upstream: SocketAddr, delay: Duration) -> DelayProxy {
        DelayProxy::start_with_connect_delay(upstream, delay, Duration::ZERO)
    }

    /// Also wait `connect_delay` before connecting upstream for each new connection.
    pub fn start_with_connect_delay(
        upstream: SocketAddr,
        delay: Duration,
        connect_delay: Duration,
    ) -> DelayProxy {
        assert!(upstream.ip().is_loopback(), "the proxy's upstream must be loopback, not {upstream}");
        let dir = tempdir("hashpyc-delay-");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/delay_proxy.py");
        let ms = |d: Duration| format!("{}", d.as_secs_f64() * 1000.0);
        let args = [
            "--upstream".to_string(),
            upstream.to_string(),
            "--delay-ms".to_string(),
            ms(delay),
            "--connect-delay-ms".to_string(),
            ms(connect_delay),
            "--max-seconds".to_string(),
            "1800".to_string(),
        ];
        let (process, port, _) = start_python_server("delay proxy", dir.path(), script, &args);
        DelayProxy { dir, port, process, delay }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

// ---------------------------------------------------------------------------------------
// The harness's own tests
// ---------------------------------------------------------------------------------------

fn random_bytes(n: usize) -> Vec<u8> {
    let hex = random_hex(2 * n);
    (0..n).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)), Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
}

#[test]
fn nginx_put_get_head_delete() {
    let Some(nginx) = Nginx::start() else {
        return;
    };
    println!("nginx ready in {:?}", nginx.startup);
    let url = format!("{}/ab/cd/key1", nginx.url());
    // create_full_put_path: no MKCOL needed for /ab/cd/.
    let r = http("PUT", &url, &[], b"first").unwrap();
    assert_eq!(r.status, 201, "{r:?}\n{}", nginx.log_tail());
    assert_eq!(std::fs::read(nginx.data_dir().join("ab/cd/key1")).unwrap(), b"first");
    let r = http("GET", &url, &[], b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    assert!(r.header("etag").is_some(), "{r:?}");
    let r = http("HEAD", &url, &[], b"").unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    // Overwriting an existing key: 204.
    let r = http("PUT", &url, &[], b"second!").unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(http("GET", &url, &[], b"").unwrap().body, b"second!");
    // No body size limit (nginx's default is 1 MiB).
    let big = random_bytes(3 << 20);
    let big_url = format!("{}/big", nginx.url());
    assert_eq!(http("PUT", &big_url, &[], &big).unwrap().status, 201);
    assert!(http("GET", &big_url, &[], b"").unwrap().body == big, "3 MiB round trip");
    let r = http("DELETE", &url, &[], b"").unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(http("GET", &url, &[], b"").unwrap().status, 404);
    assert_eq!(http("HEAD", &url, &[], b"").unwrap().status, 404);
    assert_eq!(http("DELETE", &url, &[], b"").unwrap().status, 404);
    assert!(nginx.access_log().contains("\"DELETE /ab/cd/key1 HTTP/1.1\" 404"), "{}", nginx.access_log());
}

#[test]
fn nginx_basic_auth_checks_credentials() {
    let Some(nginx) = Nginx::start_with_basic_auth("builder", "s3cr3t pass") else {
        return;
    };
    let url = format!("{}/k", nginx.url());
    assert_eq!(http("PUT", &url, &[], b"x").unwrap().status, 401);
    let wrong = basic_auth("builder", "nope");
    assert_eq!(http("PUT", &url, &[("Authorization", &wrong)], b"x").unwrap().status, 401);
    assert!(!nginx.data_dir().join("k").exists());
    let (user, pass) = nginx.credentials().unwrap();
    let right = basic_auth(user, pass);
    assert_eq!(http("PUT", &url, &[("Authorization", &right)], b"x").unwrap().status, 201);
    assert_eq!(http("GET", &url, &[], b"").unwrap().status, 401);
    assert_eq!(http("GET", &url, &[("Authorization", &right)], b"").unwrap().body, b"x");
}

#[test]
fn killed_nginx_refuses_connections_and_is_reaped() {
    let Some(mut nginx) = Nginx::start() else {
        return;
    };
    let url = format!("{}/k", nginx.url());
    assert_eq!(http("PUT", &url, &[], b"x").unwrap().status, 201);
    // A connection open when it dies.
    let mut open = TcpStream::connect(nginx.addr()).unwrap();
    let pid = nginx.pid().unwrap();
    nginx.kill();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "nginx {pid} killed but not reaped");
    assert!(refused(nginx.addr()), "port {} still accepts after kill", nginx.port());
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = open.write_all(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(!matches!(open.read(&mut buf), Ok(n) if n > 0), "a killed nginx answered");
    // Drop kills too.
    let Some(again) = Nginx::start() else {
        return;
    };
    let (pid, addr) = (again.pid().unwrap(), again.addr());
    drop(again);
    assert!(!Path::new(&format!("/proc/{pid}")).exists() && refused(addr));
}

/// SigV4 is checked, and objects round-trip, through curl and through rclone's S3 client.
fn s3_checks_signatures_and_stores(s3: &S3) {
    let logs = || s3.log_tail();
    let key = format!("/{}/ab/cd/object", s3.bucket);
    let (ak, sk) = (s3.access_key.as_str(), s3.secret_key.as_str());
    // Unsigned: refused, not stored.
    let r = s3.request("PUT", &key, b"anonymous", None).unwrap();
    assert!((400..500).contains(&r.status), "unsigned PUT got {} {}\n{}", r.status, r.text(), logs());
    assert_eq!(s3.signed("GET", &key, b"").status, 404);
    // A wrong secret, a wrong access key: 403.
    let r = s3.request("PUT", &key, b"forged", Some((ak, "wrong-secret"))).unwrap();
    assert_eq!(r.status, 403, "wrong secret: {}\n{}", r.text(), logs());
    assert!(r.text().contains("SignatureDoesNotMatch"), "{}", r.text());
    let r = s3.request("GET", &key, b"", Some(("HPCNOSUCHKEY0000000", sk))).unwrap();
    assert_eq!(r.status, 403, "unknown access key: {}", r.text());
    assert_eq!(s3.signed("HEAD", &key, b"").status, 404);
    // Signed: stored, read back, overwritten, deleted.
    let body = random_bytes(100_000);
    let r = s3.signed("PUT", &key, &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), logs());
    let etag = r.header("etag").map(str::to_string);
    let got = s3.signed("GET", &key, b"");
    assert_eq!(got.status, 200);
    assert!(got.body == body, "GET returned {} bytes, not the {} PUT", got.body.len(), body.len());
    assert_eq!(got.header("etag").map(str::to_string), etag);
    let head = s3.signed("HEAD", &key, b"");
    assert_eq!((head.status, head.header("content-length")), (200, Some("100000")));
    assert_eq!(s3.signed("PUT", &key, b"v2").status, 200);
    assert_eq!(s3.signed("GET", &key, b"").body, b"v2");
    assert_eq!(s3.signed("DELETE", &key, b"").status, 204);
    assert_eq!(s3.signed("GET", &key, b"").status, 404);
    assert_eq!(s3.signed("DELETE", &key, b"").status, 204, "S3 deletes of a missing key are 204");
    // Buckets: a missing one is NoSuchBucket; a new one works.
    let r = s3.signed("PUT", "/no-such-bucket/k", b"x");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("NoSuchBucket"), "{}", r.text());
    s3.create_bucket("second");
    assert_eq!(s3.signed("PUT", "/second/k", b"x").status, 200);

    // A real S3 client (rclone's, the AWS Go SDK): works with the secret, fails without.
    if s3.rclone_client(sk).is_none() {
        let _: Option<()> = unavailable("rclone (as an S3 client) not found");
        return;
    }
    let work = tempdir("hashpyc-s3-client-");
    let src = work.path().join("src");
    std::fs::write(&src, b"through rclone").unwrap();
    let remote = format!("hashpyc:{}/via/rclone", s3.bucket);
    let out = s3.rclone_client(sk).unwrap().arg("copyto").arg(&src).arg(&remote).output().unwrap();
    assert!(out.status.success(), "rclone copyto: {}\n{}", String::from_utf8_lossy(&out.stderr), logs());
    let out = s3.rclone_client(sk).unwrap().args(["cat", &remote]).output().unwrap();
    assert_eq!(out.stdout, b"through rclone", "{}", String::from_utf8_lossy(&out.stderr));
    let out = s3.rclone_client("wrong-secret").unwrap().args(["cat", &remote]).output().unwrap();
    assert!(!out.status.success() && out.stdout.is_empty(), "read with a wrong secret succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"), "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        s3.rclone_client("wrong-secret").unwrap().arg("copyto").arg(&src).arg(&remote).output().unwrap();
    assert!(!out.status.success(), "write with a wrong secret succeeded");
}

#[test]
fn rclone_s3_checks_signatures_and_stores() {
    let Some(s3) = S3::rclone() else {
        return;
    };
    println!("rclone serve s3 ready in {:?}", s3.startup);
    s3_checks_signatures_and_stores(&s3);
    // Objects are files under files_dir(), changes there are seen within a second.
    let files = s3.files_dir().unwrap();
    assert_eq!(std::fs::read(files.join(&s3.bucket).join("via/rclone")).unwrap(), b"through rclone");
    std::fs::write(files.join(&s3.bucket).join("via/rclone"), b"changed on disk").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s3.signed("GET", &format!("/{}/via/rclone", s3.bucket), b"").body, b"changed on disk");
}

#[test]
fn seaweedfs_s3_checks_signatures_and_stores() {
    let Some(mut s3) = S3::seaweedfs() else {
        return;
    };
    println!("weed mini ready in {:?}", s3.startup);
    s3_checks_signatures_and_stores(&s3);
    let (pid, addr, sockets) = (s3.pid().unwrap(), s3.addr(), s3.sockets.clone());
    s3.kill();
    assert!(!Path::new(&format!("/proc/{pid}")).exists() && refused(addr));
    assert!(sockets.iter().all(|s| !s.exists()), "left {sockets:?}");
}

#[test]
fn faulty_status_codes() {
    for code in [500, 403, 404, 507] {
        let f = Faulty::start(Fault::Status(code));
        let r = http("PUT", &format!("{}/k", f.url()), &[], b"body").unwrap();
        assert_eq!((r.status, r.text()), (code, format!("fault: status {code}\n")));
        assert_eq!(http("GET", &format!("{}/k", f.url()), &[], b"").unwrap().status, code);
        assert_eq!(f.requests(), ["PUT /k", "GET /k"]);
    }
}

#[test]
fn faulty_garbage_truncated_trickle() {
    let f = Faulty::start(Fault::Garbage);
    let a = http("GET", &format!("{}/k", f.url()), &[], b"").unwrap();
    let b = http("GET", &format!("{}/k", f.url()), &[], b"").unwrap();
    assert_eq!((a.status, a.body.len(), b.body.len()), (200, 4096, 4096));
    assert_ne!(a.body, b.body, "garbage is random");

    let f = Faulty::start(Fault::Truncated);
    let err = http("GET", &format!("{}/k", f.url()), &[], b"").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    let (raw, ended) = exchange(f.addr(), b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(5));
    assert!(ended.is_ok(), "the server closes: {ended:?}");
    let (status, headers, rest) = parse_head(&raw).unwrap();
    assert_eq!((status, rest.len()), (200, 10));
    assert!(headers.contains(&("Content-Length".to_string(), "1000".to_string())));

    let f = Faulty::start(Fault::Trickle);
    let start = Instant::now();
    let (raw, ended) = exchange(f.addr(), b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_millis(2500));
    assert_eq!(ended.unwrap_err().kind(), io::ErrorKind::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(2500));
    assert!((2..=4).contains(&raw.len()) && raw.starts_with(b"HT"), "trickled {raw:?}");
}

#[test]
fn faulty_accept_never_answer_and_closed_port() {
    let f = Faulty::start(Fault::AcceptNeverAnswer);
    let (raw, ended) = exchange(f.addr(), b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(1));
    assert_eq!(ended.unwrap_err().kind(), io::ErrorKind::TimedOut, "connected, then no answer");
    assert!(raw.is_empty());
    assert_eq!(f.requests(), ["CONNECT"]);

    let port = closed_port();
    assert!(refused(SocketAddr::from((LOCALHOST, port))));
    let err = http("GET", &format!("http://127.0.0.1:{port}/k"), &[], b"").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[test]
fn faulty_die_after_n_requests() {
    let mut f = Faulty::start(Fault::DieAfter(4));
    let url = format!("{}/a/key", f.url());
    assert_eq!(http("PUT", &url, &[], b"stored").unwrap().status, 201);
    let r = http("GET", &url, &[], b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"stored"[..]));
    assert_eq!(http("HEAD", &format!("{}/missing", f.url()), &[], b"").unwrap().status, 404);
    // The 4th answer is the last; then the port is closed.
    assert_eq!(http("PUT", &url, &[], b"again").unwrap().status, 204);
    assert!(f.wait_exit(Duration::from_secs(5)), "still running after 4 requests\n{}", f.log_tail());
    assert!(refused(f.addr()));
    assert_eq!(f.requests(), ["PUT /a/key", "GET /a/key", "HEAD /missing", "PUT /a/key"]);
}

#[test]
fn faulty_flaky_fails_the_first_requests_to_each_path() {
    let f = Faulty::start_with_retry_after(Fault::Flaky { first: 2, with: Flake::Status(503) }, 1);
    let url = format!("{}/a/key", f.url());
    for _ in 0..2 {
        let r = http("PUT", &url, &[], b"stored").unwrap();
        assert_eq!((r.status, r.header("Retry-After")), (503, Some("1")));
    }
    assert_eq!(http("PUT", &url, &[], b"stored").unwrap().status, 201);
    // Per method: the first GETs fail too.
    assert_eq!(http("GET", &url, &[], b"").unwrap().status, 503);
    assert_eq!(http("GET", &url, &[], b"").unwrap().status, 503);
    assert_eq!(http("GET", &url, &[], b"").unwrap().body, b"stored");
    // And again: two failures, then the answer.
    assert_eq!(http("GET", &format!("{url}?signed=1"), &[], b"").unwrap().status, 503);
    assert_eq!(http("GET", &format!("{url}?signed=2"), &[], b"").unwrap().status, 503);
    assert_eq!(http("GET", &format!("{url}?signed=3"), &[], b"").unwrap().body, b"stored");
    assert_eq!(f.requests().len(), 9);
    // Reset: the read fails; closed: it ends with no response head.
    for (with, kind) in
        [(Flake::Reset, io::ErrorKind::ConnectionReset), (Flake::Close, io::ErrorKind::InvalidData)]
    {
        let f = Faulty::start(Fault::Flaky { first: 1, with });
        let url = format!("{}/k", f.url());
        assert_eq!(http("PUT", &url, &[], b"x").unwrap_err().kind(), kind, "{with:?}");
        assert_eq!(http("PUT", &url, &[], b"x").unwrap().status, 201, "{with:?}");
        assert_eq!(f.requests(), ["PUT /k", "PUT /k"]);
    }
}

#[test]
fn delay_proxy_adds_latency_per_request() {
    let upstream = Faulty::start(Fault::DieAfter(1000));
    let delay = Duration::from_millis(300);
    let proxy = DelayProxy::start(upstream.addr(), delay);
    let url = format!("{}/k", proxy.url());
    let start = Instant::now();
    assert_eq!(http("PUT", &url, &[], &random_bytes(200_000)).unwrap().status, 201);
    assert_eq!(http("GET", &url, &[], b"").unwrap().body.len(), 200_000);
    let took = start.elapsed();
    assert!(took >= 2 * delay, "two requests through a {delay:?} proxy took {took:?}");
    assert!(took < Duration::from_secs(5), "a 200 kB body is delayed once, not per chunk: {took:?}");
    assert_eq!(upstream.requests(), ["PUT /k", "GET /k"]);
}

/// The lines of `requests.log` in `dir`, where the test servers write each request they
/// answer (none yet: empty).
fn logged_requests(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("requests.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
