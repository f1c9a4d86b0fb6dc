//! The [`SelectionAlgorithm`]s behind the weighted selectors.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::SelectionAlgorithm;

/// Each call returns the next number of a counter shared by all requests.
#[derive(Debug, Default)]
pub struct RoundRobin(AtomicUsize);

impl SelectionAlgorithm for RoundRobin {
    fn new() -> Self {
        RoundRobin(AtomicUsize::new(0))
    }

    fn next(&self, _key: &[u8]) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) as u64
    }
}

/// A random number, whatever the key.
#[derive(Debug, Default)]
pub struct Random;

impl SelectionAlgorithm for Random {
    fn new() -> Self {
        Random
    }

    fn next(&self, _key: &[u8]) -> u64 {
        rand::random()
    }
}

/// The 64-bit FNV-1a hash of the key.
#[derive(Debug, Default)]
pub struct FnvHash;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv1aHasher::default();
    std::hash::Hasher::write(&mut hasher, bytes);
    std::hash::Hasher::finish(&hasher)
}

/// A [`Hasher`](std::hash::Hasher) computing FNV-1a 64: fast, deterministic, for hashing
/// small keys such as backend addresses.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1aHasher(u64);

impl Default for Fnv1aHasher {
    fn default() -> Self {
        Fnv1aHasher(FNV_OFFSET)
    }
}

impl std::hash::Hasher for Fnv1aHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
}

impl SelectionAlgorithm for FnvHash {
    fn new() -> Self {
        FnvHash
    }

    fn next(&self, key: &[u8]) -> u64 {
        fnv1a(key)
    }
}
