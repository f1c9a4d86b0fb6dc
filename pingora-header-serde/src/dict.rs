//! Training a zstd dictionary for [`HeaderSerde`](crate::HeaderSerde).
//!
//! Put sample response heads, one per file, in a directory, as they appear on the wire
//! (status line, field lines, empty line); a few hundred real heads from the traffic the cache
//! will see work best. Train once, store the dictionary, and pass the same bytes to
//! [`HeaderSerde::new`](crate::HeaderSerde::new) wherever the data is read or written:
//!
//! ```no_run
//! use pingora_header_serde::{dict, HeaderSerde};
//!
//! let dictionary = dict::try_train("samples/")?;
//! std::fs::write("headers.dict", &dictionary).unwrap();
//! let serde = HeaderSerde::new(Some(dictionary));
//! # Ok::<(), pingora_error::BError>(())
//! ```
//!
//! The `trainer` binary of this crate does the same from the command line:
//! `trainer samples/ > headers.dict`.

use std::fs;
use std::path::{Path, PathBuf};

use pingora_error::{Error, ErrorType, OrErr, Result};

/// The largest dictionary trained. Each thread's zstd contexts hold a digested copy, so it is
/// kept small; heads are short and share a small vocabulary, which this is plenty for.
const MAX_DICT_SIZE: usize = 32 * 1024;

/// Trains a dictionary of at most 32 KiB on the files directly inside `dir_path`
/// (subdirectories are skipped).
///
/// # Panics
///
/// If the directory or a file in it cannot be read, or zstd cannot train on the samples (too
/// few or too small). [`try_train`] reports these as errors instead.
pub fn train<P: AsRef<Path>>(dir_path: P) -> Vec<u8> {
    try_train(dir_path).unwrap_or_else(|e| panic!("cannot train a header dictionary: {e}"))
}

/// Trains a dictionary on the files directly inside `dir_path` (subdirectories are skipped),
/// read in name order so the same samples always give the same dictionary.
///
/// # Errors
///
/// [`ErrorType::FileReadError`] if the directory or a file cannot be read;
/// [`ErrorType::InternalError`] if it has no samples or zstd cannot train on them.
pub fn try_train<P: AsRef<Path>>(dir_path: P) -> Result<Vec<u8>> {
    let dir = dir_path.as_ref();
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .explain_err(ErrorType::FileReadError, |e| {
            format!("read directory {}: {e}", dir.display())
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let samples = files
        .iter()
        .map(|path| {
            fs::read(path).explain_err(ErrorType::FileReadError, |e| {
                format!("read sample {}: {e}", path.display())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if samples.is_empty() {
        return Error::e_explain(
            ErrorType::InternalError,
            format!("no sample files in {}", dir.display()),
        );
    }
    zstd::dict::from_samples(&samples, MAX_DICT_SIZE).explain_err(ErrorType::InternalError, |e| {
        format!("train a dictionary on {} samples: {e}", samples.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/test")
    }

    #[test]
    fn trains_on_the_samples_deterministically() {
        let dict = try_train(samples_dir()).unwrap();
        assert!(
            !dict.is_empty() && dict.len() <= MAX_DICT_SIZE,
            "{}",
            dict.len()
        );
        // A trained dictionary starts with zstd's dictionary magic number.
        assert_eq!(dict[..4], [0x37, 0xa4, 0x30, 0xec]);
        assert_eq!(train(samples_dir()), dict);
    }

    #[test]
    fn reports_missing_and_empty_directories() {
        let err = try_train(samples_dir().join("no-such-dir")).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::FileReadError);

        let empty = std::env::temp_dir().join(format!("header-serde-empty-{}", std::process::id()));
        fs::create_dir_all(&empty).unwrap();
        fs::create_dir_all(empty.join("subdir")).unwrap();
        let err = try_train(&empty).unwrap_err();
        fs::remove_dir_all(&empty).unwrap();
        assert_eq!(err.etype(), &ErrorType::InternalError);
    }

    #[test]
    #[should_panic(expected = "cannot train a header dictionary")]
    fn train_panics_where_try_train_errs() {
        train(samples_dir().join("no-such-dir"));
    }
}
