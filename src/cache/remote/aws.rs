//! Credentials and region for the `s3://` tier, found where the AWS SDKs (boto3's botocore
//! among them) look for them, in their order:
//!
//! 1. `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
//! 2. The profile named by `AWS_PROFILE` (else `default`): `aws_access_key_id`,
//!    `aws_secret_access_key` and `aws_session_token` in the shared credentials file
//!    (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`; sections `[NAME]`), then
//!    in the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`; sections `[profile NAME]`
//!    and `[default]`).
//! 3. Container credentials: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (a path on
//!    `http://169.254.170.2`) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, sent
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`'s content or `AWS_CONTAINER_AUTHORIZATION_TOKEN`
//!    as `Authorization`; fetched at the first request, again shortly before they expire
//!    (at most every 30 s while they are still valid, which a failed refresh leaves in use);
//!    a transient failure (HTTP 5xx or 429, a reset connection) is retried as a lookup is
//!    (`retry`), by one fetch that the requests needing the credentials wait for.
//! 4. None: unsigned requests (anonymous reads of a public bucket).
//!
//! What the SDKs would use but hashpyc cannot — web identity through STS, SSO, an assumed
//! role, `credential_process`, and instance metadata (IMDS) — is an error naming it where
//! it is configured (never unsigned requests in its place); instance metadata is not
//! configured anywhere, so on EC2 without other credentials requests go out unsigned.
//! Bad input is found before any request: half a key pair, a profile named but missing
//! (boto3's `ProfileNotFound`, even when the environment holds credentials), a file that
//! cannot be parsed (read as Python's `configparser` reads them: keys are lower-cased, a
//! setting before any section and a repeated section or key are errors).
//!
//! The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, `us-east-1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusty_s3::Credentials;

use super::super::tier::TierError;
use super::{redact_url, send_error};

/// A variable of the environment (an empty one reads as unset).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

const ID: &str = "AWS_ACCESS_KEY_ID";
const SECRET: &str = "AWS_SECRET_ACCESS_KEY";
const TOKEN: &str = "AWS_SESSION_TOKEN";
const RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
const FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
const AUTH_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
const AUTH_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// Where `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` points (Amazon ECS).
const ECS_HOST: &str = "169.254.170.2";
/// Hosts an `http://` `AWS_CONTAINER_CREDENTIALS_FULL_URI` may name besides loopback
/// addresses (ECS, EKS Pod Identity), as botocore allows.
const CONTAINER_HOSTS: [&str; 4] = [ECS_HOST, "169.254.170.23", "fd00:ec2::23", "localhost"];
/// Container credentials are fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// While the credentials held are still valid, a refresh is tried at most this often
/// (an endpoint whose credentials always expire within [`REFRESH_BEFORE`] would otherwise
/// be asked before every request).
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// [`Source::Anonymous`] in messages: what an S3 tier without credentials passes as their source.
pub const UNSIGNED: &str = "none were found, so the requests were unsigned";

/// Where the credentials came from, for messages ("check the credentials, …").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Environment,
    Profile { name: String, file: PathBuf },
    Container { url: String },
    Anonymous,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment => write!(f, "from {ID} and {SECRET} in the environment"),
            Source::Profile { name, file } => {
                write!(f, "from profile `{name}` in {}", crate::report::ticked(file))
            }
            Source::Container { url } => write!(f, "from the container credentials endpoint `{url}`"),
            Source::Anonymous => f.write_str(UNSIGNED),
        }
    }
}

/// The credentials requests are signed with.
pub enum Provider {
    /// Known from the start (None: unsigned requests).
    Static(Option<Arc<Credentials>>),
    Container(Box<Container>),
}

impl Provider {
    /// The credentials to sign the next request with.
    pub fn get(&self) -> Result<Option<Arc<Credentials>>, TierError> {
        match self {
            Provider::Static(c) => Ok(c.clone()),
            Provider::Container(c) => c.get().map(Some),
        }
    }

    /// What `-v` says of the credentials (refreshes that failed while they were valid).
    pub fn notes(&self) -> Vec<String> {
        match self {
            Provider::Static(_) => Vec::new(),
            Provider::Container(c) => c.notes(),
        }
    }

    /// Credential fetches retried in this run.
    pub fn retries(&self) -> u64 {
        match self {
            Provider::Static(_) => 0,
            Provider::Container(c) => c.retries.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Where the region came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionFrom {
    Variable(&'static str),
    Profile { name: String, file: PathBuf },
    Default,
}

/// What `resolve` found.
pub struct Resolved {
    pub provider: Provider,
    pub source: Source,
    pub region: String,
    pub region_from: RegionFrom,
    /// What must never appear in a message (a container authorization token).
    pub secrets: Vec<String>,
    /// The endpoint, and where it is set, for its errors: `AWS_ENDPOINT_URL_S3`, else
    /// `AWS_ENDPOINT_URL`, else the profile's `endpoint_url` (a MinIO or R2 profile, as boto3
    /// and the AWS CLI read it); none under `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
    pub endpoint: Option<(String, String)>,
}

impl Resolved {
    /// "invalid … `region`: why", naming where the region came from.
    pub fn region_error(&self, why: &str) -> String {
        let region = &self.region;
        match &self.region_from {
            RegionFrom::Variable(var) => format!("invalid {var} `{region}`: {why}"),
            RegionFrom::Profile { name, file } => {
                format!(
                    "invalid region `{region}` of profile `{name}` in {}: {why}",
                    crate::report::ticked(file)
                )
            }
            RegionFrom::Default => format!("invalid region `{region}`: {why}"),
        }
    }
}

/// One shared file's sections: name, then settings with lower-cased keys.
type Sections = HashMap<String, HashMap<String, String>>;

/// A shared file, if it exists.
struct SharedFile {
    path: PathBuf,
    sections: Sections,
}

/// Read and parse the shared file at `path` (`what`: "credentials" or "config"); None
/// when it does not exist, as for the SDKs.
fn read_shared(path: &Path, what: &str) -> Result<Option<SharedFile>, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            format!("cannot parse the AWS {what} file {}: it is not UTF-8", crate::report::ticked(path))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the AWS {what} file {}: {}",
                crate::report::ticked(path),
                crate::io::io_reason(&e)
            ));
        }
    };
    let bad =
        |why: String| format!("cannot parse the AWS {what} file {}: {why}", crate::report::ticked(path));
    // As Python's configparser reads it (botocore's parser): values as written, no quotes
    // or escapes, indented lines continue a value.
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    let parsed = ini::Ini::load_from_str_opt(&text, options).map_err(|e| bad(ini_error(&text, &e)))?;
    let mut sections = Sections::new();
    for (name, settings) in parsed.iter() {
        let Some(name) = name else {
            if settings.is_empty() {
                continue;
            }
            return Err(bad("a setting before the first `[section]`".into()));
        };
        if sections.contains_key(name) {
            return Err(bad(format!("the section `[{name}]` appears twice")));
        }
        let mut values = HashMap::new();
        for (key, value) in settings.iter() {
            let key = key.to_ascii_lowercase();
            if values.insert(key.clone(), value.to_string()).is_some() {
                return Err(bad(format!("`{key}` appears twice in `[{name}]`")));
            }
        }
        sections.insert(name.to_string(), values);
    }
    Ok(Some(SharedFile { path: path.to_path_buf(), sections }))
}

/// `$VAR`, else `~/DEFAULT`, with a leading `~/` expanded (None without a home).
fn shared_path(env: Env, var: &str, default: &str) -> Option<PathBuf> {
    let home = || env("HOME").map(PathBuf::from);
    match env(var) {
        Some(p) => match p.strip_prefix("~/") {
            Some(rest) => home().map(|h| h.join(rest)).or(Some(PathBuf::from(p))),
            None => Some(PathBuf::from(p)),
        },
        None => home().map(|h| h.join(default)),
    }
}

/// A profile's sections in the two files.
struct Profile<'a> {
    credentials: Option<(&'a Path, &'a HashMap<String, String>)>,
    config: Option<(&'a Path, &'a HashMap<String, String>)>,
}

impl Profile<'_> {
    fn exists(&self) -> bool {
        self.credentials.is_some() || self.config.is_some()
    }

    /// The first of `keys` set in the profile, and the file that sets it.
    fn setting(&self, keys: &[&'static str]) -> Option<(&'static str, &Path)> {
        keys.iter().find_map(|k| {
            [self.credentials, self.config]
                .into_iter()
                .flatten()
                .find(|(_, s)| s.get(*k).is_some_and(|v| !v.trim().is_empty()))
                .map(|(p, _)| (*k, p))
        })
    }

    fn region(&self) -> Option<(String, &Path)> {
        self.value("region")
    }

    /// A setting's value, and the file that sets it: the credentials file's settings
    /// override the config file's (botocore).
    fn value(&self, key: &str) -> Option<(String, &Path)> {
        [self.credentials, self.config].into_iter().flatten().find_map(|(p, s)| {
            s.get(key).map(|r| r.trim()).filter(|r| !r.is_empty()).map(|r| (r.to_string(), p))
        })
    }
}

/// The profile `name` in the files: `[NAME]` in the credentials file; `[profile NAME]`
/// (and `[default]` for `default`) in the config file.
fn find_profile<'a>(
    name: &'a str,
    credentials: Option<&'a SharedFile>,
    config: Option<&'a SharedFile>,
) -> Profile<'a> {
    let in_credentials = credentials.and_then(|f| f.sections.get(name).map(|s| (f.path.as_path(), s)));
    let in_config = config.and_then(|f| {
        f.sections
            .iter()
            .find(|(section, _)| {
                let words: Vec<&str> = section.split_whitespace().collect();
                words == ["profile", name] || (name == "default" && section.as_str() == "default")
            })
            .map(|(_, s)| (f.path.as_path(), s))
    });
    Profile { credentials: in_credentials, config: in_config }
}

/// Static credentials in one section (`where_`: for messages), as the environment's: both
/// halves of the key pair and the session token that goes with them, or none of them.
fn section_credentials(
    settings: &HashMap<String, String>,
    where_: &str,
) -> Result<Option<Credentials>, String> {
    let get = |k: &str| settings.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let token = get("aws_session_token").or_else(|| get("aws_security_token"));
    match (get("aws_access_key_id"), get("aws_secret_access_key"), token) {
        (Some(id), Some(secret), None) => Ok(Some(Credentials::new(id, secret))),
        (Some(id), Some(secret), Some(token)) => Ok(Some(Credentials::new_with_token(id, secret, token))),
        (None, None, None) => Ok(None),
        (Some(_), None, _) => Err(format!("{where_} has aws_access_key_id but no aws_secret_access_key")),
        (None, Some(_), _) => Err(format!("{where_} has aws_secret_access_key but no aws_access_key_id")),
        (None, None, Some(_)) => {
            Err(format!("{where_} has aws_session_token but no aws_access_key_id and aws_secret_access_key"))
        }
    }
}

/// The credentials the environment gives, as boto3 reads them: the key pair and its
/// session token, or nothing at all. Any other combination is a mistake to be told, since
/// unsigned requests would go out instead (and a public bucket would answer them).
fn environment_credentials(env: Env) -> Result<Option<Credentials>, String> {
    let partial = |set: &str, missing: &str| {
        Err(format!(
            "{set} is set but {missing} is not (or is empty): an s3:// cache needs both {ID} and {SECRET} to sign its requests, or neither for anonymous ones"
        ))
    };
    match (env(ID), env(SECRET), env(TOKEN)) {
        (Some(key), Some(secret), None) => Ok(Some(Credentials::new(key, secret))),
        (Some(key), Some(secret), Some(token)) => Ok(Some(Credentials::new_with_token(key, secret, token))),
        (Some(_), None, _) => partial(ID, SECRET),
        (None, Some(_), _) => partial(SECRET, ID),
        (None, None, Some(_)) => Err(format!(
            "{TOKEN} is set but {ID} and {SECRET} are not (or are empty): a session token is only used with the key pair it belongs to; set all three, or none for anonymous requests"
        )),
        (None, None, None) => Ok(None),
    }
}

/// What to do instead of a way of getting credentials hashpyc does not support.
fn instead(profile: Option<&str>) -> String {
    let export = match profile {
        Some(p) => format!("eval \"$(aws configure export-credentials --profile {p} --format env)\""),
        None => "eval \"$(aws configure export-credentials --format env)\"".to_string(),
    };
    format!("hashpyc does not support it: export {ID}, {SECRET} and {TOKEN} instead (for example `{export}`)")
}

/// Find the credentials and the region (see the module's documentation). `timeout`: of
/// a container credentials request.
pub fn resolve(env: Env, timeout: Duration) -> Result<Resolved, String> {
    let from_env = environment_credentials(env)?;
    let explicit = env("AWS_PROFILE");
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let region_var = ["AWS_REGION", "AWS_DEFAULT_REGION"].into_iter().find_map(|v| Some((v, env(v)?)));
    // The files are read only when something is looked up in them: the endpoint too, unless
    // a variable gives one.
    let ignore_endpoints =
        env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // The service's own variable first, as the AWS SDKs read them (the value, and the variable
    // for its errors).
    let endpoint_var = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .into_iter()
        .filter(|_| !ignore_endpoints)
        .find_map(|v| Some((env(v)?, v.to_string())));
    let read = |var, default, what| match shared_path(env, var, default) {
        Some(p) => read_shared(&p, what),
        None => Ok(None),
    };
    let for_more = explicit.is_some() || from_env.is_none() || region_var.is_none();
    let credentials_file =
        if for_more { read("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", "credentials")? } else { None };
    let config_file = if for_more || !(endpoint_var.is_some() || ignore_endpoints) {
        read("AWS_CONFIG_FILE", ".aws/config", "config")?
    } else {
        None
    };
    let profile = find_profile(&name, credentials_file.as_ref(), config_file.as_ref());
    if explicit.is_some() && !profile.exists() {
        let files: Vec<String> = [
            shared_path(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            shared_path(env, "AWS_CONFIG_FILE", ".aws/config"),
        ]
        .into_iter()
        .flatten()
        .map(|p| crate::report::ticked(&p).to_string())
        .collect();
        return Err(format!(
            "the AWS profile `{name}` (AWS_PROFILE) does not exist: it is in neither {}",
            if files.is_empty() { "shared file (no HOME)".to_string() } else { files.join(" nor ") }
        ));
    }
    let (region, region_from) = match (region_var, profile.region()) {
        (Some((var, r)), _) => (r, RegionFrom::Variable(var)),
        (None, Some((r, file))) => (r, RegionFrom::Profile { name: name.clone(), file: file.to_path_buf() }),
        (None, None) => ("us-east-1".to_string(), RegionFrom::Default),
    };
    // Per service (`services = NAME` and its `[services NAME]` section) is not read: said,
    // rather than sending the requests to AWS.
    if endpoint_var.is_none()
        && !ignore_endpoints
        && let Some((key, file)) = profile.setting(&["services"])
    {
        return Err(format!(
            "profile `{name}` in {} sets its endpoints with `{key}`, which hashpyc does not read; give \
             the endpoint as `endpoint_url` in the profile, or in AWS_ENDPOINT_URL_S3",
            crate::report::ticked(file)
        ));
    }
    let endpoint = endpoint_var.or_else(|| {
        (!ignore_endpoints).then(|| profile.value("endpoint_url")).flatten().map(|(url, file)| {
            (url, format!("endpoint_url of profile `{name}` in {}", crate::report::ticked(file)))
        })
    });
    let done = |provider, source, secrets| {
        Ok(Resolved { provider, source, region, region_from, secrets, endpoint: endpoint.clone() })
    };
    if let Some(c) = from_env {
        return done(Provider::Static(Some(Arc::new(c))), Source::Environment, Vec::new());
    }
    if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        return Err(format!(
            "AWS_WEB_IDENTITY_TOKEN_FILE is set (web identity credentials from STS), which the AWS SDKs would use; {}",
            instead(explicit.as_deref())
        ));
    }
    let where_ = |file: &Path| format!("profile `{name}` in {}", crate::report::ticked(file));
    let unsupported = |(key, file): (&str, &Path)| {
        Err(format!("{} gets its credentials with `{key}`; {}", where_(file), instead(Some(&name))))
    };
    // An assumed role, SSO and web identity come before the profile's keys; a
    // credential_process before those of the config file only.
    if let Some(found) =
        profile.setting(&["role_arn", "sso_session", "sso_start_url", "web_identity_token_file"])
    {
        return unsupported(found);
    }
    if let Some((file, settings)) = profile.credentials
        && let Some(c) = section_credentials(settings, &where_(file))?
    {
        let source = Source::Profile { name: name.clone(), file: file.to_path_buf() };
        return done(Provider::Static(Some(Arc::new(c))), source, Vec::new());
    }
    if let Some(found) = profile.setting(&["credential_process"]) {
        return unsupported(found);
    }
    if let Some((file, settings)) = profile.config
        && let Some(c) = section_credentials(settings, &where_(file))?
    {
        let source = Source::Profile { name: name.clone(), file: file.to_path_buf() };
        return done(Provider::Static(Some(Arc::new(c))), source, Vec::new());
    }
    if let Some(container) = Container::from_env(env, timeout)? {
        let source = Source::Container { url: redact_url(&container.url) };
        let secrets = match &container.token {
            Some(AuthToken::Value(t)) => vec![t.clone()],
            _ => Vec::new(),
        };
        return done(Provider::Container(Box::new(container)), source, secrets);
    }
    done(Provider::Static(None), Source::Anonymous, Vec::new())
}

/// Whether an `http://` container credentials URL may be asked (`https://` always may).
fn container_host_allowed(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || CONTAINER_HOSTS.contains(&ip.to_string().as_str()),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || CONTAINER_HOSTS.contains(&ip.to_string().as_str()),
        Some(url::Host::Domain(d)) => CONTAINER_HOSTS.contains(&d),
        None => false,
    }
}

enum AuthToken {
    /// Read again at each fetch (EKS rotates it).
    File(PathBuf),
    Value(String),
}

/// `Authorization`'s value: surrounding whitespace (a file's last newline) removed; a line
/// break inside is refused, as the SDKs do.
fn auth_value(raw: &str, what: &str) -> Result<String, String> {
    let token = raw.trim();
    if token.contains(['\r', '\n']) {
        return Err(format!("{what} holds a line break: it is not a valid Authorization header value"));
    }
    Ok(token.to_string())
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let what = format!("{AUTH_TOKEN_FILE} {}", crate::report::ticked(path));
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what}: {}", crate::io::io_reason(&e)))?;
    auth_value(&text, &what)
}

enum Fetched {
    None,
    /// Credentials, when they expire, and when they were fetched or a refresh last tried.
    Valid(Arc<Credentials>, Option<jiff::Timestamp>, std::time::Instant),
    /// The first failure is the run's: the tier is switched off by it.
    Failed(TierError),
}

/// Credentials from a container endpoint.
pub struct Container {
    url: String,
    token: Option<AuthToken>,
    agent: ureq::Agent,
    /// How a failed fetch is retried (as a lookup).
    policy: super::retry::Policy,
    /// Fetches retried in this run.
    retries: std::sync::atomic::AtomicU64,
    fetched: Mutex<Fetched>,
    /// [`REFRESH_EVERY`] (shorter in tests).
    refresh_every: Duration,
    /// Refreshes that failed while the credentials held were still valid (which were then
    /// used on), and the first one's reason, for `-v`.
    kept: Mutex<(u64, Option<String>)>,
}

impl Container {
    fn from_env(env: Env, timeout: Duration) -> Result<Option<Container>, String> {
        let url = if let Some(relative) = env(RELATIVE_URI) {
            format!("http://{ECS_HOST}{relative}")
        } else if let Some(full) = env(FULL_URI) {
            let parsed = super::parse_url(FULL_URI, &full)?;
            match parsed.scheme() {
                "https" => {}
                "http" if container_host_allowed(&parsed) => {}
                "http" => {
                    return Err(format!(
                        "invalid {FULL_URI} `{}`: an http:// URL must name a loopback address or one of {} (an https:// one may name any host)",
                        redact_url(&full),
                        CONTAINER_HOSTS.join(", ")
                    ));
                }
                other => {
                    return Err(format!(
                        "invalid {FULL_URI} `{}`: `{other}` is not http or https",
                        redact_url(&full)
                    ));
                }
            }
            full
        } else {
            return Ok(None);
        };
        let token = if let Some(file) = env(AUTH_TOKEN_FILE) {
            let path = PathBuf::from(file);
            // Read now too: a file that cannot be read is bad input, found before any request.
            read_token_file(&path)?;
            Some(AuthToken::File(path))
        } else if let Some(value) = env(AUTH_TOKEN) {
            Some(AuthToken::Value(auth_value(&value, AUTH_TOKEN)?))
        } else {
            None
        };
        // As the cache's own requests (TLS roots, timeouts), but never through a proxy.
        let agent = super::agent(timeout, 1, None);
        Ok(Some(Container {
            url,
            token,
            agent,
            policy: super::retry::Policy::lookups(timeout),
            retries: std::sync::atomic::AtomicU64::new(0),
            fetched: Mutex::new(Fetched::None),
            refresh_every: REFRESH_EVERY,
            kept: Mutex::new((0, None)),
        }))
    }

    /// The current credentials, fetched when there are none yet or they expire soon: within
    /// [`REFRESH_BEFORE`] of their expiry a refresh is tried, but while they are still valid
    /// at most once per `refresh_every`, and a refresh that fails then leaves them in use
    /// (noted for `-v`). Only a failure with none valid (the first fetch, or expired
    /// credentials) is the tier's error, and remembered for the run.
    fn get(&self) -> Result<Arc<Credentials>, TierError> {
        let mut fetched = self.fetched.lock().expect("credentials lock");
        let now = jiff::Timestamp::now();
        let valid = |expires: &Option<jiff::Timestamp>| expires.is_none_or(|e| now < e);
        match &*fetched {
            Fetched::Valid(c, expires, tried) => {
                let fresh =
                    expires.is_none_or(|e| now.checked_add(REFRESH_BEFORE).is_ok_and(|soon| soon < e));
                if fresh || (valid(expires) && tried.elapsed() < self.refresh_every) {
                    return Ok(Arc::clone(c));
                }
            }
            Fetched::Failed(e) => return Err(e.clone()),
            Fetched::None => {}
        }
        let describe = |e: TierError| {
            TierError::Failed(format!(
                "cannot get credentials from the container credentials endpoint `{}`: {e}",
                redact_url(&self.url)
            ))
        };
        // Retried as a lookup is, under the lock: the requests waiting for credentials wait
        // for one fetch and its retries, not one each.
        let fetched_once = self.policy.run(
            || self.fetch(),
            || true,
            || {
                self.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
        );
        match fetched_once.map_err(describe) {
            Ok((c, expires)) => {
                let c = Arc::new(c);
                *fetched = Fetched::Valid(Arc::clone(&c), expires, std::time::Instant::now());
                Ok(c)
            }
            Err(e) => {
                if let Fetched::Valid(c, expires, _) = &*fetched
                    && valid(expires)
                {
                    let (c, expires) = (Arc::clone(c), *expires);
                    let mut kept = self.kept.lock().expect("credentials lock");
                    kept.0 += 1;
                    kept.1.get_or_insert_with(|| {
                        let until = expires.map_or(String::new(), |e| format!(" (valid until {e})"));
                        format!("refreshing the credentials failed ({e}); those held{until} were used on")
                    });
                    *fetched = Fetched::Valid(Arc::clone(&c), expires, std::time::Instant::now());
                    return Ok(c);
                }
                *fetched = Fetched::Failed(e.clone());
                Err(e)
            }
        }
    }

    /// For `-v`: refreshes that failed while the credentials held were still valid.
    fn notes(&self) -> Vec<String> {
        match &*self.kept.lock().expect("credentials lock") {
            (n, Some(first)) => vec![format!(
                "{first}{}",
                if *n > 1 { format!(" ({n} refreshes failed)") } else { String::new() }
            )],
            _ => Vec::new(),
        }
    }

    fn fetch(&self) -> Result<(Credentials, Option<jiff::Timestamp>), TierError> {
        let token = match &self.token {
            Some(AuthToken::File(path)) => Some(read_token_file(path).map_err(TierError::Failed)?),
            Some(AuthToken::Value(v)) => Some(v.clone()),
            None => None,
        };
        let secrets: Vec<&str> = token.iter().map(String::as_str).collect();
        let mut request = self.agent.get(&self.url).header("Accept", "application/json");
        if let Some(t) = &token {
            request = request.header("Authorization", t);
        }
        let response = request.call().map_err(|e| send_error(&e, "GET", &self.url, &self.agent, &secrets))?;
        let status = response.status().as_u16();
        if let Some(why) = super::redirect(&response, "as AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            return Err(TierError::Failed(why));
        }
        let retry_after =
            super::retry::retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
        let body = response.into_body().with_config().limit(1 << 20).read_to_vec();
        let body = body.map_err(|e| send_error(&e, "GET", &self.url, &self.agent, &secrets))?;
        if super::is_transient(status) {
            return Err(TierError::Transient { message: format!("HTTP {status}"), retry_after });
        }
        if status != 200 {
            return Err(TierError::Failed(format!("HTTP {status}")));
        }
        let reply: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| TierError::Failed("the reply is not JSON".into()))?;
        let field = |name: &str| reply.get(name).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
            return Err(TierError::Failed("the reply has no AccessKeyId and SecretAccessKey".into()));
        };
        let credentials = match field("Token") {
            Some(t) => Credentials::new_with_token(id, secret, t),
            None => Credentials::new(id, secret),
        };
        let expires = match field("Expiration") {
            Some(e) => Some(e.parse::<jiff::Timestamp>().map_err(|_| {
                TierError::Failed(format!("the reply's Expiration `{e}` is not a date and time"))
            })?),
            None => None,
        };
        Ok((credentials, expires))
    }
}

/// Why an AWS ini file does not parse, in words and by the line at fault (never that
/// line's text, which may hold a secret): the parser says `expecting "[Some('='),
/// Some(':')]" but found EOF` and counts the line after the one at fault.
fn ini_error(text: &str, e: &ini::ParseError) -> String {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with(['#', ';']) || line.starts_with([' ', '\t']) {
            continue;
        }
        if t.starts_with('[') {
            if !t.contains(']') {
                return format!("line {}: a `[section]` header without its `]`", i + 1);
            }
            continue;
        }
        if !t.contains(['=', ':']) {
            return format!(
                "line {} is not `name = value` (it has no `=`; its text is not shown: it may hold a secret)",
                i + 1
            );
        }
    }
    format!("near line {}: {}", e.line, e.msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| vars.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Resolved, String> {
        resolve(&env_of(vars), Duration::from_secs(1))
    }

    /// A container credentials endpoint on 127.0.0.1 that answers its `n`th request (from
    /// 0) with `reply(n)`: a status and the expiration of the key `AKn` it gives. Returns
    /// its URL and how many requests it got.
    fn endpoint(
        reply: impl Fn(usize) -> (u16, jiff::Timestamp) + Send + 'static,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/creds", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&seen);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, expires) = reply(n);
                let body = format!(
                    r#"{{"AccessKeyId": "AK{n}", "SecretAccessKey": "s", "Token": "t", "Expiration": "{expires}"}}"#
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, seen)
    }

    fn container(url: &str, refresh_every: Duration) -> Container {
        let vars = [(FULL_URI, url)];
        let env = env_of(&vars);
        let mut c = Container::from_env(&env, Duration::from_secs(2)).unwrap().expect("container");
        c.refresh_every = refresh_every;
        c
    }

    fn in_secs(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::now() + jiff::SignedDuration::from_secs(s)
    }

    #[test]
    fn short_lived_container_credentials_are_not_fetched_for_every_request() {
        // Always within the refresh window: fetched once, then held for refresh_every.
        let (url, seen) = endpoint(|_| (200, in_secs(120)));
        let c = container(&url, REFRESH_EVERY);
        for _ in 0..50 {
            assert_eq!(c.get().unwrap().key(), "AK0");
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
        // With refresh_every spent, each get refreshes (while still in the window).
        let (url, seen) = endpoint(|_| (200, in_secs(120)));
        let c = container(&url, Duration::ZERO);
        let keys: Vec<String> = (0..3).map(|_| c.get().unwrap().key().to_string()).collect();
        assert_eq!(keys, ["AK0", "AK1", "AK2"]);
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(c.notes().is_empty());
    }

    #[test]
    fn a_failed_refresh_keeps_credentials_still_valid() {
        // The first fetch works, every refresh gets HTTP 403 (not retried): the credentials
        // held are used on, one note for -v counting the failures.
        let (url, seen) = endpoint(|n| (if n == 0 { 200 } else { 403 }, in_secs(120)));
        let c = container(&url, Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(c.get().expect("the held credentials").key(), "AK0");
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
        let notes = c.notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("refreshing the credentials failed (cannot get credentials from the container credentials endpoint")
                && notes[0].contains(": HTTP 403); those held (valid until ")
                && notes[0].ends_with(" were used on (2 refreshes failed)"),
            "{notes:?}"
        );
        // Expired credentials and a failing refresh: the tier's error, remembered.
        let (url, seen) = endpoint(|n| (if n == 0 { 200 } else { 403 }, in_secs(-1)));
        let c = container(&url, REFRESH_EVERY);
        assert_eq!(c.get().unwrap().key(), "AK0");
        let e = c.get().expect_err("expired, and the refresh failed").to_string();
        assert!(e.ends_with(": HTTP 403"), "{e}");
        assert!(c.get().is_err());
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2, "the failure is remembered");
        assert!(c.notes().is_empty());
    }

    fn key_id(r: &Resolved) -> Option<String> {
        r.provider.get().unwrap().map(|c| c.key().to_string())
    }

    #[test]
    fn the_environment_comes_first_and_profiles_follow() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = s1\n\n[ci]\nAWS_Access_Key_ID=AKCI\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[default]\nregion = eu-west-3\n[profile cfg]\naws_access_key_id = AKCFG\naws_secret_access_key = s3\nregion = ap-south-1\n[cfg]\nregion = not-a-profile\n",
        )
        .unwrap();
        let r = resolve_with(&[("HOME", h)]).unwrap();
        assert_eq!(key_id(&r).as_deref(), Some("AKDEF"));
        assert_eq!(
            (r.region.as_str(), &r.region_from),
            (
                "eu-west-3",
                &RegionFrom::Profile { name: "default".into(), file: home.path().join(".aws/config") }
            )
        );
        let r =
            resolve_with(&[("HOME", h), ("AWS_PROFILE", "ci"), ("AWS_DEFAULT_REGION", "us-west-2")]).unwrap();
        assert_eq!(key_id(&r).as_deref(), Some("AKCI"));
        assert_eq!(r.provider.get().unwrap().unwrap().token(), Some("t2"));
        assert_eq!(
            (r.region.as_str(), &r.region_from),
            ("us-west-2", &RegionFrom::Variable("AWS_DEFAULT_REGION"))
        );
        let r = resolve_with(&[("HOME", h), ("AWS_PROFILE", "cfg")]).unwrap();
        assert_eq!(key_id(&r).as_deref(), Some("AKCFG"));
        assert_eq!(r.region, "ap-south-1");
        let r = resolve_with(&[("HOME", h), ("AWS_PROFILE", "ci"), (ID, "AKENV"), (SECRET, "s")]).unwrap();
        assert_eq!((key_id(&r).as_deref(), &r.source), (Some("AKENV"), &Source::Environment));
        // Named but missing: an error, even with credentials in the environment.
        for vars in [vec![("AWS_PROFILE", "nope")], vec![("AWS_PROFILE", "nope"), (ID, "A"), (SECRET, "S")]] {
            let mut vars = vars;
            vars.push(("HOME", h));
            let err = resolve_with(&vars).err().unwrap();
            assert!(err.contains("profile `nope`") && err.contains(".aws/credentials"), "{err}");
        }
        // A config file's `[NAME]` is not a profile.
        std::fs::write(home.path().join(".aws/credentials"), "").unwrap();
        assert!(resolve_with(&[("HOME", h), ("AWS_PROFILE", "ci")]).is_err());
        // The implicit default profile may be missing: anonymous.
        std::fs::remove_dir_all(home.path().join(".aws")).unwrap();
        let r = resolve_with(&[("HOME", h)]).unwrap();
        assert_eq!((key_id(&r), &r.source, &r.region_from), (None, &Source::Anonymous, &RegionFrom::Default));
        assert!(resolve_with(&[("HOME", h), ("AWS_PROFILE", "default")]).is_err());
    }

    // The ini parser's own words ("expecting \"[Some('='), Some(':')]\" but found EOF",
    // "near line 3" for a line 2) are not shown, and never the text of a line, which may
    // hold a secret.
    #[test]
    fn parse_errors_name_the_line_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        let f = file.to_str().unwrap();
        for (text, want) in [
            ("[default]\naws_secret_access_key hunter2\n", "line 2 is not `name = value` (it has no `=`"),
            (
                "[default]\naws_access_key_id = A\n# c\n\naws_secret_access_key hunter2",
                "line 5 is not `name = value`",
            ),
            ("[default\naws_access_key_id = A\n", "line 1: a `[section]` header without its `]`"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = resolve_with(&[("AWS_SHARED_CREDENTIALS_FILE", f)]).err().unwrap();
            assert!(
                err.contains(want) && !err.contains("hunter2") && !err.contains("Some("),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn files_that_cannot_be_parsed_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        let f = file.to_str().unwrap();
        for (text, want) in [
            ("aws_access_key_id = A\n[default]\n", "a setting before the first `[section]`"),
            ("[default\naws_access_key_id = A\n", "line"),
            ("[default]\njust-a-key\n", "line"),
            ("[a]\nx=1\n[a]\ny=2\n", "the section `[a]` appears twice"),
            ("[a]\nX=1\nx=2\n", "`x` appears twice in `[a]`"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = resolve_with(&[("AWS_SHARED_CREDENTIALS_FILE", f)]).err().unwrap();
            assert!(
                err.contains(&format!("the AWS credentials file `{f}`")) && err.contains(want),
                "{text:?}: {err}"
            );
        }
        // Not read at all when nothing is looked up in it.
        let r = resolve_with(&[
            ("AWS_SHARED_CREDENTIALS_FILE", f),
            (ID, "A"),
            (SECRET, "S"),
            ("AWS_REGION", "x"),
        ]);
        assert!(r.is_ok());
    }

    /// A profile's `endpoint_url` (MinIO, R2) is where requests go, as boto3 sends them: the
    /// config file is read for it even when the variables give the credentials and the
    /// region; `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` leaves it out.
    #[test]
    fn a_profiles_endpoint_url_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[default]\nendpoint_url = http://127.0.0.1:9000\n").unwrap();
        let f = config.to_str().unwrap();
        let vars = vec![("AWS_CONFIG_FILE", f), (ID, "A"), (SECRET, "S"), ("AWS_REGION", "x")];
        let r = resolve_with(&vars).unwrap();
        let (url, from) = r.endpoint.expect("the profile's endpoint");
        assert_eq!(url, "http://127.0.0.1:9000");
        assert!(from.contains("endpoint_url of profile `default`"), "{from}");
        let mut ignoring = vars.clone();
        ignoring.push(("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"));
        assert!(resolve_with(&ignoring).unwrap().endpoint.is_none());
        std::fs::write(
            &config,
            "[default]\nservices = mine\n[services mine]\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n",
        )
        .unwrap();
        let err = resolve_with(&vars).err().unwrap();
        assert!(err.contains("sets its endpoints with `services`"), "{err}");
    }

    #[test]
    fn unsupported_sources_and_halves_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        let vars = |profile: &'static str| {
            vec![
                ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap().to_string()),
                ("AWS_CONFIG_FILE", config.to_str().unwrap().to_string()),
                ("AWS_PROFILE", profile.to_string()),
            ]
        };
        let run = |profile| {
            let v = vars(profile);
            let v: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
            resolve_with(&v)
        };
        std::fs::write(
            &creds,
            "[half]\naws_access_key_id = A\n[p]\naws_access_key_id = A\naws_secret_access_key = S\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = p\n[profile proc]\ncredential_process = /bin/false\n[profile p]\ncredential_process = /bin/false\n[profile sso]\nsso_session = s\n",
        )
        .unwrap();
        let err = run("half").err().unwrap();
        assert!(err.contains("profile `half`") && err.contains("no aws_secret_access_key"), "{err}");
        for (profile, key) in [("role", "role_arn"), ("proc", "credential_process"), ("sso", "sso_session")] {
            let err = run(profile).err().unwrap();
            assert!(err.contains(&format!("`{key}`")) && err.contains("export-credentials"), "{err}");
        }
        // The credentials file's keys come before a credential_process.
        assert_eq!(key_id(&run("p").unwrap()).as_deref(), Some("A"));
        let err = resolve_with(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/x")]).err().unwrap();
        assert!(err.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{err}");
    }

    #[test]
    fn container_endpoints_are_checked_before_any_request() {
        for ok in [
            "http://127.0.0.1:9/creds",
            "http://127.1.2.3/creds",
            "http://[::1]:80/x",
            "http://localhost/x",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/x",
            "https://creds.example/x",
        ] {
            assert!(resolve_with(&[(FULL_URI, ok)]).is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1/creds", "http://creds.example/x", "ftp://127.0.0.1/x", "not a url"] {
            let err = resolve_with(&[(FULL_URI, bad)]).err().unwrap();
            assert!(err.contains(FULL_URI), "{bad}: {err}");
        }
        let r =
            resolve_with(&[(RELATIVE_URI, "/v2/credentials/x"), (FULL_URI, "http://127.0.0.1/y")]).unwrap();
        assert_eq!(r.source, Source::Container { url: "http://169.254.170.2/v2/credentials/x".into() });
        let err = resolve_with(&[(FULL_URI, "http://127.0.0.1/y"), (AUTH_TOKEN, "a\nb")]).err().unwrap();
        assert!(err.contains("line break"), "{err}");
        let err = resolve_with(&[(FULL_URI, "http://127.0.0.1/y"), (AUTH_TOKEN_FILE, "/nonexistent/token")])
            .err()
            .unwrap();
        assert!(err.contains(AUTH_TOKEN_FILE) && err.contains("/nonexistent/token"), "{err}");
    }
}
