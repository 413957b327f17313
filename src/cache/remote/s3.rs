//! An S3-compatible cache (AWS, MinIO, Ceph, SeaweedFS, R2, `rclone serve s3`…): one object
//! per entry at `s3://BUCKET/PREFIX/v1/<2 hex>/<62 hex>`, read and written with presigned
//! SigV4 requests (rusty-s3 signs; nothing but the request goes on the wire).
//!
//! Configured the standard way: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`; default `us-east-1`), and
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for another service (path-style addressing
//! then; AWS itself is addressed virtual-host style). Without credentials, requests are
//! unsigned: anonymous reads of a public bucket. Half a key pair, or a session token
//! without one, is an error (boto3's PartialCredentialsError), never anonymous requests.
//! Nothing else is read: no profile files, no instance or container metadata.

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::super::entry::Key;
use super::super::tier::{Tier, TierError, entry_path};
use super::{OpenError, agent, drain, read_get, redact_url, request_error, status_error, upload_timeout};

/// How long a presigned request stays valid (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(600);

pub struct S3Tier {
    /// For lookups (GET).
    agent: ureq::Agent,
    /// For uploads (PUT, and the GET before one), with the longer upload timeout.
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

/// The credentials the environment gives, as boto3 reads them (an empty variable is an
/// unset one): the key pair and its session token, or nothing at all (anonymous). Any
/// other combination is a mistake to be told, since unsigned requests would go out
/// instead (and a public bucket would answer them).
fn credentials_from_env() -> Result<Option<Credentials>, String> {
    const ID: &str = "AWS_ACCESS_KEY_ID";
    const SECRET: &str = "AWS_SECRET_ACCESS_KEY";
    const TOKEN: &str = "AWS_SESSION_TOKEN";
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

impl S3Tier {
    /// `s3://BUCKET/PREFIX`, with the rest from the environment.
    pub fn from_env(url: &str, timeout: Duration) -> Result<S3Tier, OpenError> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.is_empty() || name.contains('@') || name.contains(':') {
            return Err(OpenError::Url(format!(
                "invalid cache URL `{}`: expected s3://BUCKET/PREFIX",
                redact_url(url)
            )));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let region_from = ["AWS_REGION", "AWS_DEFAULT_REGION"].into_iter().find_map(|v| Some((v, env(v)?)));
        let region = region_from.as_ref().map_or_else(|| "us-east-1".to_string(), |(_, r)| r.clone());
        // The service's own variable first, as the AWS SDKs read them; an error names the
        // one that held the value.
        let given = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].into_iter().find_map(|v| Some((v, env(v)?)));
        let (endpoint, style) = match &given {
            Some((_, e)) => (e.clone(), UrlStyle::Path),
            None => (format!("https://s3.{region}.amazonaws.com"), UrlStyle::VirtualHost),
        };
        let endpoint_url = url::Url::parse(&endpoint).map_err(|e| {
            OpenError::Environment(match (&given, &region_from) {
                (Some((var, _)), _) => format!("invalid {var} `{}`: {e}", redact_url(&endpoint)),
                (None, Some((var, region))) => {
                    format!(
                        "invalid {var} `{region}`: the endpoint it makes, `{endpoint}`, is not a URL ({e})"
                    )
                }
                (None, None) => format!("invalid endpoint `{endpoint}`: {e}"),
            })
        })?;
        let bucket = Bucket::new(endpoint_url, style, name.to_string(), region).map_err(|e| {
            OpenError::Url(format!("cannot address bucket `{name}` at `{}`: {e}", redact_url(&endpoint)))
        })?;
        let credentials = credentials_from_env().map_err(OpenError::Environment)?;
        let secrets = credentials
            .iter()
            .flat_map(|c| [Some(c.secret()), c.token()])
            .flatten()
            .map(str::to_string)
            .collect();
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

    fn get_with(&self, agent: &ureq::Agent, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        let object = self.object(key);
        let url = rusty_s3::actions::GetObject::new(&self.bucket, self.credentials.as_ref(), &object)
            .sign(SIGNED_FOR);
        let url = url.as_str();
        let resp = agent.get(url).call().map_err(|e| request_error(&e, &self.secrets(url)))?;
        read_get(resp, &self.secrets(url))
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

    fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
        self.get_with(&self.uploads, key)
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
