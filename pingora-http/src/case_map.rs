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
//! Most heads spell every name the conventional way (`Content-Length`, as nginx, curl and
//! browsers do) or all in lowercase (as HTTP/2 peers and some clients do). Such heads keep no
//! spellings at all: one bit per header says "lowercase", the rest take their default
//! spelling, so parsing, cloning and writing them allocate nothing for names. The first
//! spelling that is neither (or an edit that would move headers about) turns the bits into
//! a list of spellings.
//!
//! That list is a plain `Vec`, kept in the order the map iterates in, so writing the head
//! walks both in step: one comparison per header, no hashing, no allocation. Keeping that
//! order mirrors how [`HMap`] orders entries (new names last, a removed name's slot taken by
//! the last name); should a future `http` order them differently, the writer notices the
//! first spelling that does not fit and looks spellings up by name instead, which is slower
//! but gives the same bytes. The bits rely only on new names going last, which is how a map
//! built by appending iterates.

use std::ptr;

use bytes::BufMut;
use http::header::{AsHeaderName, HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::case_header_name::{
    default_spelling, same_bytes, CaseHeaderName, IntoCaseHeaderName, WellKnown,
};
use crate::{HMap, HeaderNameVariant};

/// Spellings of the names in a header map; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct CaseMap {
    spellings: Spellings,
    /// The map may have been changed without us (through `DerefMut`); the spellings must be
    /// realigned before they are edited.
    stale: bool,
}

/// How the spellings are kept.
#[derive(Debug, Clone)]
enum Spellings {
    /// Case is not preserved (`build_no_case`, conversions from `http` parts).
    Off,
    /// Every header is spelled the default way, except that the header at position `i` of
    /// the map's order is spelled as its lowercase name when bit `i` is set (so only the
    /// first [`BITS`] can be). Valid after any edit while no bit is set.
    Bits(u64),
    /// One spelling per header, in the map's order (see the module docs).
    List(Vec<CaseHeaderName>),
}

/// Headers whose lowercase spelling [`Spellings::Bits`] can record.
const BITS: usize = u64::BITS as usize;

/// How a name is spelled, compared with the forms [`Spellings::Bits`] records.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The [default spelling](crate::default_spelling).
    Default,
    /// The lowercase name, when that is not the default.
    Lowercase,
    /// Anything else: only a list can record it.
    Other,
}

impl Form {
    /// The form of `spelling`, a spelling of `name`, which is `known` if well known.
    #[inline(always)]
    fn of(spelling: &CaseHeaderName, name: &HeaderName, known: Option<WellKnown>) -> Form {
        let spelled = spelling.as_slice();
        match known {
            Some(known) if same_bytes(spelled, known.canonical().as_bytes()) => Form::Default,
            Some(known) if same_bytes(spelled, known.lowercase().as_bytes()) => Form::Lowercase,
            Some(_) => Form::Other,
            // Other names are spelled in lowercase by default.
            None if same_bytes(spelled, name.as_str().as_bytes()) => Form::Default,
            None => Form::Other,
        }
    }
}

// === impl CaseMap ===

impl CaseMap {
    /// A record that preserves case.
    pub(crate) fn with_case() -> Self {
        CaseMap {
            spellings: Spellings::Bits(0),
            stale: false,
        }
    }

    /// A record that keeps no spellings: every name takes its default spelling.
    pub(crate) fn no_case() -> Self {
        CaseMap {
            spellings: Spellings::Off,
            stale: false,
        }
    }

    /// Whether spellings are kept.
    pub(crate) fn has_case(&self) -> bool {
        !matches!(self.spellings, Spellings::Off)
    }

    /// Notes that `headers`, the map, is about to be changed without us.
    #[inline]
    pub(crate) fn mark_stale(&mut self, headers: &HMap) {
        // Lowercase bits name positions, which the change may move: they become a list
        // while they still match the map, and the list is realigned after the change.
        if matches!(self.spellings, Spellings::Bits(bits) if bits != 0) {
            self.make_list(headers);
        }
        self.stale = true;
    }

    /// Turns recorded bits into a list of spellings, one per header of `headers`.
    #[cold]
    fn make_list(&mut self, headers: &HMap) {
        let Spellings::Bits(bits) = self.spellings else {
            return;
        };
        let mut list = Vec::with_capacity(headers.capacity().max(headers.len() + 1));
        for (i, (name, _)) in headers.iter().enumerate() {
            list.push(if i < BITS && bits >> i & 1 == 1 {
                CaseHeaderName::from_slice(name.as_str().as_bytes())
            } else {
                CaseHeaderName::from(name)
            });
        }
        self.spellings = Spellings::List(list);
    }

    /// With bits recorded, whether they can record a value of `name` spelled `spelling`
    /// about to be added or to replace the name's values: `Some` with the position to mark
    /// lowercase, if any, once the map has the value. Otherwise the bits become a list (if
    /// they were not one already) and `None` says to record the spelling there.
    #[inline(always)]
    fn bits_for(&mut self, headers: &HMap, name: &ParsedName) -> Option<Option<usize>> {
        let Spellings::Bits(bits) = self.spellings else {
            return None;
        };
        let ParsedName {
            spelling,
            name,
            known,
        } = name;
        let form = Form::of(spelling, name, *known);
        if form == Form::Default && bits == 0 {
            // Every header stays default-spelled wherever the map puts it.
            return Some(None);
        }
        let at = headers.len();
        if form != Form::Other && at < BITS && !headers.contains_key(name) {
            // A new name goes last, moving nothing.
            return Some((form == Form::Lowercase).then_some(at));
        }
        self.make_list(headers);
        None
    }

    /// Marks the header at `at` as spelled in lowercase (see [`bits_for`](Self::bits_for)).
    #[inline]
    fn mark_lowercase(&mut self, at: Option<usize>) {
        if let (Some(at), Spellings::Bits(bits)) = (at, &mut self.spellings) {
            *bits |= 1 << at;
        }
    }

    /// Adds a value to `name` after any existing ones; returns whether `name` had values.
    pub(crate) fn append(
        &mut self,
        headers: &mut HMap,
        name: impl IntoCaseHeaderName,
        value: HeaderValue,
    ) -> Result<bool> {
        let parsed = parse_name(name)?;
        self.realign(headers);
        let bits = self.bits_for(headers, &parsed);
        let ParsedName { spelling, name, .. } = parsed;
        let existed = headers
            .try_append(name, value)
            .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
        if let Some(lowercase) = bits {
            self.mark_lowercase(lowercase);
            return Ok(existed);
        }
        if let Spellings::List(spellings) = &mut self.spellings {
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
        let parsed = parse_name(name)?;
        self.realign(headers);
        let bits = self.bits_for(headers, &parsed);
        let ParsedName { spelling, name, .. } = parsed;
        let replaced = headers
            .try_insert(name, value)
            .or_err(ErrorType::InvalidHTTPHeader, "too many headers")?;
        if let Some(lowercase) = bits {
            self.mark_lowercase(lowercase);
            return Ok(());
        }
        let Spellings::List(spellings) = &mut self.spellings else {
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
        if let Spellings::Bits(bits) = self.spellings {
            if bits == 0 || !headers.contains_key(name) {
                return headers.remove(name);
            }
            // The map moves its last name into the removed one's place: the bits of both
            // would move, which a list follows.
            self.make_list(headers);
        }
        let Spellings::List(spellings) = &mut self.spellings else {
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
        let (spellings, lowercase, listed): (&[CaseHeaderName], u64, bool) = match &self.spellings {
            Spellings::Off => (&[], 0, false),
            Spellings::Bits(bits) => (&[], *bits, false),
            Spellings::List(spellings) => (spellings, 0, true),
        };
        SpelledIter {
            inner: headers.iter(),
            spellings,
            lowercase,
            has_case: listed,
            index: 0,
            in_step: listed,
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
        match &self.spellings {
            Spellings::Off => false,
            Spellings::Bits(_) => true,
            Spellings::List(spellings) => {
                spellings.len() == headers.len()
                    && spellings
                        .iter()
                        .zip(headers.iter())
                        .all(|(s, (n, _))| s.spells(n))
            }
        }
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
        // Bits are only ever left in place when none is set, which suits any map.
        let Spellings::List(spellings) = &mut self.spellings else {
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

/// A name about to be added: as spelled, as the map keys it, and which well-known name it
/// is, if one.
struct ParsedName {
    spelling: CaseHeaderName,
    name: HeaderName,
    known: Option<WellKnown>,
}

/// Validates a name.
#[inline(always)]
fn parse_name(name: impl IntoCaseHeaderName) -> Result<ParsedName> {
    let spelling = name.into_case_header_name();
    // Most names are well known: one lookup gives the key, with no case-folding pass.
    if let Some(known) = WellKnown::find(spelling.as_slice()) {
        return Ok(ParsedName {
            spelling,
            name: known.name(),
            known: Some(known),
        });
    }
    match HeaderName::from_bytes(spelling.as_slice()) {
        Ok(name) => Ok(ParsedName {
            spelling,
            name,
            known: None,
        }),
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
    /// Positions spelled in lowercase, when the spellings are kept as bits.
    lowercase: u64,
    /// Whether there is a list of spellings to look in.
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
        if self.lowercase != 0 && index < BITS && self.lowercase >> index & 1 == 1 {
            return Some((HeaderNameVariant::Titled(name.as_str()), value));
        }
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

    fn written(case: &CaseMap, headers: &HMap) -> Vec<String> {
        case.iter(headers)
            .map(|(name, _)| String::from_utf8(name.as_slice().to_vec()).expect("ASCII"))
            .collect()
    }

    #[test]
    fn default_and_lowercase_spellings_keep_no_list() {
        let mut headers = HMap::new();
        let mut case = CaseMap::with_case();
        let value = || HeaderValue::from_static("v");
        for name in ["Host", "user-agent", "x-custom", "accept"] {
            case.append(&mut headers, name, value()).expect("valid");
        }
        case.insert(&mut headers, "Content-Length", value())
            .expect("valid");
        assert!(
            matches!(case.spellings, Spellings::Bits(0b1010)),
            "{case:?}"
        );
        let spelled = ["Host", "user-agent", "x-custom", "accept", "Content-Length"];
        assert_eq!(written(&case, &headers), spelled);

        // A spelling of another form needs a list, as does an edit that moves headers
        // (a second value of a name, a removal) while a bit is set.
        let mut other = case.clone();
        let mut other_headers = headers.clone();
        other
            .append(&mut other_headers, "X-Other", value())
            .expect("valid");
        assert!(matches!(other.spellings, Spellings::List(_)));
        assert_eq!(
            written(&other, &other_headers),
            [&spelled[..], &["X-Other"]].concat()
        );
        let mut second = case.clone();
        let mut second_headers = headers.clone();
        second
            .append(&mut second_headers, "Host", value())
            .expect("valid");
        assert!(matches!(second.spellings, Spellings::List(_)));
        assert_eq!(written(&second, &second_headers)[..2], ["Host", "Host"]);
        let mut removed = case.clone();
        assert!(removed.remove(&mut headers.clone(), "host").is_some());
        assert!(matches!(removed.spellings, Spellings::List(_)));

        // Without lowercase names, nothing positional is recorded, so nothing needs one.
        let mut plain = CaseMap::with_case();
        let mut headers = HMap::new();
        for name in ["Host", "Accept", "Host"] {
            plain.append(&mut headers, name, value()).expect("valid");
        }
        assert!(plain.remove(&mut headers, "accept").is_some());
        plain.mark_stale(&headers);
        headers.append("via", value());
        plain
            .insert(&mut headers, "Server", value())
            .expect("valid");
        assert!(matches!(plain.spellings, Spellings::Bits(0)));
        assert_eq!(written(&plain, &headers), ["Host", "Host", "Via", "Server"]);
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
