//! `Dcs` over etcd v3 (not yet implemented: see issue 4).
