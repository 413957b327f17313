//! A plain HTTP cache: one object per entry at `<URL>/v1/<2 hex>/<62 hex>`, read with GET,
//! written with PUT — nginx's WebDAV module (`create_full_put_path on`),
//! bazel-remote, or any server that takes PUT. Basic auth from the URL's user info, or a
//! bearer token (`HASHPYC_CACHE_TOKEN`).

use std::time::Duration;

use super::super::entry::Key;
use super::super::tier::{Tier, TierError, entry_path};
use super::{agent, read_get, read_put, redact_url, send_error, upload_timeout};

pub struct HttpTier {
    /// For lookups (GET).
    agent: ureq::Agent,
    /// For uploads (PUT, and the GET before one), with the longer upload timeout.
    uploads: ureq::Agent,
    /// The URL without user info or a trailing slash.
    base: String,
    /// `Authorization` header value.
    auth: Option<String>,
    /// Which credentials `auth` holds (or that there are none), in words, for a refusal
    /// (401, 403).
    sent: &'static str,
    /// What must never appear in a message.
    secrets: Vec<String>,
    /// The warning that credentials go over plain http to another machine.
    cleartext: Option<String>,
    /// The collections (directories, as `…/` URLs) known to be there this run: made by
    /// MKCOL, or found there by it.
    collections: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl HttpTier {
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<HttpTier, String> {
        // `user:pa/ss@host`: the authority ends at the `/`, so a parser reads host `user`,
        // and the password would be sent as part of the path.
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        if let (Some(at), Some(end)) = (rest.rfind('@'), rest.find(['/', '?', '#']))
            && end < at
        {
            return Err(format!(
                "invalid cache URL `{}`: an `@` after a `/`, `?` or `#`: a password holding those \
                 characters must be percent-encoded (`/` %2F, `?` %3F, `#` %23, `@` %40), and so \
                 must an `@` in the path",
                redact_url(url)
            ));
        }
        let mut parsed =
            url::Url::parse(url).map_err(|e| format!("invalid cache URL `{}`: {e}", redact_url(url)))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("invalid cache URL `{}`: no host", redact_url(url)));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!("invalid cache URL `{}`: no query or fragment allowed", redact_url(url)));
        }
        let decode = |s: &str| percent_encoding_decode(s);
        let user = decode(parsed.username());
        let password = parsed.password().map(decode);
        let mut secrets = Vec::new();
        // The token wins over the URL's user info (an organisation's token in the
        // environment, a job's user and password in its URL): a refusal says which was sent.
        let user_info = !user.is_empty() || password.is_some();
        let (auth, sent) = if let Some(token) = token {
            secrets.push(token.clone());
            let sent = if user_info {
                "the bearer token of HASHPYC_CACHE_TOKEN was sent, not the user and password of the URL"
            } else {
                "the bearer token of HASHPYC_CACHE_TOKEN was sent"
            };
            (Some(format!("Bearer {token}")), sent)
        } else if user_info {
            use base64::Engine;
            let pair = format!("{user}:{}", password.clone().unwrap_or_default());
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            if let Some(p) = password {
                secrets.push(p);
            }
            secrets.push(encoded.clone());
            (Some(format!("Basic {encoded}")), "the user and password of the URL were sent")
        } else {
            (None, "none were given (HASHPYC_CACHE_TOKEN, or user:password@ in the URL)")
        };
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let base = parsed.as_str().trim_end_matches('/').to_string();
        let sending = match (&auth, sent.starts_with("the bearer token")) {
            (None, _) => None,
            (Some(_), true) => Some("the bearer token of HASHPYC_CACHE_TOKEN is sent"),
            (Some(_), false) => Some("the user and password of the URL are sent"),
        };
        let cleartext = super::cleartext_warning(&parsed, sending, &base, "give an https:// URL");
        let host = parsed.host_str();
        Ok(HttpTier {
            cleartext,
            agent: agent(timeout, super::LOOKUPS, host),
            uploads: agent(upload_timeout(timeout), super::UPLOADS, host),
            base,
            auth,
            sent,
            secrets,
            collections: Default::default(),
        })
    }

    fn url(&self, key: &Key) -> String {
        format!("{}/{}", self.base, entry_path(key))
    }

    /// For a refusal (401, 403): which credentials were sent, or when the requests carried
    /// none, say so, and for an upload that a job which may only read wants
    /// `--cache-read-only` (a server that lets anyone read and only some write, a fork's
    /// pull request without the secret).
    fn none_given(&self, method: &str) -> Option<&'static str> {
        match (&self.auth, method) {
            (None, "PUT") => Some(
                "none were given (HASHPYC_CACHE_TOKEN, or user:password@ in the URL); a job that \
                 may only read wants --cache-read-only",
            ),
            _ => Some(self.sent),
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }

    fn send_put(&self, url: &str, data: &[u8]) -> Result<ureq::http::Response<ureq::Body>, TierError> {
        let mut req = self.uploads.put(url).header("Content-Type", "application/octet-stream");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        req.send(data).map_err(|e| send_error(&e, "PUT", url, &self.uploads, &self.secrets()))
    }

    /// MKCOL, from the top down, of the collections above `key`'s entry that this run has
    /// not yet made or found (`PREFIX/`, `PREFIX/v1/`, `PREFIX/v1/ab/`, and the URL path's
    /// own directories above them): whether they are all there now (made by this call or
    /// another upload's meanwhile), so that sending the file again may succeed. One that is
    /// there already (405, as WebDAV answers) is remembered; any other answer, or a request
    /// that fails, ends the attempt (the PUT's own answer then says what is wrong).
    fn make_collections(&self, key: &Key) -> bool {
        let Ok(base) = url::Url::parse(&format!("{}/", self.base)) else { return false };
        let path = entry_path(key);
        let entry_dirs = path.rsplit_once('/').map_or("", |(dirs, _)| dirs);
        let mut dirs = Vec::new();
        let mut at = base.clone();
        at.set_path("/");
        let segments = base.path_segments().into_iter().flatten().chain(entry_dirs.split('/'));
        for segment in segments.filter(|s| !s.is_empty()) {
            at = match at.join(&format!("{segment}/")) {
                Ok(u) => u,
                Err(_) => return false,
            };
            dirs.push(at.to_string());
        }
        // Held throughout: the upload threads making the same collections at once would each
        // send its MKCOL (and one could send its file again before another's was made).
        let mut known = self.collections.lock().expect("collections lock");
        for dir in dirs {
            if known.contains(&dir) {
                continue;
            }
            let mut req = ureq::http::Request::builder().method("MKCOL").uri(&dir);
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a);
            }
            let Ok(req) = req.body(()) else { return false };
            match self.uploads.run(req) {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    super::drain(resp);
                    if !matches!(status, 201 | 405) {
                        return false;
                    }
                    known.insert(dir);
                }
                Err(_) => return false,
            }
        }
        true
    }

    fn get_with(&self, agent: &ureq::Agent, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        let url = self.url(key);
        let mut req = agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let resp = req.call().map_err(|e| send_error(&e, "GET", &url, agent, &self.secrets()))?;
        read_get(resp, (&url, agent), &self.secrets(), self.none_given("GET"))
    }
}

/// `%xx` decoding of URL user info (invalid escapes are kept as they are).
fn percent_encoding_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) =
                std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Tier for HttpTier {
    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        self.get_with(&self.agent, key)
    }

    fn put(&self, key: &Key, data: &[u8]) -> Result<u64, TierError> {
        let url = self.url(key);
        let resp = self.send_put(&url, data)?;
        // A WebDAV server that wants the collections above a new file made first answers
        // 409 Conflict (RFC 4918; Apache's mod_dav): make them, then send the file again.
        // (nginx without `create_full_put_path` answers 500, which says nothing so precise.)
        if resp.status().as_u16() == 409 && self.make_collections(key) {
            super::drain(resp);
            let resp = self.send_put(&url, data)?;
            return read_put(resp, data.len(), self.none_given("PUT"));
        }
        read_put(resp, data.len(), self.none_given("PUT"))
    }

    fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        self.get_with(&self.uploads, key)
    }

    fn describe(&self) -> String {
        self.base.clone()
    }

    fn cleartext(&self) -> Option<String> {
        self.cleartext.clone()
    }

    fn notes(&self) -> Vec<String> {
        super::proxy_note(&self.agent, &self.base).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_becomes_basic_auth_and_leaves_the_url() {
        let t = HttpTier::new("http://ci:p%40ss@127.0.0.1:9/cache/", None, Duration::from_secs(1)).unwrap();
        assert_eq!(t.describe(), "http://127.0.0.1:9/cache");
        assert_eq!(t.url(&[0xab; 32]), format!("http://127.0.0.1:9/cache/v1/ab/{}", "ab".repeat(31)));
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD.encode("ci:p@ss");
        assert_eq!(t.auth.as_deref(), Some(format!("Basic {want}").as_str()));
        let bearer = HttpTier::new("https://h/x", Some("tok".into()), Duration::from_secs(1)).unwrap();
        assert_eq!(bearer.auth.as_deref(), Some("Bearer tok"));
        assert!(HttpTier::new("http://", None, Duration::from_secs(1)).is_err());
        assert!(HttpTier::new("http://h/x?sig=1", None, Duration::from_secs(1)).is_err());
        for url in [
            "http://ci:pa/ss@127.0.0.1:9/c",
            "http://ci:123/cret@h/c",
            "http://ci:pa?ss@h/c",
            "http://u:p#w@h/c",
        ] {
            let e = HttpTier::new(url, None, Duration::from_secs(1)).err().expect("refused");
            assert!(
                e.contains("must be percent-encoded") && !e.contains("ss@") && !e.contains("cret"),
                "{url}: {e}"
            );
        }
        // Percent-encoded, the same password is basic auth.
        let t = HttpTier::new("http://ci:pa%2Fss@127.0.0.1:9/c", None, Duration::from_secs(1)).unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("ci:pa/ss");
        assert_eq!(t.auth.as_deref(), Some(format!("Basic {want}").as_str()));
    }
}
