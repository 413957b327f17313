//! One storage tier of the bytecode cache (sccache's `Storage`): get, put and exists of
//! an entry's stored bytes by key. The local directory and each remote backend implement
//! it; `Cache` walks the tiers in order and never lets a tier's failure fail a build.

use super::entry::Key;

/// Why a tier could not answer. Messages never hold a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierError {
    /// The request took longer than the cache's timeout.
    Timeout(String),
    /// Anything else: DNS, TLS, an HTTP error status, a broken reply.
    Failed(String),
    /// The connection was refused (nothing listens at the address, or at the proxy's): a
    /// server that never answered in this run is a failure as [`TierError::Failed`]; one
    /// that did and refuses now is restarting, given a few seconds (`cache::OUTAGE_MAX`).
    Refused(String),
    /// A failure the same request may well not meet again (HTTP 500, 502, 503, 504 or 429,
    /// a connection reset or closed before the response, the system resolver's "Temporary
    /// failure in name resolution"): retried (`remote::retry`), and
    /// only then a [`TierError::Failed`]. `retry_after`: the server's `Retry-After`.
    Transient { message: String, retry_after: Option<std::time::Duration> },
    /// An entry's body not read because the bodies and payloads the lookups in flight hold
    /// already take the memory budget (`remote::MAX_READING`): nothing is known wrong with
    /// the server or the entry, so a plain miss (never retried, never switching the tier
    /// off), as an entry found so when it is decoded is.
    Busy(String),
    /// The server refused the credentials for this request (HTTP 401, 403): for an upload
    /// after lookups with the same credentials were answered, credentials that may only
    /// read (uploads stop, lookups go on); otherwise a failure like [`TierError::Failed`].
    Denied(String),
    /// The server refuses this request's body for its size (HTTP 413, S3's
    /// `EntityTooLarge`): about that one entry, not the server; the upload is skipped and
    /// counted, the tier stays on.
    TooLarge(String),
}

impl std::fmt::Display for TierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TierError::Timeout(m)
            | TierError::Failed(m)
            | TierError::Refused(m)
            | TierError::Busy(m)
            | TierError::TooLarge(m)
            | TierError::Denied(m)
            | TierError::Transient { message: m, .. } => f.write_str(m),
        }
    }
}

pub trait Tier: Send + Sync {
    /// The stored bytes for `key`, `None` when there is no such entry.
    fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError>;
    /// Store `data` for `key`; returns the bytes it takes (as far as the tier knows).
    fn put(&self, key: &Key, data: &[u8]) -> Result<u64, TierError>;
    /// [`Tier::get`] the way uploads are sent (for remote tiers: their connections and
    /// longer timeout): what an upload that must not replace a usable entry reads first.
    fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError>;
    /// Where it is, for messages (credentials removed).
    fn describe(&self) -> String;
    /// Requests it retried on its own (an S3 tier's credential fetches); the cache counts
    /// those it retries itself.
    fn retries(&self) -> u64 {
        0
    }
    /// The warning that its requests carry credentials over plain `http://` to a host that
    /// is not this machine's loopback (`remote::cleartext_warning`), said once per run.
    fn cleartext(&self) -> Option<String> {
        None
    }
    /// What `-v` says of it beyond its counts (an S3 tier's credentials kept in use when a
    /// refresh failed).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

impl std::fmt::Debug for dyn Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The path of an entry below a tier's root: `v1/<2 hex>/<62 hex>`, the same layout in
/// every tier (no key is a prefix of another key's directories, which WebDAV servers need).
pub fn entry_path(key: &Key) -> String {
    let hex = crate::pyc::hex(key);
    format!("v1/{}/{}", &hex[..2], &hex[2..])
}
