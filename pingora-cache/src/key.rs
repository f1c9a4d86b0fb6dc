//! Cache keys and their 128-bit hashes.
//!
//! A [`CacheKey`] names a cached response by a namespace and a primary key (usually the
//! request's scheme, host and path), plus an optional variance hash when the response varies
//! on request fields (see [`VarianceBuilder`](crate::VarianceBuilder)). Storage and eviction
//! work on hashes only: 16-byte Blake2b digests ([`HashBinary`]), kept in memory as a
//! [`CompactCacheKey`].
//!
//! The hashes are the same as Pingora's for the same input, so hex keys logged or persisted
//! by either implementation name the same object.
//!
//! ```
//! use pingora_cache::key::{CacheHashKey, CacheKey};
//!
//! let mut key = CacheKey::new("", "https://example.com/a", "user-1");
//! let primary = key.primary();
//! assert_eq!(key.combined(), primary); // no variance yet
//!
//! key.set_variance_key(pingora_cache::key::hash_key("gzip"));
//! assert_ne!(key.combined(), primary);
//! assert_eq!(key.to_compact().combined(), key.combined());
//! ```

use std::fmt;
use std::sync::OnceLock;

use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use http::Extensions;

/// The size of every cache hash, in bytes.
const KEY_SIZE: usize = 16;

/// A 128-bit Blake2b hash: the primary, variance or combined hash of a cache key.
pub type HashBinary = [u8; KEY_SIZE];

/// Blake2b with a 16-byte output. It is stable across machines and releases, unlike the
/// hashers meant for in-memory tables, which matters because hashes name stored objects.
pub(crate) type Blake2b128 = Blake2b<U16>;

/// Hashes `key` into a [`HashBinary`].
pub fn hash_key<K: AsRef<[u8]>>(key: K) -> HashBinary {
    Blake2b128::digest(key.as_ref()).into()
}

/// Hashes `key` into a single byte (the first byte of its [`hash_key`]), for picking one of
/// up to 256 shards.
pub fn hash_u8(key: &str) -> u8 {
    hash_key(key)[0]
}

/// The lower-case hex form of a hash: 32 characters.
pub(crate) fn hex2str(hash: &HashBinary) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(KEY_SIZE * 2);
    for byte in hash {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes the 32-character hex form of a hash (either case).
///
/// Returns `None` unless `s` is exactly 32 hex digits.
pub fn str2hex(s: &str) -> Option<HashBinary> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != KEY_SIZE * 2 {
        return None;
    }
    let mut out = [0; KEY_SIZE];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// What storage, locks and eviction need from a cache key: its hashes and its user tag.
///
/// Implemented by the full [`CacheKey`] and by the in-memory [`CompactCacheKey`], which give
/// the same hashes for the same key.
pub trait CacheHashKey {
    /// The hash of the namespace and primary key (or its override).
    fn primary_bin(&self) -> HashBinary;

    /// The variance hash, `None` when the response does not vary.
    fn variance_bin(&self) -> Option<HashBinary>;

    /// The hash that names one variant: the primary hash when there is no variance, else the
    /// hash of the primary hash followed by the variance hash.
    fn combined_bin(&self) -> HashBinary {
        let primary = self.primary_bin();
        match self.variance_bin() {
            Some(variance) => {
                let mut hasher = Blake2b128::new();
                hasher.update(primary);
                hasher.update(variance);
                hasher.finalize().into()
            }
            None => primary,
        }
    }

    /// A tag identifying the user (tenant) the object belongs to, for example for per-user
    /// quotas in storage. It is not part of any hash.
    fn user_tag(&self) -> &str;

    /// The hex form of [`primary_bin`](Self::primary_bin).
    fn primary(&self) -> String {
        hex2str(&self.primary_bin())
    }

    /// The hex form of [`variance_bin`](Self::variance_bin).
    fn variance(&self) -> Option<String> {
        self.variance_bin().as_ref().map(hex2str)
    }

    /// The hex form of [`combined_bin`](Self::combined_bin).
    fn combined(&self) -> String {
        hex2str(&self.combined_bin())
    }
}

/// The key of a cached response: namespace, primary key, optional variance, user tag.
///
/// Namespace and primary key are bytes (they need not be UTF-8) and are hashed together, in
/// that order, into the primary hash. There is no `Default`: every key is built on purpose,
/// usually by the proxy's `cache_key_callback`.
#[derive(Debug, Clone)]
pub struct CacheKey {
    namespace: Vec<u8>,
    primary: Vec<u8>,
    primary_bin_override: Option<HashBinary>,
    /// The primary hash, computed at its first use (namespace and primary key never change).
    primary_hash: OnceLock<HashBinary>,
    variance: Option<HashBinary>,
    /// A tag identifying the user (tenant) of the object; see [`CacheHashKey::user_tag`].
    pub user_tag: String,
    /// Typed data the user attaches to the key. It is never hashed or persisted.
    pub extensions: Extensions,
}

// === impl CacheKey ===

impl CacheKey {
    /// A key from a namespace, a primary key and a user tag, without variance.
    pub fn new<B1, B2, S>(namespace: B1, primary: B2, user_tag: S) -> Self
    where
        B1: Into<Vec<u8>>,
        B2: Into<Vec<u8>>,
        S: Into<String>,
    {
        CacheKey {
            namespace: namespace.into(),
            primary: primary.into(),
            primary_bin_override: None,
            primary_hash: OnceLock::new(),
            variance: None,
            user_tag: user_tag.into(),
            extensions: Extensions::new(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// The namespace, if it is UTF-8.
    pub fn namespace_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.namespace).ok()
    }

    /// The primary key.
    pub fn primary_key(&self) -> &[u8] {
        &self.primary
    }

    /// The primary key, if it is UTF-8.
    pub fn primary_key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.primary).ok()
    }

    /// Sets the variance hash, which selects one variant of the response.
    pub fn set_variance_key(&mut self, key: HashBinary) {
        self.variance = Some(key);
    }

    /// The variance hash, if set.
    pub fn variance_key(&self) -> Option<&HashBinary> {
        self.variance.as_ref()
    }

    /// The variance hash, if set.
    #[deprecated(note = "use `variance_key`")]
    pub fn get_variance_key(&self) -> Option<&HashBinary> {
        self.variance_key()
    }

    /// Removes the variance hash: the key names the primary slot again.
    pub fn remove_variance_key(&mut self) {
        self.variance = None;
    }

    /// Uses `key` as the primary hash instead of hashing namespace and primary key.
    pub fn set_primary_bin_override(&mut self, key: HashBinary) {
        self.primary_bin_override = Some(key);
    }

    /// The hashes and user tag of this key, without its strings and extensions.
    pub fn to_compact(&self) -> CompactCacheKey {
        CompactCacheKey {
            primary: self.primary_bin(),
            variance: self.variance.map(Box::new),
            user_tag: self.user_tag.clone().into_boxed_str(),
        }
    }
}

impl CacheHashKey for CacheKey {
    fn primary_bin(&self) -> HashBinary {
        if let Some(hash) = self.primary_bin_override {
            return hash;
        }
        *self.primary_hash.get_or_init(|| {
            let mut hasher = Blake2b128::new();
            hasher.update(&self.namespace);
            hasher.update(&self.primary);
            hasher.finalize().into()
        })
    }

    fn variance_bin(&self) -> Option<HashBinary> {
        self.variance
    }

    fn user_tag(&self) -> &str {
        &self.user_tag
    }
}

/// A cache key reduced to what storage and eviction keep in memory: the primary hash, the
/// variance hash (boxed, so that keys without variance stay small) and the user tag.
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct CompactCacheKey {
    /// The primary hash.
    pub primary: HashBinary,
    /// The variance hash, if any.
    pub variance: Option<Box<HashBinary>>,
    /// The user tag.
    pub user_tag: Box<str>,
}

// === impl CompactCacheKey ===

impl CacheHashKey for CompactCacheKey {
    fn primary_bin(&self) -> HashBinary {
        self.primary
    }

    fn variance_bin(&self) -> Option<HashBinary> {
        self.variance.as_deref().copied()
    }

    fn user_tag(&self) -> &str {
        &self.user_tag
    }
}

impl fmt::Display for CompactCacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex2str(&self.primary))?;
        if let Some(variance) = &self.variance {
            write!(f, ", variance: {}", hex2str(variance))?;
        }
        write!(f, ", user_tag: {}", self.user_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_hash_matches_pingora() {
        // The value Pingora's own tests give for this key: hashes name stored objects, so
        // they must not change between implementations or releases.
        let key = CacheKey::new("", "aa", "1");
        assert_eq!(key.primary(), "ac10f2aef117729f8dad056b3059eb7e");
        assert_eq!(key.variance(), None);
        assert_eq!(key.combined(), key.primary());
        let compact = key.to_compact();
        assert_eq!(compact.primary(), key.primary());
        assert_eq!(compact.combined(), key.primary());
        assert_eq!(compact.user_tag(), "1");
    }

    #[test]
    fn namespace_and_primary_are_hashed_in_order() {
        let a = CacheKey::new("ns", "/a", "");
        let b = CacheKey::new("", "ns/a", "");
        // Namespace and primary are concatenated before hashing (as Pingora does).
        assert_eq!(a.primary_bin(), b.primary_bin());
        assert_eq!(a.primary_bin(), hash_key("ns/a"));
        assert_ne!(a.primary_bin(), CacheKey::new("ns", "/b", "").primary_bin());
        // The user tag is not hashed.
        assert_eq!(
            a.primary_bin(),
            CacheKey::new("ns", "/a", "x").primary_bin()
        );
    }

    #[test]
    fn variance_changes_combined_only() {
        let mut key = CacheKey::new("", "aa", "1");
        let primary = key.primary_bin();
        key.set_variance_key(hash_key("v1"));
        assert_eq!(key.primary_bin(), primary);
        assert_eq!(key.variance_key(), Some(&hash_key("v1")));
        let combined = key.combined_bin();
        assert_ne!(combined, primary);

        let mut hasher = Blake2b128::new();
        hasher.update(primary);
        hasher.update(hash_key("v1"));
        assert_eq!(combined, <HashBinary>::from(hasher.finalize()));

        let compact = key.to_compact();
        assert_eq!(compact.variance_bin(), Some(hash_key("v1")));
        assert_eq!(compact.combined_bin(), combined);

        key.set_variance_key(hash_key("v2"));
        assert_ne!(key.combined_bin(), combined);
        key.remove_variance_key();
        assert_eq!(key.combined_bin(), primary);
        assert_eq!(key.variance(), None);
    }

    #[test]
    fn primary_override() {
        let mut key = CacheKey::new("", "aa", "1");
        let forced = str2hex("27c35e6e9373877f29e562464e46497e").unwrap();
        key.set_primary_bin_override(forced);
        assert_eq!(key.primary(), "27c35e6e9373877f29e562464e46497e");
        assert_eq!(key.combined(), key.primary());
        assert_eq!(key.to_compact().primary, forced);
        // The strings are kept.
        assert_eq!(key.primary_key(), b"aa");
        assert_eq!(key.primary_key_str(), Some("aa"));
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        let hash = hash_key("x");
        assert_eq!(str2hex(&hex2str(&hash)), Some(hash));
        assert_eq!(
            str2hex("00112233445566778899AABBCCDDEEFF"),
            Some([
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ])
        );
        for bad in [
            "",
            "00",
            "0011223344556677889900aabbccddeeff",
            "zz112233445566778899aabbccddeeff",
        ] {
            assert_eq!(str2hex(bad), None, "{bad}");
        }
        // Multi-byte characters never panic on the pair split.
        assert_eq!(str2hex("éééééééééééééééé"), None);
    }

    #[test]
    fn non_utf8_parts() {
        let key = CacheKey::new(vec![0xff], vec![0xfe, 0x00], "");
        assert_eq!(key.namespace(), &[0xff]);
        assert_eq!(key.namespace_str(), None);
        assert_eq!(key.primary_key_str(), None);
        assert_eq!(key.primary_bin(), hash_key([0xff, 0xfe, 0x00]));
    }

    #[test]
    fn compact_display_and_order() {
        let mut key = CacheKey::new("", "aa", "tag");
        assert_eq!(
            key.to_compact().to_string(),
            "ac10f2aef117729f8dad056b3059eb7e, user_tag: tag"
        );
        key.set_variance_key([0; 16]);
        assert_eq!(
            key.to_compact().to_string(),
            format!(
                "ac10f2aef117729f8dad056b3059eb7e, variance: {}, user_tag: tag",
                "0".repeat(32)
            )
        );
        assert_ne!(
            key.to_compact(),
            CacheKey::new("", "aa", "tag").to_compact()
        );
        assert_eq!(hash_u8("aa"), 0xac);
    }
}
