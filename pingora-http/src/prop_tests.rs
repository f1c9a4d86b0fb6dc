//! Property tests: whatever sequence of edits a head went through, the field lines it writes
//! parse back (with `httparse`) to exactly the headers of its map, in order, each spelled as
//! the crate docs promise.

use std::collections::HashMap;

use http::header::{HeaderName, HeaderValue};
use proptest::prelude::*;

use crate::{default_spelling, HMap, RequestHeader, ResponseHeader};

/// Lowercase names the edits draw from: well-known and custom, so that names collide.
const NAMES: &[&str] = &[
    "host",
    "content-length",
    "set-cookie",
    "etag",
    "via",
    "x-a",
    "x-forwarded-for",
    "x-custom-thing",
];

#[derive(Debug, Clone)]
enum Op {
    /// `append_header` with the name spelled per `case_bits`.
    Append(usize, u32, Vec<u8>),
    /// `insert_header`.
    Insert(usize, u32, Vec<u8>),
    /// `remove_header`.
    Remove(usize, u32),
    /// `headers.append` through `DerefMut`.
    RawAppend(usize, Vec<u8>),
    /// `headers.insert` through `DerefMut`.
    RawInsert(usize, Vec<u8>),
    /// `headers.remove` through `DerefMut`.
    RawRemove(usize),
}

/// A field value that survives an HTTP/1 round trip: no leading or trailing whitespace
/// (parsers strip it), inner spaces and tabs, and obs-text.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let edge = prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff];
    let inner =
        prop_oneof![4 => 0x21u8..=0x7e, 1 => Just(b' '), 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
    prop_oneof![
        1 => Just(Vec::new()),
        6 => (edge.clone(), proptest::collection::vec(inner, 0..10), edge).prop_map(|(a, mid, z)| {
            let mut v = vec![a];
            v.extend(mid);
            v.push(z);
            v
        }),
    ]
}

fn op(raw_edits: bool) -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let api = prop_oneof![
        4 => (name.clone(), case(), value()).prop_map(|(n, c, v)| Op::Append(n, c, v)),
        2 => (name.clone(), case(), value()).prop_map(|(n, c, v)| Op::Insert(n, c, v)),
        1 => (name.clone(), any::<u32>()).prop_map(|(n, c)| Op::Remove(n, c)),
    ];
    let raw = prop_oneof![
        (name.clone(), value()).prop_map(|(n, v)| Op::RawAppend(n, v)),
        (name.clone(), value()).prop_map(|(n, v)| Op::RawInsert(n, v)),
        name.prop_map(Op::RawRemove),
    ];
    if raw_edits {
        prop_oneof![3 => api, 1 => raw].boxed()
    } else {
        api.boxed()
    }
}

/// Case bits for [`spell`]: often the two spellings kept without a list (default and
/// lowercase), else any.
fn case() -> impl Strategy<Value = u32> {
    prop_oneof![2 => Just(DEFAULT), 2 => Just(0u32), 3 => any::<u32>()]
}

/// Case bits that [`spell`] turns into the name's default spelling.
const DEFAULT: u32 = 0x5eed_cafe;

/// `name` with the letters whose bit is set in `bits` in uppercase; its default spelling for
/// [`DEFAULT`].
fn spell(name: &'static str, bits: u32) -> String {
    if bits == DEFAULT {
        return default_spelling(&HeaderName::from_static(name)).to_owned();
    }
    name.chars()
        .enumerate()
        .map(|(i, c)| {
            if bits & (1 << (i % 32)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// What the spellings should be, per the documented invariant.
#[derive(Default)]
struct Model {
    spellings: HashMap<&'static str, Vec<String>>,
    stale: bool,
}

impl Model {
    /// What an API edit does first after edits through `DerefMut`.
    fn realign(&mut self, map: &HMap) {
        if !std::mem::take(&mut self.stale) {
            return;
        }
        let mut fresh = HashMap::new();
        for name in NAMES {
            let count = map.get_all(*name).iter().count();
            if count == 0 {
                continue;
            }
            let default = default_spelling(&HeaderName::from_static(name)).to_owned();
            let mut kept: Vec<String> = self.spellings.remove(name).unwrap_or_default();
            kept.truncate(count);
            kept.resize(count, default);
            fresh.insert(*name, kept);
        }
        self.spellings = fresh;
    }

    /// The field lines `map` should be written as.
    fn expected(&self, map: &HMap) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        map.iter()
            .map(|(name, value)| {
                let k = seen.entry(name.as_str()).or_default();
                let spelled = self
                    .spellings
                    .get(name.as_str())
                    .and_then(|s| s.get(*k))
                    .map_or_else(|| default_spelling(name).to_owned(), String::clone);
                *k += 1;
                (spelled.into_bytes(), value.as_bytes().to_vec())
            })
            .collect()
    }
}

/// The editing surface shared by requests and responses.
trait Head {
    fn append(&mut self, name: String, value: &[u8]) -> bool;
    fn insert(&mut self, name: String, value: &[u8]);
    fn remove(&mut self, name: &str) -> Option<HeaderValue>;
    fn map_mut(&mut self) -> &mut HMap;
    fn map(&self) -> &HMap;
    fn wire(&self) -> Vec<u8>;
    fn iter_lines(&self) -> Vec<(Vec<u8>, Vec<u8>)>;
    fn in_step(&self) -> bool;
}

macro_rules! impl_head {
    ($t:ty) => {
        impl Head for $t {
            fn append(&mut self, name: String, value: &[u8]) -> bool {
                self.append_header(name, value).expect("valid header")
            }
            fn insert(&mut self, name: String, value: &[u8]) {
                self.insert_header(name, value).expect("valid header")
            }
            fn remove(&mut self, name: &str) -> Option<HeaderValue> {
                self.remove_header(name)
            }
            fn map_mut(&mut self) -> &mut HMap {
                &mut self.headers
            }
            fn map(&self) -> &HMap {
                &self.headers
            }
            fn wire(&self) -> Vec<u8> {
                let mut buf = bytes::BytesMut::new();
                self.header_to_h1_wire(&mut buf);
                buf.to_vec()
            }
            fn iter_lines(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
                self.case_header_iter()
                    .map(|(n, v)| (n.as_slice().to_vec(), v.as_bytes().to_vec()))
                    .collect()
            }
            fn in_step(&self) -> bool {
                self.spellings_in_step()
            }
        }
    };
}

impl_head!(RequestHeader);
impl_head!(ResponseHeader);

/// Applies `ops` to `head`, to a plain `HMap` and to the model; checks the results agree.
fn run(head: &mut impl Head, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut baseline = HMap::new();
    let mut model = Model::default();
    let val = |v: &[u8]| HeaderValue::from_bytes(v).expect("generated values are valid");
    for op in ops {
        match op {
            Op::Append(n, bits, v) => {
                model.realign(head.map());
                let existed = head.append(spell(NAMES[*n], *bits), v);
                prop_assert_eq!(existed, baseline.append(NAMES[*n], val(v)));
                model
                    .spellings
                    .entry(NAMES[*n])
                    .or_default()
                    .push(spell(NAMES[*n], *bits));
            }
            Op::Insert(n, bits, v) => {
                model.realign(head.map());
                head.insert(spell(NAMES[*n], *bits), v);
                baseline.insert(NAMES[*n], val(v));
                model
                    .spellings
                    .insert(NAMES[*n], vec![spell(NAMES[*n], *bits)]);
            }
            Op::Remove(n, bits) => {
                model.realign(head.map());
                let removed = head.remove(&spell(NAMES[*n], *bits));
                prop_assert_eq!(removed, baseline.remove(NAMES[*n]));
                model.spellings.remove(NAMES[*n]);
            }
            Op::RawAppend(n, v) => {
                model.stale = true;
                head.map_mut().append(NAMES[*n], val(v));
                baseline.append(NAMES[*n], val(v));
            }
            Op::RawInsert(n, v) => {
                model.stale = true;
                head.map_mut().insert(NAMES[*n], val(v));
                baseline.insert(NAMES[*n], val(v));
            }
            Op::RawRemove(n) => {
                model.stale = true;
                head.map_mut().remove(NAMES[*n]);
                baseline.remove(NAMES[*n]);
            }
        }
    }
    prop_assert!(
        head.map().iter().eq(baseline.iter()),
        "values or order differ"
    );
    let expected = model.expected(&baseline);

    // Parse the written lines back, between a request line and the empty line.
    let written = head.wire();
    let mut message = b"GET / HTTP/1.1\r\n".to_vec();
    message.extend_from_slice(&written);
    message.extend_from_slice(b"\r\n");
    let mut slots = vec![httparse::EMPTY_HEADER; expected.len() + 1];
    let mut parsed = httparse::Request::new(&mut slots);
    let status = parsed.parse(&message);
    prop_assert!(
        matches!(status, Ok(httparse::Status::Complete(n)) if n == message.len()),
        "{:?} for {:?}",
        status,
        message.escape_ascii().to_string()
    );
    let got: Vec<(Vec<u8>, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
        .collect();
    prop_assert_eq!(&got, &expected);
    prop_assert_eq!(head.iter_lines(), expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_wire_round_trips(ops in proptest::collection::vec(op(true), 0..40)) {
        let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
        run(&mut req, &ops)?;
    }

    #[test]
    fn response_wire_round_trips(ops in proptest::collection::vec(op(true), 0..40)) {
        let mut resp = ResponseHeader::build(200, None).expect("valid");
        run(&mut resp, &ops)?;
    }

    /// Edits through the API alone keep the spellings in the map's order, so writing never
    /// needs the slower lookup by name.
    #[test]
    fn api_edits_keep_the_fast_path(ops in proptest::collection::vec(op(false), 0..40)) {
        let mut req = RequestHeader::build("GET", b"/", Some(2)).expect("valid");
        run(&mut req, &ops)?;
        prop_assert!(req.in_step());
    }

    /// Any target of visible ASCII (but `#`) and non-ASCII bytes that starts with `/` is
    /// kept byte for byte, and the URI stays readable.
    #[test]
    fn raw_paths_round_trip(
        rest in proptest::collection::vec(
            prop_oneof![0x21u8..=0x22, 0x24u8..=0x7e, 0x80u8..=0xff], 0..64),
    ) {
        let mut path = vec![b'/'];
        path.extend(rest);
        let req = RequestHeader::build("GET", &path, None).expect("valid target");
        prop_assert_eq!(req.raw_path(), &path[..]);
        prop_assert!(req.uri.path().starts_with('/'));
    }

    /// A control byte or space anywhere in a target is rejected.
    #[test]
    fn raw_paths_with_control_bytes_are_rejected(
        rest in proptest::collection::vec(0x21u8..=0x7e, 0..16),
        bad in prop_oneof![0x00u8..=0x20, Just(0x7f)],
        at in any::<prop::sample::Index>(),
    ) {
        let mut path = vec![b'/'];
        path.extend(rest);
        let at = at.index(path.len()) + 1;
        path.insert(at, bad);
        let cut = path.iter().position(|&b| b == b'#').unwrap_or(path.len());
        prop_assume!(at < cut);
        prop_assert!(RequestHeader::build("GET", &path, None).is_err());
    }
}

proptest! {
    /// A spelling is found to be well known exactly when its lowercase form is in the table,
    /// whatever the bytes (those near a well-known name most of all).
    #[test]
    fn well_known_lookup_matches_the_table(
        base in prop::sample::select(crate::case_header_name::CANONICAL),
        flips in proptest::collection::vec(any::<bool>(), 40),
        tweak in any::<Option<(prop::sample::Index, u8)>>(),
        random in proptest::collection::vec(any::<u8>(), 0..40),
        use_random in any::<bool>(),
    ) {
        let mut spelled: Vec<u8> = if use_random {
            random
        } else {
            base.0
                .bytes()
                .zip(&flips)
                .map(|(c, &flip)| if flip { c.to_ascii_uppercase() } else { c })
                .collect()
        };
        if let Some((at, byte)) = tweak {
            if !spelled.is_empty() {
                let at = at.index(spelled.len());
                spelled[at] = byte;
            }
        }
        let lower = spelled.to_ascii_lowercase();
        let expected = crate::case_header_name::CANONICAL
            .iter()
            .find(|(known, _)| known.as_bytes() == &lower[..]);
        let found = crate::case_header_name::WellKnown::find(&spelled);
        prop_assert_eq!(found.map(|k| k.lowercase()), expected.map(|(known, _)| *known));
    }

    /// The word-wise comparison agrees with the standard one on any bytes.
    #[test]
    fn same_name_matches_std(
        a in proptest::collection::vec(any::<u8>(), 0..24),
        flips in proptest::collection::vec(any::<bool>(), 24),
        tweak in any::<Option<(prop::sample::Index, u8)>>(),
    ) {
        let mut b: Vec<u8> = a
            .iter()
            .zip(&flips)
            .map(|(&c, &flip)| if flip { c.to_ascii_uppercase() } else { c })
            .collect();
        if let Some((at, byte)) = tweak {
            if !b.is_empty() {
                let at = at.index(b.len());
                b[at] = byte;
            }
        }
        let (x, y) = (crate::CaseHeaderName::from_slice(&a), crate::CaseHeaderName::from_slice(&b));
        prop_assert_eq!(x.same_name(&y), a.eq_ignore_ascii_case(&b));
    }
}
