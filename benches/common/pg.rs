//! PostgreSQL for the benchmarks: `GRANT_PG_URL`, or a throwaway server of our own (stopped
//! when the returned `PgServer` is dropped). Use with `#[path = "common/pg.rs"] mod pg;`.

use grant_sharding::testing::postgres::{PgEnv, PgServer};

/// Where the PostgreSQL shard databases live, or `None` (the `bench` group is skipped, said on
/// stderr) when there is no PostgreSQL.
pub(crate) fn postgres(bench: &str) -> Option<(PgEnv, Option<PgServer>)> {
    if let Some(url) = std::env::var(grant_sharding::testing::postgres::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some((PgEnv::external(url), None));
    }
    match PgServer::start() {
        Ok(server) => Some((PgEnv::external(server.url("postgres")), Some(server))),
        Err(why) => {
            eprintln!("skipping {bench}: no PostgreSQL: {why}");
            None
        }
    }
}
