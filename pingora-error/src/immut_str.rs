//! A cheap, immutable string used for error context.

use std::borrow::Cow;
use std::fmt;

/// An immutable string that is either borrowed for `'static` or owned.
///
/// Error context is usually a string literal, so the common case costs nothing; when a message
/// has to be built at run time the owned form keeps it without a second allocation.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum ImmutStr {
    /// A string literal.
    Static(&'static str),
    /// A string built at run time.
    Owned(Box<str>),
}

impl ImmutStr {
    /// The text of this string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            ImmutStr::Static(s) => s,
            ImmutStr::Owned(s) => s,
        }
    }

    /// Whether this string borrows a string literal.
    pub fn is_owned(&self) -> bool {
        matches!(self, ImmutStr::Owned(_))
    }
}

impl fmt::Display for ImmutStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ImmutStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for ImmutStr {
    fn from(s: &'static str) -> Self {
        ImmutStr::Static(s)
    }
}

impl From<String> for ImmutStr {
    fn from(s: String) -> Self {
        ImmutStr::Owned(s.into_boxed_str())
    }
}

impl From<Box<str>> for ImmutStr {
    fn from(s: Box<str>) -> Self {
        ImmutStr::Owned(s)
    }
}

impl From<Cow<'static, str>> for ImmutStr {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => ImmutStr::Static(s),
            Cow::Owned(s) => s.into(),
        }
    }
}
