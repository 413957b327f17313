//! Remote tiers of the bytecode cache: plain HTTP/WebDAV (`http`), and S3-compatible
//! object storage (`s3`). Synchronous (ureq, rustls), with one connection pool shared by
//! the many threads that look entries up, and short timeouts: a remote round trip costs
//! milliseconds, a compile about one, so a cache that is slow or dead must cost seconds
//! at most, once. No message ever holds a credential or a signed URL.

pub mod aws;
pub mod http;
pub mod retry;
pub mod s3;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use super::tier::{Tier, TierError};

/// The default timeout of one remote request (`HASHPYC_CACHE_TIMEOUT` seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Uploads run in the background, so a slow server gets longer for them than for lookups
/// (which a build waits on); the end of a build still waits for them only so long.
pub fn upload_timeout(timeout: Duration) -> Duration {
    (timeout * 5).max(Duration::from_secs(10))
}

/// Remote lookups in flight at once: they wait on the network, not the CPU (at 20 ms a
/// round trip, 128 look up about 6 000 entries a second).
pub const LOOKUPS: usize = 128;
/// Uploads in flight at once (they run in the background).
pub const UPLOADS: usize = 16;

/// Upload threads: [`UPLOADS`], or under a low open-file limit (`ulimit -n`) one per 32
/// descriptors of it, at least one: each keeps a connection open, and the build's workers
/// and lookups need the rest (`compile::descriptor_jobs`).
pub fn upload_threads() -> usize {
    crate::io::open_file_limit()
        .map_or(UPLOADS, |l| usize::try_from(l / 32).unwrap_or(UPLOADS).clamp(1, UPLOADS))
}

/// The largest entry a lookup reads, and an upload sends. Entries travel zstd-compressed:
/// the largest pycs real trees hold (a generated module of tables) are a few MiB, and
/// compress several times over, so no real entry comes near; a larger answer is a broken
/// or hostile server's, refused before its body is read when its `Content-Length` says so.
pub const MAX_ENTRY: u64 = 64 << 20;
/// What the bodies lookups are reading may hold in all (128 lookups run at once: a server
/// that answers each with a huge body must not exhaust memory), room for a few entries of
/// [`MAX_ENTRY`]; a body that would pass it is refused as too large.
pub const MAX_READING: u64 = 256 << 20;
/// The bytes of entry bodies being read, by every lookup and upload, and of payloads being
/// decoded from entries (`entry::decode`), in every tier.
static READING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Why a remote tier cannot be opened: bad input, found before any request is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The URL itself (a configuration file's `cache-url` is named with it).
    Url(String),
    /// What the environment gives it: half a credential pair, an invalid endpoint.
    Environment(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Url(m) | OpenError::Environment(m) => f.write_str(m),
        }
    }
}

/// Open the remote tier `url` names: `s3://BUCKET/PREFIX`, `http(s)://HOST/PREFIX`, without
/// the whitespace around it, whatever the scheme (the url crate trims it from an http(s)
/// URL; a CI secret pasted with its final newline must not make an S3 prefix `PREFIX\n`).
pub fn open(url: &str, timeout: Duration) -> Result<Arc<dyn Tier>, OpenError> {
    let url = url.trim();
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("s3") => Ok(Arc::new(s3::S3Tier::from_env(url, timeout)?)),
        Some("http" | "https") => {
            let token = bearer_token(std::env::var("HASHPYC_CACHE_TOKEN").ok())?;
            Ok(Arc::new(http::HttpTier::new(url, token, timeout).map_err(OpenError::Url)?))
        }
        _ => Err(OpenError::Url(format!(
            "unsupported cache URL `{}`: expected s3://BUCKET/PREFIX, http://HOST/PREFIX or https://HOST/PREFIX",
            redact_url(url)
        ))),
    }
}

/// Whether `host` is this machine's loopback, where plain http never leaves it: an address
/// of 127.0.0.0/8, `::1` (or `::ffff:127.x.y.z`), or the name `localhost`. Any other
/// name is not taken for one, whatever it resolves to now.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The warning for credentials about to be sent over plain `http://` to another machine
/// (`url`, the server's: a cache URL, an S3 endpoint): `sent` says what travels (`the
/// bearer token of HASHPYC_CACHE_TOKEN`), `None` when the requests carry no credential;
/// `shown` is the tier as messages name it, `fix` what to give instead. None for
/// `https://`, a loopback host, or no credential.
pub fn cleartext_warning(url: &url::Url, sent: Option<&str>, shown: &str, fix: &str) -> Option<String> {
    let sent = sent?;
    let host = url.host()?;
    if !url.scheme().eq_ignore_ascii_case("http") || is_loopback(&host) {
        return None;
    }
    Some(format!(
        "remote bytecode cache `{shown}`: {sent} over plain http to {host}: the credentials travel \
         unencrypted, so anyone on the network path can read them, and replace the cache's entries \
         with code of their own, which the builds reading it then run; {fix}"
    ))
}

/// The longest a connection is waited for. A connection attempt the network dropped (a SYN
/// lost, or refused by a server's full accept queue) is sent again by the system 1 s
/// later, then 3 s after the first: a limit of 1 s gave up on a live server just as the
/// resend went out. 3.5 s waits for two resends; a host that drops them all (a firewall, a
/// host that is down) costs no more, once per run, whatever the time limit.
const CONNECT_MAX: Duration = Duration::from_millis(3500);

/// The bearer token `HASHPYC_CACHE_TOKEN` holds (`value`): without the whitespace around it
/// (a token file's final newline, as container credential token files are read), none
/// when that leaves nothing; one that still holds a line break or another control
/// character cannot be sent in a header, which is bad configuration (never shown).
fn bearer_token(value: Option<String>) -> Result<Option<String>, OpenError> {
    let Some(token) = value.map(|v| v.trim().to_string()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if token.chars().any(char::is_control) {
        return Err(OpenError::Environment(
            "invalid HASHPYC_CACHE_TOKEN: it holds a line break or another control character, which \
             cannot be sent in a header (its value is not shown)"
                .into(),
        ));
    }
    Ok(Some(token))
}

/// An HTTP agent for the cache's requests: every phase bounded by `timeout`, connecting by
/// [`CONNECT_MAX`] at most (the default 2 s waits for one resend), a pool of `pool` idle connections (ureq scans it on every request,
/// so lookups and uploads get an agent each, sized for their threads), HTTP statuses
/// handled by the caller, the platform's roots (`SSL_CERT_FILE` and friends are
/// honoured), and with `proxy` (the host the agent talks to) the proxy of the environment
/// (`HTTPS_PROXY`…) unless `NO_PROXY` lists that host ([`no_proxy_lists`]); without, none (a
/// container credentials endpoint is asked directly).
pub fn agent(timeout: Duration, pool: usize, proxy: Option<&str>) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(CONNECT_MAX)))
        .http_status_as_error(false)
        .max_idle_connections(pool)
        .max_idle_connections_per_host(pool)
        .max_redirects(0)
        // MKCOL, for a WebDAV server that wants a PUT's collections made first (`http`).
        .allow_non_standard_methods(true)
        .user_agent(concat!("hashpyc/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls);
    if proxy.is_none_or(|host| no_proxy_lists(&no_proxy_variable(), host)) {
        config = config.proxy(None);
    }
    ureq::Agent::with_parts(config.build(), Connecting::default(), CachingResolver::default())
}

/// ureq's connectors, saying that a timeout met while connecting is one: the connect
/// limit is at most the request's, which ureq, when they coincide, reports as the whole
/// request's ("no complete answer" from a host that never took the connection).
#[derive(Debug, Default)]
struct Connecting(ureq::unversioned::transport::DefaultConnector);

impl ureq::unversioned::transport::Connector for Connecting {
    type Out = Box<dyn ureq::unversioned::transport::Transport>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // ureq, built without SOCKS, would connect straight to the server past a SOCKS
        // proxy of the environment (`ALL_PROXY=socks5://…`): against the policy that set
        // it, and where only the proxy may connect out, a timeout that names no proxy.
        if let Some(p) = details.config.proxy()
            && is_socks(p)
            && !p.is_no_proxy(details.uri)
        {
            return Err(ureq::Error::ConnectProxyFailed(SOCKS_REFUSED.into()));
        }
        self.0.connect(details, chained).map_err(|e| match e {
            ureq::Error::Timeout(ureq::Timeout::Global) => ureq::Error::Timeout(ureq::Timeout::Connect),
            e => e,
        })
    }
}

/// ureq resolves the host before every request, even one that reuses a pooled
/// connection, and with a timeout set it does so on a new thread: a thread per request,
/// which cost more CPU than the request itself (measured: 11 780 threads for 11 642
/// lookups). A build talks to one host, so each host:port is resolved once per run (with
/// the timeout) and the addresses are reused; failures are not remembered.
#[derive(Debug, Default)]
struct CachingResolver {
    inner: ureq::unversioned::resolver::DefaultResolver,
    resolved:
        std::sync::Mutex<std::collections::HashMap<String, ureq::unversioned::resolver::ResolvedSocketAddrs>>,
}

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key =
            format!("{}://{}", uri.scheme_str().unwrap_or(""), uri.authority().map_or("", |a| a.as_str()));
        if let Some(found) = self.resolved.lock().expect("resolver lock").get(&key) {
            return Ok(found.clone());
        }
        let found = self.inner.resolve(uri, config, timeout).map_err(|e| unresolved(e, uri))?;
        self.resolved.lock().expect("resolver lock").insert(key, found.clone());
        Ok(found)
    }
}

/// A host name the system could not resolve, and its reason ("Name or service not known"),
/// which [`send_error`] words: the resolver is what knows that an I/O error is a DNS one.
#[derive(Debug)]
struct Unresolved {
    host: String,
    reason: String,
}

impl Unresolved {
    /// The system's resolver said to try again later (`EAI_AGAIN`: its DNS server did not
    /// answer in time or failed for now), which the same request may well not meet again.
    /// std gives no error code for it, only getaddrinfo's message, which a program that
    /// never sets a locale gets in English.
    fn temporary(&self) -> bool {
        self.reason.starts_with("Temporary failure in name resolution")
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot resolve host {} ({})", self.host, self.reason)
    }
}

impl std::error::Error for Unresolved {}

/// The resolver's error for `uri`: a failed lookup (an I/O error of the system's resolver,
/// or no address of a usable family) as an [`Unresolved`] naming the host; a timeout as
/// it is.
fn unresolved(e: ureq::Error, uri: &ureq::http::Uri) -> ureq::Error {
    let (kind, reason) = match &e {
        ureq::Error::Io(io) if !matches!(io.kind(), std::io::ErrorKind::TimedOut) => {
            // std's wording around getaddrinfo's: the system's reason is what follows.
            let text = io.to_string();
            (
                io.kind(),
                text.strip_prefix("failed to lookup address information: ").unwrap_or(&text).to_string(),
            )
        }
        ureq::Error::HostNotFound => (std::io::ErrorKind::NotFound, "no address".to_string()),
        _ => return e,
    };
    let host = uri.host().unwrap_or_default().to_string();
    ureq::Error::Io(std::io::Error::new(kind, Unresolved { host, reason }))
}

/// A tier error for the request `what` (`GET`, `PUT`) that failed talking to `host`
/// (`HOST:PORT`), with `secrets` (credentials, signed query strings) scrubbed from whatever
/// the HTTP library said: `GET: cache.example:443: …`. A connection reset, or closed
/// before the response, is transient (a server restarting, a connection it dropped under
/// load); DNS and TLS errors are not (the same request would meet them again;
/// [`send_error`] tells the resolver's temporary failure apart, and a refused connection,
/// [`TierError::Refused`]).
/// Timeouts are [`send_error`]'s, the only caller.
fn request_error(e: &ureq::Error, what: &str, host: &str, secrets: &[&str]) -> TierError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if let ureq::Error::Io(io) = e
        && matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
    {
        let message = match io.kind() {
            UnexpectedEof => "the server closed the connection before answering".to_string(),
            _ => crate::io::io_reason(io),
        };
        let message = format!("{what}: {host}: {}", scrub(&message, secrets));
        return TierError::Transient { message, retry_after: None };
    }
    let msg = match e {
        ureq::Error::Io(io) => tls::reason(io).unwrap_or_else(|| crate::io::io_reason(io)),
        ureq::Error::Rustls(tls) => tls::describe(tls),
        ureq::Error::HostNotFound => "host not found (DNS)".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::BodyExceedsLimit(_) => "the response is too large".into(),
        other => other.to_string(),
    };
    TierError::Failed(format!("{what}: {host}: {}", scrub(&msg, secrets)))
}

/// [`request_error`] for the request `what` (`GET`, `PUT`) sent to `url` by `agent`, as
/// an error status names its request ("GET: HTTP 403"): a refused connection names the
/// host:port that refused it, instead of the system's bare "Connection refused"; a
/// timeout the host:port, which of `agent`'s time limits it hit (connecting, or the whole
/// request) and the setting behind it, instead of a bare "timed out"; a failed DNS lookup
/// the host name, instead of "failed to lookup address information: …".
///
/// Through a proxy (`agent`'s, for `url`), a refused connection is the proxy's, which is
/// named with the variable that set it; any other failure says that the request went
/// through it.
pub fn send_error(
    e: &ureq::Error,
    what: &str,
    url: &str,
    agent: &ureq::Agent,
    secrets: &[&str],
) -> TierError {
    use std::io::ErrorKind::ConnectionRefused;
    let Some(proxy) = proxy_for(agent, url) else { return direct_error(e, what, url, agent, secrets) };
    if let ureq::Error::Io(io) = e
        && io.kind() == ConnectionRefused
    {
        return TierError::Refused(format!(
            "{what}: connection refused by the proxy {} (set by {}; nothing listens there: is the \
             proxy running? NO_PROXY={} sends the cache's requests directly)",
            proxy.address,
            proxy.variable,
            url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
        ));
    }
    if let ureq::Error::ConnectProxyFailed(reason) = e {
        // ureq tunnels every request (CONNECT), and words the proxy's refusal
        // "proxy server responded 407/407".
        let status = reason
            .strip_prefix("proxy server responded ")
            .and_then(|r| r.split('/').next())
            .and_then(|s| s.parse::<u16>().ok());
        let why = match status {
            Some(407) if proxy.credentials => format!(
                "HTTP 407 Proxy Authentication Required (the proxy refused the credentials in its URL: check the \
                 user and password in {})",
                proxy.variable
            ),
            Some(407) => "HTTP 407 Proxy Authentication Required (the proxy wants credentials: give them in \
                          its URL, http://user:password@host:port)"
                .to_string(),
            Some(status) => format!("HTTP {status}"),
            None => reason.clone(),
        };
        return TierError::Failed(format!(
            "{what}: the proxy {} (set by {}) did not connect to {}: {why}",
            proxy.address,
            proxy.variable,
            host_port(url)
        ));
    }
    let through = format!("; through the proxy {} (set by {})", proxy.address, proxy.variable);
    match direct_error(e, what, url, agent, secrets) {
        TierError::Timeout(m) => TierError::Timeout(m + &through),
        TierError::Failed(m) => TierError::Failed(m + &through),
        TierError::Refused(m) => TierError::Refused(m + &through),
        TierError::Busy(m) => TierError::Busy(m + &through),
        TierError::TooLarge(m) => TierError::TooLarge(m + &through),
        TierError::Denied(m) => TierError::Denied(m + &through),
        TierError::Transient { message, retry_after } => {
            TierError::Transient { message: message + &through, retry_after }
        }
    }
}

/// `NO_PROXY` (else `no_proxy`), as the environment gives it.
fn no_proxy_variable() -> String {
    ["NO_PROXY", "no_proxy"].iter().find_map(|v| std::env::var(v).ok()).unwrap_or_default()
}

/// Whether the `NO_PROXY` list `list` names `host` (a host name, or an IP address, a v6 one
/// in brackets or not), as curl, Python's requests and Go read it: comma-separated entries,
/// spaces around them ignored (`localhost, 127.0.0.1`, a trailing space); `*` for every host;
/// a domain (`internal.test`, `.internal.test`, `*.internal.test`) for itself and the hosts
/// under it; an IP address, or a network in CIDR notation (`127.0.0.0/8`, `fd00::/8`); a
/// `:PORT` after an entry is ignored. (ureq splits on commas alone, so an entry after a
/// space never matched, and it knows neither networks nor bare domains.) Also an entry
/// ending in `*` or `.` as a prefix, as ureq takes it.
pub fn no_proxy_lists(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        let entry = entry.to_ascii_lowercase();
        if entry == "*" {
            return true;
        }
        if let Some((net, bits)) = entry.split_once('/') {
            return match (
                ip,
                net.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>(),
                bits.parse::<u32>(),
            ) {
                (Some(ip), Ok(net), Ok(bits)) => in_network(ip, net, bits),
                _ => false,
            };
        }
        // `[::1]:8080`, `host:8080`: the port aside (an IPv6 address alone has colons too).
        let entry = match entry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None if entry.matches(':').count() == 1 => {
                entry.split(':').next().unwrap_or_default().to_string()
            }
            None => entry,
        };
        if let (Some(ip), Ok(e)) = (ip, entry.parse::<std::net::IpAddr>()) {
            return ip == e;
        }
        if entry.len() > 1 && (entry.ends_with('*') || (entry.ends_with('.') && !entry.starts_with('.'))) {
            return host.starts_with(entry.trim_end_matches('*'));
        }
        let domain = entry.trim_start_matches('*').trim_start_matches('.');
        !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
    })
}

/// Whether `ip` is in the network `net`/`bits` (of the same family).
fn in_network(ip: std::net::IpAddr, net: std::net::IpAddr, bits: u32) -> bool {
    use std::net::IpAddr::{V4, V6};
    let (ip, net, width) = match (ip, net) {
        (V4(a), V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (V6(a), V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift >= 128 || (ip >> shift) == (net >> shift)
}

/// A proxy that requests go through: `HOST:PORT` and the environment variable that set it.
#[derive(Debug, PartialEq)]
pub struct Proxy {
    pub address: String,
    pub variable: &'static str,
    /// Its URL carries credentials (sent as `Proxy-Authorization`).
    pub credentials: bool,
}

/// The proxy `agent` sends requests for `url` through (ureq reads it from the environment:
/// the first of these variables holding a proxy URL, unless `NO_PROXY` names the host),
/// or `None` for a direct connection.
pub fn proxy_for(agent: &ureq::Agent, url: &str) -> Option<Proxy> {
    let proxy = agent.config().proxy()?;
    let uri: ureq::http::Uri = url.parse().ok()?;
    if proxy.is_no_proxy(&uri) {
        return None;
    }
    let variable = PROXY_VARIABLES
        .iter()
        .copied()
        .find(|v| std::env::var(v).is_ok_and(|value| ureq::Proxy::new(&value).is_ok()))
        .unwrap_or("the environment");
    Some(Proxy {
        address: format!("{}:{}", proxy.host(), proxy.port()),
        variable,
        credentials: proxy.username().is_some(),
    })
}

/// What `-v` says of a remote whose requests (for `url`) go through a proxy.
pub fn proxy_note(agent: &ureq::Agent, url: &str) -> Option<String> {
    let socks = agent.config().proxy().is_some_and(is_socks);
    proxy_for(agent, url).map(|p| {
        if socks {
            format!("the proxy {} (set by {}) is a SOCKS proxy: {SOCKS_REFUSED}", p.address, p.variable)
        } else {
            format!("requests are sent through the proxy {} (set by {})", p.address, p.variable)
        }
    })
}

/// Why no request is sent when the environment's proxy is a SOCKS one.
const SOCKS_REFUSED: &str = "hashpyc speaks to HTTP and HTTPS proxies only, and sends no request past it \
     (give an http:// proxy in HTTPS_PROXY, or the host in NO_PROXY to connect directly)";

fn is_socks(p: &ureq::Proxy) -> bool {
    !matches!(p.protocol(), ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https)
}

/// The variables ureq takes a proxy from, in its order.
const PROXY_VARIABLES: &[&str] =
    &["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// [`send_error`] for a request sent directly (or whose proxy is told apart by the caller).
fn direct_error(e: &ureq::Error, what: &str, url: &str, agent: &ureq::Agent, secrets: &[&str]) -> TierError {
    use std::io::ErrorKind::{ConnectionRefused, TimedOut, WouldBlock};
    match e {
        ureq::Error::Io(io) if io.kind() == ConnectionRefused => TierError::Refused(format!(
            "{what}: connection refused by {} (nothing listens there: is the server running, and is the port right?)",
            host_port(url)
        )),
        ureq::Error::Io(io) if let Some(dns) = io.get_ref().and_then(|e| e.downcast_ref::<Unresolved>()) => {
            let message = format!("{what}: {dns}");
            if dns.temporary() {
                TierError::Transient { message, retry_after: None }
            } else {
                TierError::Failed(message)
            }
        }
        ureq::Error::Timeout(kind) => timed_out(what, url, agent, Some(*kind)),
        ureq::Error::Io(io) if matches!(io.kind(), TimedOut | WouldBlock) => {
            timed_out(what, url, agent, None)
        }
        _ => request_error(e, what, &host_port(url), secrets),
    }
}

/// A timeout of `what` sent to `url`: connecting when ureq says so (`kind`), else the
/// whole request, with the limit `agent` had for it and the setting that sets it.
fn timed_out(what: &str, url: &str, agent: &ureq::Agent, kind: Option<ureq::Timeout>) -> TierError {
    let limits = agent.config().timeouts();
    let secs = |d: Option<Duration>| d.map_or(String::new(), |d| format!(" within {} s", d.as_secs_f64()));
    let to = host_port(url);
    TierError::Timeout(match kind {
        Some(ureq::Timeout::Connect) if limits.connect.is_some_and(|c| c >= CONNECT_MAX) => format!(
            "{what}: timed out connecting to {to} (no connection{}, the longest a connection is \
             waited for: the attempt and the system's resends went unanswered; is the host up, and \
             does nothing drop connections to the port?)",
            secs(limits.connect)
        ),
        Some(ureq::Timeout::Connect) => format!(
            "{what}: timed out connecting to {to} (no connection{}; the connect limit is {}, at most {} s)",
            secs(limits.connect),
            limit_of(what),
            CONNECT_MAX.as_secs_f64()
        ),
        Some(ureq::Timeout::Resolve) => format!("{what}: timed out resolving the host of {to}"),
        _ => format!(
            "{what}: timed out waiting for {to} (no complete answer{}; the limit is {})",
            secs(limits.global),
            limit_of(what)
        ),
    })
}

/// The setting behind the time limits of the request `what`.
fn limit_of(what: &str) -> &'static str {
    if what == "PUT" {
        "5× HASHPYC_CACHE_TIMEOUT for uploads, at least 10 s"
    } else {
        "HASHPYC_CACHE_TIMEOUT"
    }
}

/// `HOST:PORT` of `url`, the scheme's port when it names none; never its user info, path
/// or query string.
fn host_port(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => redact_url(url),
        },
        Err(_) => redact_url(url),
    }
}

/// `msg` with every secret replaced by `***`.
pub fn scrub(msg: &str, secrets: &[&str]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, "***");
    }
    out
}

/// `value`, the URL variable `var` holds, parsed; one without a scheme (`127.0.0.1:9000`,
/// which the url crate calls a relative URL, or `localhost:9000`, which it reads as scheme
/// `localhost`) is refused saying so and what to write instead.
pub(crate) fn parse_url(var: &str, value: &str) -> Result<url::Url, String> {
    let shown = redact_url(value);
    if !value.contains("://") {
        return Err(format!("invalid {var} `{shown}`: no scheme: write http://{shown} or https://{shown}"));
    }
    url::Url::parse(value).map_err(|e| format!("invalid {var} `{shown}`: {e}"))
}

/// A URL for messages: its user info (`user:password@`) and query string removed. A
/// password holding `/`, `?` or `#` unescaped (a generated secret) ends the authority
/// early for a URL parser, so any `@` in the URL is taken as the end of user info: a path
/// holding one is shown from after it, never a secret.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = match rest.rfind('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match host.rfind('@') {
        Some(i) => &host[i + 1..],
        None => host,
    };
    if scheme.is_empty() { format!("{host}{path}") } else { format!("{scheme}://{host}{path}") }
}

/// `HTTP 302, a redirect to URL (redirects are not followed: give the address it redirects
/// to INSTEAD)` when `resp` is a redirect (its target without its query string: a presigned
/// URL's signature), else None.
pub(crate) fn redirect<B>(resp: &ureq::http::Response<B>, instead: &str) -> Option<String> {
    let status = resp.status().as_u16();
    matches!(status, 301 | 302 | 303 | 307 | 308).then(|| {
        let to = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(redact_url);
        format!(
            "HTTP {status}, a redirect{} (redirects are not followed: give the address it redirects to {instead})",
            to.map(|to| format!(" to {to}")).unwrap_or_default()
        )
    })
}

/// What an HTTP error status means for a cache request (`resp`'s, whose `Retry-After` is
/// read, and whose body is read for an S3 error code); `credentials`: where the credentials
/// came from, for 401 and 403 ("check the credentials, from …"). 500, 502, 503, 504 and 429
/// are transient, as for the AWS SDKs.
fn status_error(resp: ureq::http::Response<ureq::Body>, what: &str, credentials: Option<&str>) -> TierError {
    let status = resp.status().as_u16();
    if is_transient(status) {
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok());
        let retry_after = retry::retry_after(retry_after);
        drain(resp);
        return TierError::Transient { message: format!("{what}: HTTP {status}"), retry_after };
    }
    if let Some(why) = redirect(&resp, "as the cache URL, or as AWS_ENDPOINT_URL for S3") {
        drain(resp);
        return TierError::Failed(format!("{what}: {why}"));
    }
    let body = drain(resp);
    let code = s3_code(&body);
    // A plain request to a port that speaks TLS, as nginx and Go's servers (rclone, SeaweedFS)
    // answer it: the mistake the other way round is named by the TLS error.
    let plain_to_tls = status == 400
        && [&b"plain HTTP request was sent to HTTPS port"[..], b"HTTP request to an HTTPS server"]
            .iter()
            .any(|says| memchr::memmem::find(&body, says).is_some());
    let hint = match (status, credentials, code.as_deref()) {
        _ if plain_to_tls => " (the server speaks TLS on this port: an https:// URL?)".to_string(),
        (404, _, Some("NoSuchBucket")) => " (the bucket does not exist)".to_string(),
        // rclone's answer (gofakes3) to an unsigned request when it checks signatures.
        (400, Some(aws::UNSIGNED), Some("UnsupportedAlgorithm")) => {
            format!(" ({WANTS_SIGNED}: {GIVE_CREDENTIALS})")
        }
        // Unsigned (S3 without credentials): not wrong ones, but none.
        (401 | 403, Some(aws::UNSIGNED), _) => format!(
            " (the server refuses unsigned requests, and no credentials were found to sign them: \
             {GIVE_CREDENTIALS}{})",
            if what == "PUT" { "; a job that may only read wants --cache-read-only" } else { "" }
        ),
        (401 | 403, None, _) => " (check the credentials)".to_string(),
        (401 | 403, Some(from), _) => format!(" (check the credentials: {from})"),
        (404, _, _) => " (no such bucket or path?)".into(),
        (507, _, _) => " (the server is full)".into(),
        _ => String::new(),
    };
    let too_large = status == 413 || code.as_deref() == Some("EntityTooLarge");
    let code = code.map(|c| format!(" {c}")).unwrap_or_default();
    if too_large {
        return TierError::TooLarge(format!("{what}: HTTP {status}{code}"));
    }
    if matches!(status, 401 | 403) {
        return TierError::Denied(format!("{what}: HTTP {status}{code}{hint}"));
    }
    TierError::Failed(format!("{what}: HTTP {status}{code}{hint}"))
}

/// What an S3 server that wants signed requests answering an unsigned one with HTTP 400 is
/// told (before [`GIVE_CREDENTIALS`]).
const WANTS_SIGNED: &str = "the server wants signed requests, and no credentials were found to sign them";

/// Where an S3 tier's credentials come from, for the hints to unsigned requests refused.
const GIVE_CREDENTIALS: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile \
in ~/.aws/credentials or ~/.aws/config, or AWS_CONTAINER_CREDENTIALS_FULL_URI for container credentials \
(the README's AWS credentials)";

/// The `<Code>` of an S3 error reply (`NoSuchBucket`, `SignatureDoesNotMatch`,
/// `InvalidAccessKeyId`…), which says more than its status; nothing else of the reply is
/// shown (a SignatureDoesNotMatch reply holds the request it expected).
fn s3_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body.get(..4096).unwrap_or(body)).ok()?;
    let (_, rest) = text.split_once("<Code>")?;
    let (code, _) = rest.split_once("</Code>")?;
    let plain =
        !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    plain.then(|| code.to_string())
}

/// Whether an HTTP status is worth the same request again.
pub fn is_transient(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Read a PUT response: `len` (the bytes stored) for 2xx, an error otherwise.
pub(super) fn read_put(
    resp: ureq::http::Response<ureq::Body>,
    len: usize,
    credentials: Option<&str>,
) -> Result<u64, TierError> {
    match resp.status().as_u16() {
        200..=299 => {
            drain(resp);
            Ok(len as u64)
        }
        _ => Err(status_error(resp, "PUT", credentials)),
    }
}

/// Read a GET response to `url`, sent by `agent`: the body for 200, `None` for 404/410,
/// an error otherwise.
fn read_get(
    resp: ureq::http::Response<ureq::Body>,
    (url, agent): (&str, &ureq::Agent),
    secrets: &[&str],
    credentials: Option<&str>,
) -> Result<Option<Vec<u8>>, TierError> {
    match resp.status().as_u16() {
        200 => {
            let declared = resp.body().content_length();
            if let Some(n) = declared.filter(|n| *n > MAX_ENTRY) {
                return Err(TierError::Failed(format!(
                    "GET: {}: reading an entry: the response is too large (Content-Length {n}, more than the {} an \
                     entry may be; not read)",
                    host_port(url),
                    super::manage::human_size(MAX_ENTRY)
                )));
            }
            // Not retried: the server answered (a truncated entry is a broken reply).
            let host = host_port(url);
            read_entry(resp.into_body(), declared).map(Some).map_err(|e| match e {
                Unread::TooLarge(why) => TierError::Failed(format!(
                    "GET: {host}: reading an entry: the response is too large ({why})"
                )),
                // No room now: a miss, not the server's fault.
                Unread::Busy => TierError::Busy(format!(
                    "GET: {host}: reading an entry: the lookups in flight already hold {} of bodies",
                    super::manage::human_size(MAX_READING)
                )),
                Unread::Http(e) => match (&e, send_error(&e, "GET", url, agent, secrets)) {
                    (ureq::Error::Io(io), _) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                        TierError::Failed(format!(
                            "GET: {host}: reading an entry: the server closed the connection before its end"
                        ))
                    }
                    (_, TierError::Failed(m) | TierError::Transient { message: m, .. }) => {
                        let m = m.strip_prefix(&format!("GET: {host}: ")).unwrap_or(&m);
                        TierError::Failed(format!("GET: {host}: reading an entry: {m}"))
                    }
                    (_, t) => t,
                },
            })
        }
        // A missing entry, unless the bucket itself is missing: a mistyped bucket must not
        // pass for an empty cache (a read-only build would only ever miss, silently).
        404 | 410 => match s3_code(&drain(resp)) {
            Some(code) if code == "NoSuchBucket" => {
                Err(TierError::Failed(format!("GET: HTTP 404 {code} (the bucket does not exist)")))
            }
            _ => Ok(None),
        },
        _ => Err(status_error(resp, "GET", credentials)),
    }
}

/// Why an entry's body was not read whole.
enum Unread {
    Http(ureq::Error),
    /// More than [`MAX_ENTRY`].
    TooLarge(String),
    /// The bodies being read already hold [`MAX_READING`].
    Busy,
}

/// Bytes of [`READING`] held by one body being read (or payload being decoded), given
/// back when it is done.
#[derive(Default)]
pub struct Held(u64);

#[cfg(test)]
thread_local! {
    /// Tests: this thread's decoding finds the budget used up, as when decompression
    /// bombs in flight hold it (without holding it from the other tests' threads).
    pub static FULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Held {
    /// Hold `n` more bytes, unless the bodies being read would then pass [`MAX_READING`].
    pub fn grow(&mut self, n: u64) -> bool {
        #[cfg(test)]
        if FULL.get() {
            return false;
        }
        use std::sync::atomic::Ordering::SeqCst;
        let grown = READING.fetch_update(SeqCst, SeqCst, |all| (all + n <= MAX_READING).then_some(all + n));
        self.0 += if grown.is_ok() { n } else { 0 };
        grown.is_ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        READING.fetch_sub(self.0, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Read an entry's body (`declared`: its `Content-Length`), bounded: at most
/// [`MAX_ENTRY`] bytes, and only while the bodies being read hold less than
/// [`MAX_READING`] in all (else [`Unread::Busy`]: not the entry's fault). A body whose first bytes are not the entry magic is not read
/// further: what was read of it is returned, and the entry is found damaged at once.
fn read_entry(body: ureq::Body, declared: Option<u64>) -> Result<Vec<u8>, Unread> {
    use std::io::Read;
    let magic = super::entry::MAGIC;
    let mut reader = body.into_reader();
    let mut data = Vec::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    let mut held = Held(0);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(data),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Unread::Http(ureq::Error::from(e))),
        };
        if (data.len() + n) as u64 > MAX_ENTRY {
            return Err(Unread::TooLarge(format!(
                "more than the {} an entry may be",
                super::manage::human_size(MAX_ENTRY)
            )));
        }
        if !held.grow(n as u64) {
            return Err(Unread::Busy);
        }
        data.extend_from_slice(&buf[..n]);
        let head = data.len().min(magic.len());
        if data[..head] != magic[..head] {
            return Ok(data);
        }
    }
}

/// Read what is left of a response body (an error page), so that its connection can be
/// reused for the next request; what was read (up to 1 MiB).
pub(super) fn drain(resp: ureq::http::Response<ureq::Body>) -> Vec<u8> {
    resp.into_body().with_config().limit(1 << 20).read_to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NO_PROXY as curl, Python's requests and Go read it (the cases ureq missed: spaces,
    /// networks, bare domains), and what none of them bypass.
    #[test]
    fn no_proxy_lists_as_other_clients_read_them() {
        let cases: &[(&str, &str, bool)] = &[
            ("localhost,127.0.0.1", "127.0.0.1", true),
            ("localhost, 127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1 ", "127.0.0.1", true),
            ("127.0.0.0/8", "127.0.0.9", true),
            ("10.0.0.0/8", "127.0.0.1", false),
            ("fd00::/8", "[fd12::1]", true),
            ("::1", "[::1]", true),
            ("internal.test", "cache.internal.test", true),
            ("internal.test", "internal.test", true),
            (".internal.test", "cache.internal.test", true),
            ("*.internal.test", "cache.internal.test", true),
            ("internal.test", "notinternal.test", false),
            ("cache.internal.test:8080", "cache.internal.test", true),
            ("*", "anything.example", true),
            ("10.1.*", "10.1.2.3", true),
            ("", "127.0.0.1", false),
            (" , ", "127.0.0.1", false),
            ("example.com", "example.com.evil.test", false),
            ("127.0.0.0/33", "127.0.0.1", false),
            ("0.0.0.0/0", "192.0.2.1", true),
        ];
        for (list, host, want) in cases {
            assert_eq!(no_proxy_lists(list, host), *want, "NO_PROXY={list:?} host {host}");
        }
    }

    #[test]
    fn urls_lose_their_credentials_in_messages() {
        assert_eq!(
            redact_url("http://user:secret@cache.example:8080/pre/fix?x=1"),
            "http://cache.example:8080/pre/fix"
        );
        assert_eq!(redact_url("https://cache.example"), "https://cache.example");
        // Unescaped `/`, `?`, `#` in a password: still never shown.
        for url in [
            "http://ci:pa/ss@127.0.0.1:9/c",
            "http://ci:pa?ss@127.0.0.1:9/c",
            "http://ci:pa#ss@127.0.0.1:9/c",
        ] {
            assert_eq!(redact_url(url), "http://127.0.0.1:9/c", "{url}");
        }
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
        assert_eq!(scrub("bad token abc123 here", &["abc123", ""]), "bad token *** here");
    }

    fn reset_io() -> std::io::Error {
        std::io::ErrorKind::ConnectionReset.into()
    }

    #[test]
    fn refused_connections_name_the_request_and_address() {
        let refused = ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let agent = agent(DEFAULT_TIMEOUT, 1, None);
        let said = |url: &str| send_error(&refused, "PUT", url, &agent, &[]).to_string();
        assert!(
            said("http://u:hunter2@127.0.0.1:9/c/v1/ab?sig=x")
                .starts_with("PUT: connection refused by 127.0.0.1:9 (")
        );
        assert!(
            said("https://127.0.0.1/c").contains(" by 127.0.0.1:443 "),
            "{}",
            said("https://127.0.0.1/c")
        );
        assert!(said("http://[::1]:8/c").contains(" by [::1]:8 "), "{}", said("http://[::1]:8/c"));
        assert!(!said("http://u:hunter2@127.0.0.1:9/c").contains("hunter2"));
        let reset = ureq::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        let message = format!("GET: 127.0.0.1:9: {}", crate::io::io_reason(&reset_io()));
        assert_eq!(
            send_error(&reset, "GET", "http://127.0.0.1:9", &agent, &[]),
            TierError::Transient { message, retry_after: None }
        );
    }

    #[test]
    fn timeouts_name_the_request_address_and_limit() {
        let lookups = agent(Duration::from_millis(2500), 1, None);
        let uploads = agent(upload_timeout(Duration::from_millis(2500)), 1, None);
        let url = "http://u:hunter2@127.0.0.1:9/c/v1/ab?sig=x";
        let said =
            |e: ureq::Error, what: &str, agent: &ureq::Agent| match send_error(&e, what, url, agent, &[]) {
                TierError::Timeout(m) => m,
                other => panic!("not a timeout: {other:?}"),
            };
        assert_eq!(
            said(ureq::Error::Timeout(ureq::Timeout::Connect), "GET", &lookups),
            "GET: timed out connecting to 127.0.0.1:9 (no connection within 2.5 s; the connect limit \
             is HASHPYC_CACHE_TIMEOUT, at most 3.5 s)"
        );
        assert_eq!(
            said(ureq::Error::Timeout(ureq::Timeout::Connect), "PUT", &uploads),
            "PUT: timed out connecting to 127.0.0.1:9 (no connection within 3.5 s, the longest a \
             connection is waited for: the attempt and the system's resends went unanswered; is the \
             host up, and does nothing drop connections to the port?)"
        );
        assert_eq!(
            said(ureq::Error::Timeout(ureq::Timeout::Global), "GET", &lookups),
            "GET: timed out waiting for 127.0.0.1:9 (no complete answer within 2.5 s; the limit is \
             HASHPYC_CACHE_TIMEOUT)"
        );
        assert_eq!(
            said(ureq::Error::Timeout(ureq::Timeout::RecvResponse), "PUT", &uploads),
            "PUT: timed out waiting for 127.0.0.1:9 (no complete answer within 12.5 s; the limit is \
             5× HASHPYC_CACHE_TIMEOUT for uploads, at least 10 s)"
        );
        let io = said(ureq::Error::Io(std::io::ErrorKind::TimedOut.into()), "GET", &lookups);
        assert!(io.starts_with("GET: timed out waiting for 127.0.0.1:9 ("), "{io}");
    }

    /// Without a lookup: what std's getaddrinfo wrapper returns for a name that does not
    /// resolve, as the resolver hands it on (no test resolves a name: no DNS traffic).
    #[test]
    fn dns_failures_name_the_request_and_host() {
        let agent = agent(DEFAULT_TIMEOUT, 1, None);
        let url = "http://u:hunter2@nohost.invalid:9/c/v1/ab?sig=x";
        let uri: ureq::http::Uri = url.parse().unwrap();
        let said = |e: ureq::Error, what: &str| send_error(&unresolved(e, &uri), what, url, &agent, &[]);
        let lookup = |reason: &str| {
            ureq::Error::Io(std::io::Error::other(format!("failed to lookup address information: {reason}")))
        };
        assert_eq!(
            said(lookup("Name or service not known"), "GET"),
            TierError::Failed("GET: cannot resolve host nohost.invalid (Name or service not known)".into())
        );
        // The resolver's "try again later" is retried like a reset connection.
        assert_eq!(
            said(lookup("Temporary failure in name resolution"), "PUT"),
            TierError::Transient {
                message: "PUT: cannot resolve host nohost.invalid (Temporary failure in name resolution)"
                    .into(),
                retry_after: None
            }
        );
        assert_eq!(
            said(ureq::Error::HostNotFound, "GET"),
            TierError::Failed("GET: cannot resolve host nohost.invalid (no address)".into())
        );
        let v6: ureq::http::Uri = "http://[::1]:9/c".parse().unwrap();
        let e = send_error(&unresolved(ureq::Error::HostNotFound, &v6), "GET", url, &agent, &[]);
        assert_eq!(e, TierError::Failed("GET: cannot resolve host [::1] (no address)".into()));
        // A lookup that timed out is a timeout, named as one.
        let slow = said(ureq::Error::Timeout(ureq::Timeout::Global), "GET");
        assert!(
            matches!(&slow, TierError::Timeout(m) if m.starts_with("GET: timed out waiting for nohost.invalid:9 (")),
            "{slow:?}"
        );
    }

    #[test]
    fn transient_failures_are_told_apart() {
        assert!([429, 500, 502, 503, 504].into_iter().all(is_transient));
        assert!(![400, 401, 403, 404, 413, 501, 505, 507].into_iter().any(is_transient));
        let agent = agent(DEFAULT_TIMEOUT, 1, None);
        let io = |kind: std::io::ErrorKind| {
            send_error(&ureq::Error::Io(kind.into()), "GET", "http://127.0.0.1:9", &agent, &[])
        };
        use std::io::ErrorKind::*;
        for kind in [ConnectionReset, ConnectionAborted, BrokenPipe, UnexpectedEof] {
            assert!(matches!(io(kind), TierError::Transient { retry_after: None, .. }), "{kind:?}");
        }
        assert!(matches!(io(ConnectionRefused), TierError::Refused(_)));
        for kind in [PermissionDenied, InvalidData] {
            assert!(matches!(io(kind), TierError::Failed(_)), "{kind:?}");
        }
        assert!(matches!(io(TimedOut), TierError::Timeout(_)));
        assert!(matches!(request_error(&ureq::Error::HostNotFound, "GET", "h:1", &[]), TierError::Failed(_)));
        assert!(matches!(
            request_error(&ureq::Error::ConnectionFailed, "GET", "h:1", &[]),
            TierError::Failed(_)
        ));
    }

    #[test]
    fn s3_error_codes_are_read_and_nothing_else() {
        let reply = |code: &str| {
            format!("<?xml version=\"1.0\"?>\n<Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        assert_eq!(s3_code(reply("NoSuchBucket").as_bytes()).as_deref(), Some("NoSuchBucket"));
        assert_eq!(s3_code(b"<html><body>404 Not Found</body></html>"), None);
        for odd in ["", "a b", "<x>", &"A".repeat(65)] {
            assert_eq!(s3_code(reply(odd).as_bytes()), None, "{odd:?}");
        }
    }

    /// (S3 URLs: remote::a_cache_url_is_trimmed_for_every_scheme, which keeps the
    /// environment's AWS settings out.)
    #[test]
    fn surrounding_whitespace_is_trimmed() {
        for url in [" http://127.0.0.1:9/prefix", "http://127.0.0.1:9/prefix\n "] {
            assert_eq!(open(url, DEFAULT_TIMEOUT).expect("opened").describe(), "http://127.0.0.1:9/prefix");
        }
    }

    #[test]
    fn bearer_tokens_are_trimmed_and_control_characters_refused() {
        assert_eq!(bearer_token(Some(" tok\n".into())), Ok(Some("tok".into())));
        assert_eq!(bearer_token(Some(" \n".into())), Ok(None));
        assert_eq!(bearer_token(None), Ok(None));
        let e = bearer_token(Some("to\nk".into())).expect_err("refused").to_string();
        assert!(e.starts_with("invalid HASHPYC_CACHE_TOKEN: ") && !e.contains("to\nk"), "{e}");
    }

    /// Credentials over plain http to a host that is not this machine's loopback are warned
    /// of, naming the host; https, loopback (127.0.0.0/8, ::1, localhost) and requests
    /// without credentials are not.
    #[test]
    fn credentials_over_plain_http_are_warned_of_off_loopback_only() {
        let warn = |url: &str, sent: Option<&str>| {
            cleartext_warning(&url::Url::parse(url).expect("a URL"), sent, url, "give an https:// URL")
        };
        let token = Some("the bearer token of HASHPYC_CACHE_TOKEN is sent");
        for url in [
            "http://192.0.2.1:9/c",
            "http://cache.example/c",
            "HTTP://10.0.0.5/c",
            "http://[2001:db8::1]:8080/c",
            "http://localhost.example/c",
            "http://128.0.0.1/c",
        ] {
            let w = warn(url, token).unwrap_or_else(|| panic!("{url}: no warning"));
            let host = url::Url::parse(url).unwrap().host().unwrap().to_string();
            assert!(
                w.contains(&format!("over plain http to {host}:"))
                    && w.contains("unencrypted")
                    && w.contains("replace the cache's entries")
                    && w.ends_with("give an https:// URL"),
                "{url}: {w}"
            );
            assert_eq!(warn(url, None), None, "{url}: no credential, nothing to say");
        }
        for url in [
            "http://127.0.0.1:9/c",
            "http://127.255.0.7/c",
            "http://[::1]:9/c",
            "http://[::ffff:127.0.0.1]/c",
            "http://localhost:8080/c",
            "http://LocalHost./c",
            "https://192.0.2.1/c",
            "https://cache.example/c",
        ] {
            assert_eq!(warn(url, token), None, "{url}");
        }
        // What the tier decides from its URL and the token: the URL's password, or the
        // token, to another host; neither, nothing.
        let tier = |url: &str, token: Option<&str>| {
            http::HttpTier::new(url, token.map(str::to_string), DEFAULT_TIMEOUT).expect("opened").cleartext()
        };
        let w = tier("http://alice:pw@192.0.2.1:9/c", None).expect("a warning");
        assert!(w.contains("the user and password of the URL are sent") && !w.contains("pw@"), "{w}");
        let w = tier("http://192.0.2.1:9/c", Some("tok")).expect("a warning");
        assert!(w.contains("the bearer token of HASHPYC_CACHE_TOKEN is sent") && !w.contains("tok "), "{w}");
        assert_eq!(tier("http://192.0.2.1:9/c", None), None);
        assert_eq!(tier("http://alice:pw@127.0.0.1:9/c", Some("tok")), None);
        assert_eq!(tier("https://alice:pw@192.0.2.1:9/c", None), None);
    }

    #[test]
    fn unknown_schemes_are_refused_without_credentials() {
        let err = open("ftp://u:hunter2@host/x", DEFAULT_TIMEOUT).expect_err("refused").to_string();
        assert!(err.contains("ftp://host/x") && !err.contains("hunter2"), "{err}");
    }
}
