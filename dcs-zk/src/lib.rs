//! `Dcs` over ZooKeeper (not yet implemented: see issue 4).
