//! `PgControl` over PostgreSQL's binaries (not yet implemented: see issue 3).
