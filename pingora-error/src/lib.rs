//! Errors for the Pingora framework.
//!
//! Every fallible API in Pingora returns [`Result<T>`], whose error is a boxed [`Error`]
//! ([`BError`]). An [`Error`] records
//!
//! * **what** went wrong: an [`ErrorType`], such as [`ErrorType::ConnectRefused`];
//! * **who** is to blame: an [`ErrorSource`] (upstream, downstream or internal), which the proxy
//!   uses to choose the status code it answers with;
//! * **whether to try again**: a [`RetryType`], which may depend on whether the connection that
//!   failed was reused from a pool;
//! * an optional **context** string and an optional **cause**, any [`std::error::Error`], so
//!   errors form a chain that [`Display`](std::fmt::Display) prints in one line.
//!
//! ```
//! use pingora_error::{Error, ErrorType, OrErr, Result};
//!
//! fn read_config(path: &str) -> Result<String> {
//!     std::fs::read_to_string(path).or_err(ErrorType::FileReadError, "while loading config")
//! }
//!
//! let err = read_config("/definitely/not/here").unwrap_err();
//! assert_eq!(err.etype(), &ErrorType::FileReadError);
//! assert!(err.to_string().starts_with("FileReadError context: while loading config cause: "));
//! assert!(!err.retry());
//! ```
//!
//! A new error inherits the retry decision of a cause that is itself an [`Error`]; any other
//! cause makes it not retryable until [`Error::set_retry`] says otherwise.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod immut_str;
mod kind;
mod traits;

use std::fmt;

pub use immut_str::ImmutStr;
pub use kind::{ErrorSource, ErrorType, RetryType};
pub use std::error::Error as ErrorTrait;
pub use traits::{Context, OkOrErr, OrErr};

/// The boxed [`Error`]: the way errors are passed around, one pointer wide.
pub type BError = Box<Error>;

/// `std::result::Result` with [`BError`] as the default error.
pub type Result<T, E = BError> = std::result::Result<T, E>;

/// An error: its kind, the side to blame, the retry decision, a context string and a cause.
///
/// The fields are public because Pingora 0.8 code reads and sets them directly; the accessor
/// methods are the preferred interface.
#[derive(Debug)]
pub struct Error {
    /// What went wrong.
    pub etype: ErrorType,
    /// Who is to blame.
    pub esource: ErrorSource,
    /// Whether the failed operation may be tried again.
    pub retry: RetryType,
    /// The error that caused this one.
    pub cause: Option<Box<dyn ErrorTrait + Send + Sync>>,
    /// A description of what was being done when the error happened.
    pub context: Option<ImmutStr>,
}

// === impl Error ===

impl Error {
    /// Builds an error from all of its parts. The retry decision is inherited from `cause`
    /// when it is an [`Error`], and is `false` otherwise.
    pub fn create(
        etype: ErrorType,
        esource: ErrorSource,
        context: Option<ImmutStr>,
        cause: Option<Box<dyn ErrorTrait + Send + Sync>>,
    ) -> BError {
        let retry = cause
            .as_deref()
            .and_then(as_pingora_error)
            .map_or(RetryType::Decided(false), |c| c.retry);
        Box::new(Error {
            etype,
            esource,
            retry,
            cause,
            context,
        })
    }

    #[inline]
    fn with_source(etype: ErrorType, esource: ErrorSource) -> BError {
        Self::create(etype, esource, None, None)
    }

    /// A new error of the given kind, with no side blamed yet.
    pub fn new(etype: ErrorType) -> BError {
        Self::with_source(etype, ErrorSource::Unset)
    }

    /// A new error blamed on the upstream.
    pub fn new_up(etype: ErrorType) -> BError {
        Self::with_source(etype, ErrorSource::Upstream)
    }

    /// A new error blamed on the downstream.
    pub fn new_down(etype: ErrorType) -> BError {
        Self::with_source(etype, ErrorSource::Downstream)
    }

    /// A new internal error.
    pub fn new_in(etype: ErrorType) -> BError {
        Self::with_source(etype, ErrorSource::Internal)
    }

    /// A new error of the user-defined kind [`ErrorType::Custom`]`(name)`.
    pub fn new_str(name: &'static str) -> BError {
        Self::new(ErrorType::Custom(name))
    }

    /// `Err(Error::new(etype))`.
    pub fn err<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new(etype))
    }

    /// `Err(Error::new_up(etype))`.
    pub fn err_up<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_up(etype))
    }

    /// `Err(Error::new_down(etype))`.
    pub fn err_down<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_down(etype))
    }

    /// `Err(Error::new_in(etype))`.
    pub fn err_in<T>(etype: ErrorType) -> Result<T> {
        Err(Self::new_in(etype))
    }

    /// A new error caused by `cause`, with `context` saying what was being done.
    ///
    /// Use it when the context adds something the cause does not already say; otherwise pass
    /// the cause on as it is.
    ///
    /// ```
    /// use pingora_error::{Error, ErrorType};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::Other, "disk on fire");
    /// let err = Error::because(ErrorType::FileWriteError, "saving state", io);
    /// assert_eq!(err.to_string(), "FileWriteError context: saving state cause: disk on fire");
    /// ```
    pub fn because<S: Into<ImmutStr>, E: Into<Box<dyn ErrorTrait + Send + Sync>>>(
        etype: ErrorType,
        context: S,
        cause: E,
    ) -> BError {
        Self::create(
            etype,
            ErrorSource::Unset,
            Some(context.into()),
            Some(cause.into()),
        )
    }

    /// `Err(Error::because(etype, context, cause))`.
    pub fn e_because<T, S: Into<ImmutStr>, E: Into<Box<dyn ErrorTrait + Send + Sync>>>(
        etype: ErrorType,
        context: S,
        cause: E,
    ) -> Result<T> {
        Err(Self::because(etype, context, cause))
    }

    /// A new error with a context string and no cause.
    pub fn explain<S: Into<ImmutStr>>(etype: ErrorType, context: S) -> BError {
        Self::create(etype, ErrorSource::Unset, Some(context.into()), None)
    }

    /// `Err(Error::explain(etype, context))`.
    pub fn e_explain<T, S: Into<ImmutStr>>(etype: ErrorType, context: S) -> Result<T> {
        Err(Self::explain(etype, context))
    }

    /// What went wrong.
    pub fn etype(&self) -> &ErrorType {
        &self.etype
    }

    /// Who is to blame.
    pub fn esource(&self) -> &ErrorSource {
        &self.esource
    }

    /// Whether the failed operation may be tried again. An undecided
    /// [`RetryType::ReusedOnly`] counts as `false`; see [`RetryType::retry`].
    pub fn retry(&self) -> bool {
        self.retry.retry()
    }

    /// Decides whether the failed operation may be tried again.
    pub fn set_retry(&mut self, retry: bool) {
        self.retry = RetryType::Decided(retry);
    }

    /// The name of the error kind.
    pub fn reason_str(&self) -> &str {
        self.etype.as_str()
    }

    /// The name of the side to blame (empty when unset).
    pub fn source_str(&self) -> &str {
        self.esource.as_str()
    }

    /// Blames the upstream.
    pub fn as_up(&mut self) {
        self.esource = ErrorSource::Upstream;
    }

    /// Blames the downstream.
    pub fn as_down(&mut self) {
        self.esource = ErrorSource::Downstream;
    }

    /// Marks the error as internal.
    pub fn as_in(&mut self) {
        self.esource = ErrorSource::Internal;
    }

    /// Blames the upstream and returns the error.
    pub fn into_up(mut self: BError) -> BError {
        self.as_up();
        self
    }

    /// Blames the downstream and returns the error.
    pub fn into_down(mut self: BError) -> BError {
        self.as_down();
        self
    }

    /// Marks the error as internal and returns it.
    pub fn into_in(mut self: BError) -> BError {
        self.as_in();
        self
    }

    /// `Err(self)`.
    pub fn into_err<T>(self: BError) -> Result<T> {
        Err(self)
    }

    /// Replaces the cause. The retry decision is left as it is.
    pub fn set_cause<C: Into<Box<dyn ErrorTrait + Send + Sync>>>(&mut self, cause: C) {
        self.cause = Some(cause.into());
    }

    /// Replaces the context string.
    pub fn set_context<T: Into<ImmutStr>>(&mut self, context: T) {
        self.context = Some(context.into());
    }

    /// The context string, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_ref().map(ImmutStr::as_str)
    }

    /// Wraps this error in a new one of the same kind, side and retry decision, with more
    /// context. Display skips the repeated kind and side.
    ///
    /// ```
    /// use pingora_error::{Error, ErrorType};
    ///
    /// let err = Error::explain(ErrorType::ReadError, "header").more_context("while proxying");
    /// assert_eq!(err.to_string(), "ReadError context: while proxying cause: context: header");
    /// ```
    pub fn more_context<T: Into<ImmutStr>>(self: BError, context: T) -> BError {
        let (etype, esource, retry) = (self.etype.clone(), self.esource, self.retry);
        let mut wrapped = Self::because(etype, context, self);
        wrapped.esource = esource;
        wrapped.retry = retry;
        wrapped
    }

    /// The cause, if it is itself an [`Error`].
    pub fn cause_error(&self) -> Option<&Error> {
        self.cause.as_deref().and_then(as_pingora_error)
    }

    /// The kind of the innermost [`Error`] of the chain.
    pub fn root_etype(&self) -> &ErrorType {
        let mut current = self;
        while let Some(next) = current.cause_error() {
            current = next;
        }
        &current.etype
    }

    /// The innermost error of the chain, of whatever type.
    pub fn root_cause(&self) -> &(dyn ErrorTrait + Send + Sync + 'static) {
        let mut current = self;
        loop {
            match current.cause.as_deref() {
                None => return current,
                Some(cause) => match as_pingora_error(cause) {
                    Some(next) => current = next,
                    None => return cause,
                },
            }
        }
    }

    /// Writes this link of the chain, leaving out the side and kind when they repeat those of
    /// the previous link, then the rest of the chain. `first` tracks whether anything has been
    /// written yet, so parts are separated by exactly one space.
    fn fmt_chain(
        &self,
        previous: Option<&Error>,
        first: &mut bool,
        f: &mut fmt::Formatter<'_>,
    ) -> fmt::Result {
        let mut part = |f: &mut fmt::Formatter<'_>, text: fmt::Arguments<'_>| {
            let sep = if *first { "" } else { " " };
            *first = false;
            write!(f, "{sep}{text}")
        };
        let new_source = previous.is_none_or(|p| p.esource != self.esource);
        if new_source && self.esource != ErrorSource::Unset {
            part(f, format_args!("{}", self.esource.as_str()))?;
        }
        if previous.is_none_or(|p| p.etype != self.etype) {
            part(f, format_args!("{}", self.etype.as_str()))?;
        }
        if let Some(context) = &self.context {
            part(f, format_args!("context: {context}"))?;
        }
        let Some(cause) = self.cause.as_deref() else {
            return Ok(());
        };
        match as_pingora_error(cause) {
            // A link that would add nothing of its own (a bare re-wrap) is skipped.
            Some(inner) if !inner.adds_to(self) => inner.fmt_chain(Some(self), first, f),
            Some(inner) => {
                part(f, format_args!("cause:"))?;
                inner.fmt_chain(Some(self), &mut false, f)
            }
            None => part(f, format_args!("cause: {cause}")),
        }
    }

    /// Whether this link, displayed after `previous`, shows any side, kind or context.
    fn adds_to(&self, previous: &Error) -> bool {
        (self.esource != previous.esource && self.esource != ErrorSource::Unset)
            || self.etype != previous.etype
            || self.context.is_some()
    }
}

/// Sees through the two ways an [`Error`] ends up stored as a cause: boxed directly
/// (`Box<Error>` coerced to `Box<dyn Error>`), or boxed twice (`BError` converted with `Into`).
fn as_pingora_error<'a>(cause: &'a (dyn ErrorTrait + Send + Sync + 'static)) -> Option<&'a Error> {
    cause
        .downcast_ref::<Error>()
        .or_else(|| cause.downcast_ref::<BError>().map(|b| &**b))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_chain(None, &mut true, f)
    }
}

impl ErrorTrait for Error {
    fn source(&self) -> Option<&(dyn ErrorTrait + 'static)> {
        let cause = self.cause.as_deref()?;
        match as_pingora_error(cause) {
            Some(inner) => Some(inner),
            None => Some(cause),
        }
    }
}

#[cfg(test)]
mod tests;
