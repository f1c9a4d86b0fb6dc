//! TLS material in a form that does not depend on a TLS backend: certificates and keys as
//! DER bytes, which every backend can load. Defined in `pingora-tls`, re-exported here.

pub use pingora_tls::{load_pem_certs, load_pem_key, CaType, CertKey};
