//! One storage tier of the bytecode cache (sccache's `Storage`): get, put and exists of
//! an entry's stored bytes by key. The local directory and each remote backend implement
//! it; `Cache` walks the tiers in order and never lets a tier's failure fail a build.

use super::entry::Key;

/// Why a tier could not answer. Messages never hold a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierError {
    /// The request took longer than the cache's timeout.
    Timeout(String),
    /// Anything else: refused connection, DNS, TLS, an HTTP error status, a broken reply.
    Failed(String),
}

impl std::fmt::Display for TierError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TierError::Timeout(m) | TierError::Failed(m) => f.write_str(m),
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
