//! The tests' certificates: ha-core's test PKI (feature `pki`), one maker for every TLS test (not every test
//! binary that includes this module uses all of it).
#![allow(unused_imports)]

pub use ha_core::testing::pki::{make_pki, patroni_suite_cert, TestPki};
