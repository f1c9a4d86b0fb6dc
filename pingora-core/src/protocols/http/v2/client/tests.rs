//! Tests of the HTTP/2 client session.
