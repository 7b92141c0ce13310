//! Test helpers (feature `testing`): real databases for integration tests, with no manual setup.
//!
//! - [`postgres`]: a throwaway PostgreSQL server (or the one `GRANT_PG_URL` names), fresh
//!   databases per test, and clusters of them.

pub mod postgres;
