pub mod common;
pub mod requests;
