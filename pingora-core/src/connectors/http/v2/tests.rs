//! Tests of the HTTP/2 pool.
