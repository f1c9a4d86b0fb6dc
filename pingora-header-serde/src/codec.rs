//! zstd compression with one set of contexts and buffers per thread.
//!
//! A zstd context holds sizeable tables (and, with a dictionary, the dictionary digested for
//! fast use), so each thread creates one compressor and one decompressor on first use and keeps
//! them; `ThreadLocal` keeps them per [`HeaderSerde`](crate::HeaderSerde) instance, since each
//! instance may have its own dictionary.

use std::cell::RefCell;

use pingora_error::{Error, ErrorType, OrErr, Result};
use thread_local::ThreadLocal;
use zstd::bulk::{Compressor, Decompressor};
use zstd::zstd_safe;

/// The largest uncompressed head accepted: bounds what a corrupt or hostile frame can make
/// `decompress` allocate.
pub(crate) const MAX_HEAD_SIZE: usize = 1024 * 1024;

/// Scratch buffers that grew past this are shrunk back after use, so one huge head does not
/// pin memory in every thread for good.
const SCRATCH_KEEP: usize = 64 * 1024;

/// A zstd codec with an optional dictionary.
pub(crate) struct Codec {
    level: i32,
    dict: Option<Box<[u8]>>,
    contexts: ThreadLocal<RefCell<Contexts>>,
}

/// One thread's contexts and scratch buffers.
struct Contexts {
    compressor: Compressor<'static>,
    decompressor: Decompressor<'static>,
    /// The uncompressed head being serialized.
    input: Vec<u8>,
    /// The compressed output, before it is copied out at its exact size.
    output: Vec<u8>,
}

fn zstd_error(context: &'static str) -> impl FnOnce(std::io::Error) -> Box<Error> {
    move |e| Error::because(ErrorType::InternalError, context, e)
}

impl Codec {
    pub(crate) fn new(level: i32, dict: Option<Vec<u8>>) -> Self {
        Codec {
            level,
            dict: dict.map(Vec::into_boxed_slice),
            contexts: ThreadLocal::new(),
        }
    }

    pub(crate) fn has_dict(&self) -> bool {
        self.dict.is_some()
    }

    /// The capacity of this thread's scratch buffers, if it has any yet.
    #[cfg(test)]
    pub(crate) fn scratch_capacity(&self) -> Option<usize> {
        let contexts = self.contexts.get()?.borrow();
        Some(contexts.input.capacity() + contexts.output.capacity())
    }

    fn new_contexts(&self) -> Result<RefCell<Contexts>> {
        let (compressor, decompressor) = match self.dict.as_deref() {
            Some(dict) => (
                Compressor::with_dictionary(self.level, dict),
                Decompressor::with_dictionary(dict),
            ),
            None => (Compressor::new(self.level), Decompressor::new()),
        };
        let compressor = compressor.map_err(zstd_error("create zstd compressor"))?;
        let decompressor = decompressor.map_err(zstd_error("create zstd decompressor"))?;
        Ok(RefCell::new(Contexts {
            compressor,
            decompressor,
            input: Vec::new(),
            output: Vec::new(),
        }))
    }

    fn with_contexts<R>(&self, f: impl FnOnce(&mut Contexts) -> Result<R>) -> Result<R> {
        let cell = self.contexts.get_or_try(|| self.new_contexts())?;
        let mut contexts = cell
            .try_borrow_mut()
            .or_err(ErrorType::InternalError, "zstd contexts already in use")?;
        let contexts = &mut *contexts;
        let result = f(contexts);
        for buf in [&mut contexts.input, &mut contexts.output] {
            if buf.capacity() > SCRATCH_KEEP {
                buf.clear();
                buf.shrink_to(SCRATCH_KEEP);
            }
        }
        result
    }

    /// Lets `fill` write the uncompressed bytes into a cleared buffer, then compresses them.
    pub(crate) fn compress(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Result<Vec<u8>> {
        self.with_contexts(|ctx| {
            ctx.input.clear();
            fill(&mut ctx.input);
            ctx.output.clear();
            ctx.output
                .reserve(zstd_safe::compress_bound(ctx.input.len()));
            ctx.compressor
                .compress_to_buffer(&ctx.input[..], &mut ctx.output)
                .map_err(zstd_error("compress header"))?;
            Ok(ctx.output.clone())
        })
    }

    /// Decompresses one frame written by [`compress`](Self::compress).
    pub(crate) fn decompress(&self, frame: &[u8]) -> Result<Vec<u8>> {
        let size = match zstd_safe::get_frame_content_size(frame) {
            Ok(Some(size)) => usize::try_from(size).unwrap_or(usize::MAX),
            Ok(None) => {
                return Error::e_explain(ErrorType::InternalError, "zstd frame without size")
            }
            Err(_) => return Error::e_explain(ErrorType::InternalError, "not a zstd frame"),
        };
        if size > MAX_HEAD_SIZE {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("serialized header of {size} bytes is over the limit"),
            );
        }
        self.with_contexts(|ctx| {
            let mut head = Vec::with_capacity(size);
            ctx.decompressor
                .decompress_to_buffer(frame, &mut head)
                .map_err(zstd_error("decompress header"))?;
            if head.len() != size {
                return Error::e_explain(ErrorType::InternalError, "zstd frame size mismatch");
            }
            Ok(head)
        })
    }
}
