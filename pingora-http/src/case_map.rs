//! The record of header-name spellings kept beside an [`HMap`], and the HTTP/1 writer.
//!
//! # Invariant
//!
//! The header map is the only source of truth for *which* headers exist, their values and
//! their order; the spellings only say how names are written. For the `k`-th value of a name
//! in the map, the spelling used is the `k`-th recorded spelling of that name, and the
//! [default spelling](crate::default_spelling) when there are fewer than `k + 1`. Hence a
//! header added behind our back (through `DerefMut`) is still written, one removed behind our
//! back is not, and nothing ever depends on two maps iterating in the same order.
//!
//! # Cost
//!
//! The spellings are a plain `Vec`, kept in the order the map iterates in, so writing the
//! head walks both in step: one comparison per header, no hashing, no allocation. Keeping
//! that order mirrors how [`HMap`] orders entries (new names last, a removed name's slot taken
//! by the last name); should a future `http` order them differently, the writer notices the
//! first spelling that does not fit and looks spellings up by name instead, which is slower
//! but gives the same bytes.

use std::ptr;

use bytes::BufMut;
use http::header::{AsHeaderName, HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::case_header_name::{default_spelling, CaseHeaderName, IntoCaseHeaderName};
use crate::{HMap, HeaderNameVariant};

/// Spellings of the names in a header map; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct CaseMap {
    /// `None` when case is not preserved (`build_no_case`, conversions from `http` parts).
    spellings: Option<Vec<CaseHeaderName>>,
    /// The map may have been changed without us (through `DerefMut`); the spellings must be
    /// realigned before they are edited.
    stale: bool,
}

// === impl CaseMap ===

impl CaseMap {
    /// A record that preserves case, with room for `capacity` headers (pass the map's
    /// capacity, so both grow at the same time).
    pub(crate) fn with_case(capacity: usize) -> Self {
        CaseMap {
            spellings: Some(Vec::with_capacity(capacity)),
            stale: false,
        }
    }

    /// A record that keeps no spellings: every name takes its default spelling.
    pub(crate) fn no_case() -> Self {
        CaseMap {
            spellings: None,
            stale: false,
        }
    }

    /// Whether spellings are kept.
    pub(crate) fn has_case(&self) -> bool {
        self.spellings.is_some()
    }

    /// Notes that the map is about to be changed without us.
    #[inline]
    pub(crate) fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Adds a value to `name` after any existing ones; returns whether `name` had values.
    pub(crate) fn append(
        &mut self,
        headers: &mut HMap,
        name: impl IntoCaseHeaderName,
        value: HeaderValue,
    ) -> Result<bool> {
        let (spelling, name) = parse_name(name)?;
        self.realign(headers);
        let existed = headers
            .try_append(name, value)
            .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
        if let Some(spellings) = &mut self.spellings {
            // The new value goes last among the values of its name, which sit together.
            match existed.then(|| spellings.iter().rposition(|s| s.same_name(&spelling))) {
                Some(Some(last)) => spellings.insert(last + 1, spelling),
                _ => spellings.push(spelling),
            }
        }
        Ok(existed)
    }

    /// Replaces all values of `name` with `value`, spelled as given.
    pub(crate) fn insert(
        &mut self,
        headers: &mut HMap,
        name: impl IntoCaseHeaderName,
        value: HeaderValue,
    ) -> Result<()> {
        let (spelling, name) = parse_name(name)?;
        self.realign(headers);
        let replaced = headers
            .try_insert(name, value)
            .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
        let Some(spellings) = &mut self.spellings else {
            return Ok(());
        };
        // The map keeps the name where it was, now with a single value.
        match replaced.and_then(|_| spellings.iter().position(|s| s.same_name(&spelling))) {
            Some(first) => {
                let later = first + 1;
                if spellings[later..].iter().any(|s| s.same_name(&spelling)) {
                    let mut index = 0;
                    spellings.retain(|s| {
                        let keep = index < later || !s.same_name(&spelling);
                        index += 1;
                        keep
                    });
                }
                spellings[first] = spelling;
            }
            None => spellings.push(spelling),
        }
        Ok(())
    }

    /// Removes every value of `name`, returning the first.
    pub(crate) fn remove<'a, N>(&mut self, headers: &mut HMap, name: &'a N) -> Option<HeaderValue>
    where
        N: ?Sized,
        &'a N: 'a + AsHeaderName,
    {
        self.realign(headers);
        let Some(spellings) = &mut self.spellings else {
            return headers.remove(name);
        };
        // Find where the name's values sit in iteration order, while they are still there.
        let (start, count, in_step) = locate(headers, spellings, name)?;
        let removed = headers.remove(name);
        if in_step {
            follow_swap_remove(spellings, start, count);
        } else {
            self.stale = true;
            self.realign(headers);
        }
        removed
    }

    /// The headers with the spelling each is written with, in the map's order.
    pub(crate) fn iter<'a>(&'a self, headers: &'a HMap) -> SpelledIter<'a> {
        let spellings = self.spellings.as_deref();
        SpelledIter {
            inner: headers.iter(),
            spellings: spellings.unwrap_or_default(),
            has_case: spellings.is_some(),
            index: 0,
            in_step: spellings.is_some(),
            group: None,
            scan_from: 0,
        }
    }

    /// Writes `Name: value\r\n` for every header.
    pub(crate) fn write_h1(&self, headers: &HMap, buf: &mut impl BufMut) {
        for (name, value) in self.iter(headers) {
            buf.put_slice(name.as_slice());
            buf.put_slice(b": ");
            buf.put_slice(value.as_bytes());
            buf.put_slice(b"\r\n");
        }
    }

    /// Whether every header has the spelling at its own position: the writer's fast path.
    #[cfg(test)]
    pub(crate) fn in_step(&self, headers: &HMap) -> bool {
        self.spellings.as_ref().is_some_and(|spellings| {
            spellings.len() == headers.len()
                && spellings
                    .iter()
                    .zip(headers.iter())
                    .all(|(s, (n, _))| s.spells(n))
        })
    }

    /// After changes made without us, rebuilds the spellings in the map's order, keeping
    /// each recorded spelling that still has a value and dropping the rest.
    #[inline]
    fn realign(&mut self, headers: &HMap) {
        // Called before every edit, and almost never needed: the check stays inline.
        if std::mem::take(&mut self.stale) {
            self.rebuild(headers);
        }
    }

    /// The work of [`realign`](Self::realign).
    #[cold]
    fn rebuild(&mut self, headers: &HMap) {
        let Some(spellings) = &mut self.spellings else {
            return;
        };
        let mut old = std::mem::replace(spellings, Vec::with_capacity(headers.len()));
        let mut group: Option<&HeaderName> = None;
        let mut scan_from = 0;
        for (name, _) in headers.iter() {
            if group != Some(name) {
                group = Some(name);
                scan_from = 0;
            }
            let found = old
                .get(scan_from..)
                .and_then(|rest| rest.iter().position(|s| s.spells(name)));
            match found {
                Some(offset) => {
                    let at = scan_from + offset;
                    spellings.push(std::mem::take(&mut old[at]));
                    scan_from = at + 1;
                }
                None => {
                    spellings.push(CaseHeaderName::from(name));
                    scan_from = old.len();
                }
            }
        }
    }
}

/// Validates a name; returns its spelling and the map key.
fn parse_name(name: impl IntoCaseHeaderName) -> Result<(CaseHeaderName, HeaderName)> {
    let spelling = name.into_case_header_name();
    match HeaderName::from_bytes(spelling.as_slice()) {
        Ok(key) => Ok((spelling, key)),
        Err(e) => Err(Error::because(
            ErrorType::InvalidHTTPHeader,
            format!(
                "invalid header name {:?}",
                spelling.as_slice().escape_ascii().to_string()
            ),
            e,
        )),
    }
}

/// Where the values of `name` start in iteration order, how many there are, and whether
/// the spellings at those positions are theirs.
fn locate<'a, N>(
    headers: &HMap,
    spellings: &[CaseHeaderName],
    name: &'a N,
) -> Option<(usize, usize, bool)>
where
    N: ?Sized,
    &'a N: 'a + AsHeaderName,
{
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let count = 1 + values.count();
    // `get_all` and `iter` hand out references into the same storage, so the first value is
    // found by address, which also yields the key without knowing how `name` spells it.
    let (start, (key, _)) = headers
        .iter()
        .enumerate()
        .find(|(_, (_, value))| ptr::eq(*value, first))?;
    let in_step = spellings.len() == headers.len()
        && spellings
            .get(start..start + count)
            .is_some_and(|run| run.iter().all(|s| s.spells(key)));
    Some((start, count, in_step))
}

/// Mirrors [`HMap::remove`] moving its last name into the removed name's slot: removes the
/// `count` spellings at `start` and moves the trailing run of one name to `start`.
///
/// Only an optimisation: if the map orders entries differently, the writer still finds the
/// right spellings by name. The run is moved only if no spelling it would jump over has its
/// name, so the relative order of one name's spellings is kept either way.
fn follow_swap_remove(spellings: &mut Vec<CaseHeaderName>, start: usize, count: usize) {
    let end = start + count;
    let Some(last) = spellings.last() else {
        return;
    };
    let run = spellings
        .iter()
        .rev()
        .take_while(|s| s.same_name(last))
        .count();
    let run_start = spellings.len() - run;
    let movable = run_start >= end && !spellings[end..run_start].iter().any(|s| s.same_name(last));
    if !movable {
        spellings.drain(start..end);
    } else if count == 1 && run == 1 {
        // The common case, done exactly as the map does it.
        spellings.swap_remove(start);
    } else {
        spellings.drain(start..end);
        for _ in 0..run {
            let moved = spellings.pop().expect("the run is still at the end");
            spellings.insert(start, moved);
        }
    }
}

/// Iterator over headers and their spellings; see [`CaseMap::iter`].
#[derive(Debug)]
pub(crate) struct SpelledIter<'a> {
    inner: http::header::Iter<'a, HeaderValue>,
    spellings: &'a [CaseHeaderName],
    has_case: bool,
    /// Position of the next header in iteration order.
    index: usize,
    /// Every header so far had the spelling at its own position, so the next one is tried
    /// there first.
    in_step: bool,
    /// The name of the previous header, and where to look for its next spelling.
    group: Option<&'a HeaderName>,
    scan_from: usize,
}

// === impl SpelledIter ===

impl<'a> SpelledIter<'a> {
    /// The recorded spelling for the next value of `name`, found by name.
    #[cold]
    fn find(&mut self, name: &'a HeaderName) -> Option<&'a CaseHeaderName> {
        if self.group != Some(name) {
            self.group = Some(name);
            self.scan_from = 0;
        }
        let rest = self.spellings.get(self.scan_from..)?;
        match rest.iter().position(|s| s.spells(name)) {
            Some(offset) => {
                self.scan_from += offset + 1;
                Some(&rest[offset])
            }
            None => {
                self.scan_from = self.spellings.len();
                None
            }
        }
    }
}

impl<'a> Iterator for SpelledIter<'a> {
    type Item = (HeaderNameVariant<'a>, &'a HeaderValue);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (name, value) = self.inner.next()?;
        let index = self.index;
        self.index += 1;
        if self.in_step {
            match self.spellings.get(index) {
                Some(spelling) if spelling.spells(name) => {
                    return Some((HeaderNameVariant::Case(spelling), value));
                }
                _ => {
                    // Every spelling before `index` belongs to a header already visited, so
                    // the search for this name may start here.
                    self.in_step = false;
                    self.group = Some(name);
                    self.scan_from = index;
                }
            }
        }
        let spelled = match self.has_case.then(|| self.find(name)).flatten() {
            Some(spelling) => HeaderNameVariant::Case(spelling),
            None => HeaderNameVariant::Titled(default_spelling(name)),
        };
        Some((spelled, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spellings: &[CaseHeaderName]) -> Vec<&str> {
        spellings
            .iter()
            .map(|s| std::str::from_utf8(s.as_slice()).expect("ASCII"))
            .collect()
    }

    fn spellings(list: &[&'static str]) -> Vec<CaseHeaderName> {
        list.iter().map(|s| s.into_case_header_name()).collect()
    }

    #[test]
    fn swap_remove_moves_the_last_run_into_the_gap() {
        let mut v = spellings(&["A", "B", "b", "C", "D", "d"]);
        follow_swap_remove(&mut v, 1, 2);
        assert_eq!(names(&v), ["A", "D", "d", "C"]);

        let mut v = spellings(&["A", "B", "C"]);
        follow_swap_remove(&mut v, 0, 1);
        assert_eq!(names(&v), ["C", "B"]);

        let mut v = spellings(&["A", "B", "b"]);
        follow_swap_remove(&mut v, 1, 2);
        assert_eq!(names(&v), ["A"]);
    }

    #[test]
    fn swap_remove_never_reorders_one_names_spellings() {
        // "dd" also appears between the gap and the trailing run: moving the run to the
        // gap would put its second spelling first, so the spellings are only drained.
        let mut v = spellings(&["A", "X", "Dd", "B", "dD"]);
        follow_swap_remove(&mut v, 1, 1);
        assert_eq!(names(&v), ["A", "Dd", "B", "dD"]);
    }
}
