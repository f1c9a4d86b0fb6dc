//! Extension traits that turn foreign errors and `None`s into [`Error`]s.

use crate::{BError, Error, ErrorTrait, ErrorType, ImmutStr, Result};

/// Adds context to the error of a [`Result`] whose error is already a [`BError`].
pub trait Context<T> {
    /// Wraps the error with more context; see [`Error::more_context`].
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Result<T, BError>;
}

impl<T> Context<T> for Result<T, BError> {
    fn err_context<C: Into<ImmutStr>, F: FnOnce() -> C>(self, context: F) -> Result<T, BError> {
        self.map_err(|e| e.more_context(context()))
    }
}

/// Converts the error of any [`Result`] into a [`BError`].
///
/// ```
/// use pingora_error::{ErrorType, OrErr};
///
/// let parsed = "eighty".parse::<u16>().or_err(ErrorType::InternalError, "bad port");
/// assert_eq!(parsed.unwrap_err().etype(), &ErrorType::InternalError);
/// ```
pub trait OrErr<T, E> {
    /// Wraps the error as the cause of a new error of kind `et` with `context`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>;

    /// Like [`OrErr::or_err`], with the context built only on error.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>;

    /// Replaces the error with a new one of kind `et` whose context is built from the old
    /// error, for errors that cannot be kept as a cause.
    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;

    /// Wraps the error as the cause of an [`ErrorType::InternalError`] without context, so `?`
    /// can be used on foreign errors.
    fn or_fail(self) -> Result<T>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>;
}

impl<T, E> OrErr<T, E> for Result<T, E> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>,
    {
        self.map_err(|e| Error::because(et, context, e))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>,
    {
        self.map_err(|e| Error::because(et, context(), e))
    }

    fn explain_err<C: Into<ImmutStr>, F: FnOnce(E) -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.map_err(|e| Error::explain(et, context(e)))
    }

    fn or_fail(self) -> Result<T>
    where
        E: Into<Box<dyn ErrorTrait + Send + Sync>>,
    {
        self.map_err(|e| {
            Error::create(
                ErrorType::InternalError,
                crate::ErrorSource::Unset,
                None,
                Some(e.into()),
            )
        })
    }
}

/// Converts a `None` into a [`BError`].
///
/// ```
/// use pingora_error::{ErrorType, OkOrErr};
///
/// let host: Option<&str> = None;
/// let err = host.or_err(ErrorType::InvalidHTTPHeader, "no Host header").unwrap_err();
/// assert_eq!(err.to_string(), "InvalidHTTPHeader context: no Host header");
/// ```
pub trait OkOrErr<T> {
    /// `Some(v)` becomes `Ok(v)`; `None` an error of kind `et` with `context`.
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError>;

    /// Like [`OkOrErr::or_err`], with the context built only on error.
    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError>;
}

impl<T> OkOrErr<T> for Option<T> {
    fn or_err(self, et: ErrorType, context: &'static str) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context))
    }

    fn or_err_with<C: Into<ImmutStr>, F: FnOnce() -> C>(
        self,
        et: ErrorType,
        context: F,
    ) -> Result<T, BError> {
        self.ok_or_else(|| Error::explain(et, context()))
    }
}
