//! `Dcs` over Consul (not yet implemented: see issue 4).
