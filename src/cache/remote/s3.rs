//! An S3-compatible cache (AWS, MinIO, Ceph, SeaweedFS, R2, `rclone serve s3`…): one object
//! per entry at `s3://BUCKET/PREFIX/v1/<2 hex>/<62 hex>`, read and written with presigned
//! SigV4 requests (rusty-s3 signs; nothing but the request goes on the wire).
//!
//! Configured the standard way: credentials and the region as the AWS SDKs find them
//! (`aws`: the `AWS_*` variables, `~/.aws` profiles, container credentials), and
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for another service (path-style addressing
//! then; AWS itself is addressed virtual-host style). Without credentials, requests are
//! unsigned: anonymous reads of a public bucket.

use std::time::Duration;

use rusty_s3::{Bucket, S3Action, UrlStyle};

use super::super::entry::Key;
use super::super::tier::{Tier, TierError, entry_path};
use super::aws::{self, Provider, Source};
use super::{OpenError, agent, read_get, read_put, redact_url, send_error, upload_timeout};

/// How long a presigned request stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(600);

pub struct S3Tier {
    /// For lookups (GET).
    agent: ureq::Agent,
    /// For uploads (PUT, and the GET before one), with the longer upload timeout.
    uploads: ureq::Agent,
    bucket: Bucket,
    credentials: Provider,
    /// Where they came from, for the message of a refused request.
    source: String,
    /// Object key prefix, without a trailing slash ("" for the bucket's root).
    prefix: String,
    shown: String,
    secrets: Vec<String>,
    /// The warning that signed requests go over plain http to another machine.
    cleartext: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Tier {
    /// `s3://BUCKET/PREFIX`, with the rest from the environment.
    pub fn from_env(url: &str, timeout: Duration) -> Result<S3Tier, OpenError> {
        S3Tier::open(url, timeout, &env)
    }

    /// `s3://BUCKET/PREFIX`, with the rest from `env`.
    pub fn open(url: &str, timeout: Duration, env: aws::Env) -> Result<S3Tier, OpenError> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || name.contains('@') || name.contains(':') {
            return Err(OpenError::Url(format!(
                "invalid cache URL `{}`: expected s3://BUCKET/PREFIX",
                redact_url(url)
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let resolved = aws::resolve(env, timeout).map_err(OpenError::Environment)?;
        // As the AWS SDKs find it (`aws::Resolved::endpoint`); an error names where it is set.
        let given = resolved.endpoint.clone().map(|(url, from)| (from, url));
        let (endpoint, style) = match &given {
            Some((_, e)) => (e.clone(), UrlStyle::Path),
            // A bucket name with dots is addressed by path on AWS too, as botocore does: its
            // wildcard certificate covers one label of a virtual host only.
            None if name.contains('.') => {
                (format!("https://s3.{}.amazonaws.com", resolved.region), UrlStyle::Path)
            }
            None => (format!("https://s3.{}.amazonaws.com", resolved.region), UrlStyle::VirtualHost),
        };
        let endpoint_url = match &given {
            Some((var, _)) => super::parse_url(var, &endpoint).map_err(OpenError::Environment)?,
            None => url::Url::parse(&endpoint).map_err(|e| {
                OpenError::Environment(
                    resolved
                        .region_error(&format!("the endpoint it makes, `{endpoint}`, is not a URL ({e})")),
                )
            })?,
        };
        let bucket =
            Bucket::new(endpoint_url, style, name.to_string(), resolved.region.clone()).map_err(|e| {
                use rusty_s3::BucketError::{MissingHost, UnsupportedScheme};
                match (&e, &given) {
                    // The variable's fault, not the cache URL's (`htp://…`, `host:9000`).
                    (UnsupportedScheme | MissingHost, Some((var, _))) => OpenError::Environment(format!(
                        "invalid {var} `{}`: expected http://HOST[:PORT] or https://HOST[:PORT]",
                        redact_url(&endpoint)
                    )),
                    _ => OpenError::Url(format!(
                        "cannot address bucket `{name}` at `{}`: {e}",
                        redact_url(&endpoint)
                    )),
                }
            })?;
        let mut secrets = resolved.secrets;
        if let Provider::Static(Some(c)) = &resolved.provider {
            secrets.extend([Some(c.secret()), c.token()].into_iter().flatten().map(str::to_string));
        }
        let shown = format!(
            "s3://{name}/{prefix} at {}{}",
            redact_url(&endpoint),
            if resolved.source == Source::Anonymous { " (anonymous)" } else { "" }
        );
        // The secret key is never sent, but what is (the access key id, a session token,
        // signatures each good for its request for a while) is readable and replayable.
        let sending = (resolved.source != Source::Anonymous)
            .then(|| format!("requests signed with the credentials {} are sent", resolved.source));
        let cleartext = super::cleartext_warning(
            bucket.base_url(),
            sending.as_deref(),
            &shown,
            "give an https:// endpoint",
        );
        let host = bucket.base_url().host_str().map(str::to_string);
        Ok(S3Tier {
            agent: agent(timeout, super::LOOKUPS, host.as_deref()),
            uploads: agent(upload_timeout(timeout), super::UPLOADS, host.as_deref()),
            bucket,
            credentials: resolved.provider,
            source: resolved.source.to_string(),
            prefix,
            shown,
            secrets,
            cleartext,
        })
    }

    fn object(&self, key: &Key) -> String {
        if self.prefix.is_empty() { entry_path(key) } else { format!("{}/{}", self.prefix, entry_path(key)) }
    }

    fn get_with(&self, agent: &ureq::Agent, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        let object = self.object(key);
        let credentials = self.credentials.get()?;
        let url =
            rusty_s3::actions::GetObject::new(&self.bucket, credentials.as_deref(), &object).sign(SIGNED_FOR);
        let url = url.as_str();
        let resp =
            agent.get(url).call().map_err(|e| send_error(&e, "GET", url, agent, &self.secrets(url)))?;
        read_get(resp, (url, agent), &self.secrets(url), Some(&self.source))
    }

    /// What must never appear in a message: the secrets, and the signed URL itself.
    fn secrets<'a>(&'a self, url: &'a str) -> Vec<&'a str> {
        let mut s: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        s.push(url);
        if let Some((_, q)) = url.split_once('?') {
            s.push(q);
        }
        s
    }
}

impl Tier for S3Tier {
    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        self.get_with(&self.agent, key)
    }

    fn put(&self, key: &Key, data: &[u8]) -> Result<u64, TierError> {
        let object = self.object(key);
        let credentials = self.credentials.get()?;
        let url =
            rusty_s3::actions::PutObject::new(&self.bucket, credentials.as_deref(), &object).sign(SIGNED_FOR);
        let url = url.as_str();
        let resp = self
            .uploads
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .map_err(|e| send_error(&e, "PUT", url, &self.uploads, &self.secrets(url)))?;
        read_put(resp, data.len(), Some(&self.source))
    }

    fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        self.get_with(&self.uploads, key)
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn cleartext(&self) -> Option<String> {
        self.cleartext.clone()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.credentials.notes();
        notes.extend(super::proxy_note(&self.agent, self.bucket.base_url().as_str()));
        notes
    }

    fn retries(&self) -> u64 {
        self.credentials.retries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_with(vars: &[(&str, &str)]) -> Result<S3Tier, OpenError> {
        let vars: std::collections::HashMap<&str, &str> = vars.iter().copied().collect();
        S3Tier::open("s3://bucket/prefix", Duration::from_secs(1), &|n| {
            vars.get(n).filter(|v| !v.is_empty()).map(|v| v.to_string())
        })
    }

    #[test]
    fn a_region_that_makes_no_endpoint_is_named() {
        let err = |vars: &[(&str, &str)]| open_with(vars).err().expect("refused").to_string();
        let e = err(&[("AWS_REGION", "a b")]);
        assert!(e.starts_with("invalid AWS_REGION `a b`"), "{e}");
        let e = err(&[("AWS_DEFAULT_REGION", "a b")]);
        assert!(e.starts_with("invalid AWS_DEFAULT_REGION `a b`"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[default]\nregion = a b\n").unwrap();
        let e = err(&[("AWS_CONFIG_FILE", config.to_str().unwrap())]);
        assert!(
            e.starts_with(&format!("invalid region `a b` of profile `default` in `{}`", config.display())),
            "{e}"
        );
        // An endpoint given: the region is only signed with.
        assert!(open_with(&[("AWS_REGION", "a b"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9")]).is_ok());
    }

    /// A bucket name with dots is addressed by path on AWS too (its wildcard certificate
    /// covers one label of a virtual host), as botocore does; one without, by virtual host.
    #[test]
    fn dotted_bucket_names_are_addressed_by_path() {
        let base = |url: &str| {
            let tier = S3Tier::open(url, Duration::from_secs(1), &|n| {
                (n == "AWS_REGION").then(|| "eu-west-1".into())
            })
            .unwrap_or_else(|e| panic!("{e}"));
            tier.bucket.base_url().to_string()
        };
        assert_eq!(base("s3://ci.cache.example/p"), "https://s3.eu-west-1.amazonaws.com/ci.cache.example/");
        assert_eq!(base("s3://ci-cache/p"), "https://ci-cache.s3.eu-west-1.amazonaws.com/");
    }
}
