//! An S3-compatible cache (AWS, MinIO, Ceph, SeaweedFS, R2, `rclone serve s3`…): one object
//! per entry at `s3://BUCKET/PREFIX/v1/<2 hex>/<62 hex>`, read, written and tested with
//! presigned SigV4 requests (rusty-s3 signs; nothing but the request goes on the wire).
//!
//! Configured the standard way: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`; default `us-east-1`), and
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for another service (path-style addressing
//! then; AWS itself is addressed virtual-host style). Without credentials, requests are
//! unsigned: anonymous reads of a public bucket.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::super::entry::Key;
use super::super::tier::{Tier, TierError, entry_path};
use super::{agent, drain, read_get, redact_url, request_error, status_error, upload_timeout};

/// How long a presigned request stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(600);

pub struct S3Tier {
    /// For lookups (GET).
    agent: ureq::Agent,
    /// For uploads (PUT, HEAD), with the longer upload timeout.
    uploads: ureq::Agent,
    bucket: Bucket,
    credentials: Option<Credentials>,
    /// Object key prefix, without a trailing slash ("" for the bucket's root).
    prefix: String,
    shown: String,
    secrets: Vec<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Tier {
    /// `s3://BUCKET/PREFIX`, with the rest from the environment.
    pub fn from_env(url: &str, timeout: Duration) -> Result<S3Tier, String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || name.contains('@') || name.contains(':') {
            return Err(format!("invalid cache URL `{}`: expected s3://BUCKET/PREFIX", redact_url(url)));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let region =
            env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        let (endpoint, style) = match env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            Some(e) => (e, UrlStyle::Path),
            None => (format!("https://s3.{region}.amazonaws.com"), UrlStyle::VirtualHost),
        };
        let endpoint_url = url::Url::parse(&endpoint)
            .map_err(|e| format!("invalid AWS_ENDPOINT_URL `{}`: {e}", redact_url(&endpoint)))?;
        let bucket = Bucket::new(endpoint_url, style, name.to_string(), region)
            .map_err(|e| format!("cannot address bucket `{name}` at `{}`: {e}", redact_url(&endpoint)))?;
        let mut secrets = Vec::new();
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => {
                secrets.push(secret.clone());
                Some(match env("AWS_SESSION_TOKEN") {
                    Some(token) => {
                        secrets.push(token.clone());
                        Credentials::new_with_token(key, secret, token)
                    }
                    None => Credentials::new(key, secret),
                })
            }
            _ => None,
        };
        let shown = format!(
            "s3://{name}/{prefix} at {}{}",
            redact_url(&endpoint),
            if credentials.is_none() { " (anonymous)" } else { "" }
        );
        Ok(S3Tier {
            agent: agent(timeout, super::LOOKUPS),
            uploads: agent(upload_timeout(timeout), super::UPLOADS),
            bucket,
            credentials,
            prefix,
            shown,
            secrets,
        })
    }

    fn object(&self, key: &Key) -> String {
        if self.prefix.is_empty() { entry_path(key) } else { format!("{}/{}", self.prefix, entry_path(key)) }
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
        let object = self.object(key);
        let url = rusty_s3::actions::GetObject::new(&self.bucket, self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let url = url.as_str();
        let resp = self.agent.get(url).call().map_err(|e| request_error(&e, &self.secrets(url)))?;
        read_get(resp, &self.secrets(url))
    }

    fn put(&self, key: &Key, data: &[u8]) -> Result<u64, TierError> {
        let object = self.object(key);
        let url = rusty_s3::actions::PutObject::new(&self.bucket, self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let url = url.as_str();
        let resp = self
            .uploads
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .map_err(|e| request_error(&e, &self.secrets(url)))?;
        let status = resp.status().as_u16();
        drain(resp);
        match status {
            200..=299 => Ok(data.len() as u64),
            s => Err(status_error(s, "PUT")),
        }
    }

    fn contains(&self, key: &Key) -> Result<bool, TierError> {
        let object = self.object(key);
        let url = rusty_s3::actions::HeadObject::new(&self.bucket, self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let url = url.as_str();
        let resp = self.uploads.head(url).call().map_err(|e| request_error(&e, &self.secrets(url)))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            s => Err(status_error(s, "HEAD")),
        }
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
