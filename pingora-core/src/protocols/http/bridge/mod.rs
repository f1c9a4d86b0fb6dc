//! Bridges between HTTP-based protocols: a request arrives in one and is forwarded in another.

pub mod grpc_web;
