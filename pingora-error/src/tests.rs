use super::*;
use std::io;

fn io_err(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

#[test]
fn display_single() {
    assert_eq!(
        Error::new(ErrorType::ConnectRefused).to_string(),
        "ConnectRefused"
    );
    assert_eq!(
        Error::new_up(ErrorType::ConnectRefused).to_string(),
        "Upstream ConnectRefused"
    );
    assert_eq!(
        Error::explain(ErrorType::HTTPStatus(403), "forbidden")
            .into_down()
            .to_string(),
        "Downstream HTTPStatus context: forbidden"
    );
    assert_eq!(Error::new_str("MyError").to_string(), "MyError");
    assert_eq!(
        Error::new(ErrorType::new_code("Quota", 7)).to_string(),
        "Quota"
    );
}

#[test]
fn display_chain_skips_repeats() {
    let root = Error::because(ErrorType::ReadError, "reading header", io_err("reset"));
    let mut root = root;
    root.as_up();
    let mid = Error::because(ErrorType::ReadError, "proxying", root).into_up();
    let top = Error::because(ErrorType::HTTPStatus(502), "fail", mid).into_up();
    assert_eq!(
        top.to_string(),
        "Upstream HTTPStatus context: fail cause: ReadError context: proxying cause: \
         context: reading header cause: reset"
    );
}

#[test]
fn display_chain_shows_changed_source() {
    let inner = Error::new_down(ErrorType::ConnectionClosed);
    let outer = Error::because(ErrorType::ConnectionClosed, "writing", inner).into_up();
    assert_eq!(
        outer.to_string(),
        "Upstream ConnectionClosed context: writing cause: Downstream"
    );
    let bare = Error::because(
        ErrorType::ReadError,
        "outer",
        Error::new(ErrorType::ReadError),
    );
    assert_eq!(bare.to_string(), "ReadError context: outer");
    let rewrap = Error::because(
        ErrorType::ReadError,
        "outer",
        Error::because(ErrorType::ReadError, "mid", io_err("eof")).more_context("again"),
    );
    assert_eq!(
        rewrap.to_string(),
        "ReadError context: outer cause: context: again cause: context: mid cause: eof"
    );
}

#[test]
fn retry_inherited_from_pingora_cause() {
    let mut inner = Error::new(ErrorType::ConnectTimedout);
    inner.set_retry(true);
    let outer = Error::because(ErrorType::ConnectError, "connect", inner);
    assert!(outer.retry());

    // Inherited through a double box too (BError converted with Into).
    let mut inner = Error::new(ErrorType::ConnectTimedout);
    inner.retry = RetryType::ReusedOnly;
    let boxed: Box<dyn ErrorTrait + Send + Sync> = Box::new(inner);
    let outer = Error::because(ErrorType::ReadError, "read", boxed);
    assert_eq!(outer.retry, RetryType::ReusedOnly);
}

#[test]
fn retry_not_inherited_from_foreign_cause() {
    let outer = Error::because(ErrorType::ReadError, "read", io_err("x"));
    assert_eq!(outer.retry, RetryType::Decided(false));
    assert!(!outer.retry());
}

#[test]
fn reused_only_never_panics() {
    let mut retry = RetryType::ReusedOnly;
    assert!(!retry.retry());
    retry.decide_reuse(true);
    assert_eq!(retry, RetryType::Decided(true));
    // A decided value is not changed again.
    retry.decide_reuse(false);
    assert_eq!(retry, RetryType::Decided(true));

    let mut retry = RetryType::ReusedOnly;
    retry.decide_reuse(false);
    assert!(!retry.retry());
}

#[test]
fn more_context_keeps_source_and_retry() {
    let mut e = Error::new_up(ErrorType::ReadTimedout);
    e.retry = RetryType::ReusedOnly;
    let e = e.more_context("while reading body");
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    assert_eq!(e.retry, RetryType::ReusedOnly);
    assert_eq!(e.etype(), &ErrorType::ReadTimedout);
    assert_eq!(
        e.to_string(),
        "Upstream ReadTimedout context: while reading body"
    );
}

#[test]
fn root_etype_and_cause() {
    let root = Error::because(ErrorType::ConnectRefused, "tcp", io_err("refused"));
    let top = Error::because(ErrorType::ConnectError, "peer", root);
    assert_eq!(top.root_etype(), &ErrorType::ConnectRefused);
    assert_eq!(top.root_cause().to_string(), "refused");
    assert!(top.root_cause().downcast_ref::<io::Error>().is_some());

    let lone = Error::new(ErrorType::InternalError);
    assert_eq!(lone.root_etype(), &ErrorType::InternalError);
    assert_eq!(lone.root_cause().to_string(), "InternalError");
}

#[test]
fn std_source_walks_the_chain() {
    let root = Error::because(ErrorType::ConnectRefused, "tcp", io_err("refused"));
    let top = Error::because(ErrorType::ConnectError, "peer", root);
    let first = top.source().expect("has a cause");
    assert!(first.downcast_ref::<Error>().is_some());
    let second = first.source().expect("has a cause");
    assert_eq!(second.to_string(), "refused");
    assert!(second.source().is_none());
}

#[test]
fn source_setters() {
    let mut e = Error::new(ErrorType::InternalError);
    assert_eq!(e.source_str(), "");
    e.as_up();
    assert_eq!(e.source_str(), "Upstream");
    e.as_down();
    assert_eq!(e.esource(), &ErrorSource::Downstream);
    e.as_in();
    assert_eq!(e.esource(), &ErrorSource::Internal);
    let e = e.into_up();
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    assert_eq!(e.reason_str(), "InternalError");
}

#[test]
fn err_helpers() {
    let r: Result<()> = Error::err_down(ErrorType::ReadError);
    assert_eq!(r.unwrap_err().esource(), &ErrorSource::Downstream);
    let r: Result<()> = Error::err_in(ErrorType::InternalError);
    assert_eq!(r.unwrap_err().esource(), &ErrorSource::Internal);
    let r: Result<()> = Error::err_up(ErrorType::ReadError);
    assert_eq!(r.unwrap_err().esource(), &ErrorSource::Upstream);
    let r: Result<()> = Error::err(ErrorType::ReadError);
    assert_eq!(r.unwrap_err().esource(), &ErrorSource::Unset);
    let r: Result<()> = Error::e_explain(ErrorType::H1Error, "bad");
    assert_eq!(r.unwrap_err().context(), Some("bad"));
    let r: Result<()> = Error::e_because(ErrorType::H1Error, "bad", io_err("x"));
    assert!(r.unwrap_err().cause.is_some());
    let r: Result<()> = Error::new(ErrorType::UnknownError).into_err();
    assert!(r.is_err());
}

#[test]
fn or_err_traits() {
    let r: std::result::Result<(), io::Error> = Err(io_err("boom"));
    let e = r.or_err(ErrorType::FileOpenError, "opening").unwrap_err();
    assert_eq!(e.to_string(), "FileOpenError context: opening cause: boom");

    let r: std::result::Result<(), io::Error> = Err(io_err("boom"));
    let e = r
        .or_err_with(ErrorType::FileOpenError, || format!("opening {}", "/x"))
        .unwrap_err();
    assert_eq!(e.context(), Some("opening /x"));

    let r: std::result::Result<(), io::Error> = Err(io_err("boom"));
    let e = r
        .explain_err(ErrorType::FileReadError, |e| format!("read failed: {e}"))
        .unwrap_err();
    assert_eq!(e.to_string(), "FileReadError context: read failed: boom");
    assert!(e.cause.is_none());

    let r: std::result::Result<(), io::Error> = Err(io_err("boom"));
    let e = r.or_fail().unwrap_err();
    assert_eq!(e.to_string(), "InternalError cause: boom");

    let ok: std::result::Result<u8, io::Error> = Ok(3);
    assert_eq!(ok.or_err(ErrorType::InternalError, "never").unwrap(), 3);
}

#[test]
fn ok_or_err_and_context() {
    let none: Option<u8> = None;
    let e = none
        .or_err(ErrorType::InvalidHTTPHeader, "missing")
        .unwrap_err();
    assert_eq!(e.to_string(), "InvalidHTTPHeader context: missing");
    let e = none
        .or_err_with(ErrorType::InvalidHTTPHeader, || String::from("built"))
        .unwrap_err();
    assert_eq!(e.context(), Some("built"));
    assert_eq!(Some(1).or_err(ErrorType::InternalError, "x").unwrap(), 1);

    let r: Result<()> = Error::e_explain(ErrorType::ReadError, "inner");
    let e = r.err_context(|| "outer").unwrap_err();
    assert_eq!(
        e.to_string(),
        "ReadError context: outer cause: context: inner"
    );
}

#[test]
fn error_type_names() {
    assert_eq!(ErrorType::new("Mine").as_str(), "Mine");
    assert_eq!(ErrorType::HTTPStatus(404).as_str(), "HTTPStatus");
    assert_eq!(ErrorType::HTTPStatus(404).http_status(), Some(404));
    assert_eq!(ErrorType::TLSWantX509Lookup.as_str(), "TLSWantX509Lookup");
    assert_eq!(ErrorType::ReadError.http_status(), None);
}

#[test]
fn immut_str_forms() {
    let s: ImmutStr = "lit".into();
    assert!(!s.is_owned());
    let o: ImmutStr = String::from("own").into();
    assert!(o.is_owned());
    assert_eq!(o.as_str(), "own");
    assert_eq!(format!("{s}/{o}"), "lit/own");
    let c: ImmutStr = std::borrow::Cow::Borrowed("cow").into();
    assert_eq!(c, ImmutStr::Static("cow"));
}

#[test]
fn result_is_one_pointer_wide() {
    assert_eq!(
        std::mem::size_of::<Result<()>>(),
        std::mem::size_of::<usize>()
    );
}
