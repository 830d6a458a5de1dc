//! The integration suites, in one test binary (one link, one process; each suite is a module).
//! Every suite starts smsctx on port 0 with a temporary database and speaks HTTP to it, on
//! SQLite, or on PostgreSQL when `SMSCTX_TEST_POSTGRES` is set (scripts/test.sh runs both).
//! Run one suite with `cargo test --test integration security::`.

mod common;
#[path = "../src/test_support.rs"]
mod test_support;

mod audit;
mod backup;
mod batch;
mod bulk;
mod bulk_delete;
mod changes;
mod clients;
mod connections;
mod console;
mod durability;
mod fetch_joins;
mod first_contact;
mod full_disk;
mod fuzz;
mod hardening;
mod https;
mod keys;
mod messages;
mod metadata_api;
mod migrate;
mod multinode;
mod options;
mod organization;
mod overload;
mod query;
mod query_differential;
mod relationship_filters;
mod relationships;
mod schema;
mod security;
mod sms;
mod transcripts;
mod validation;
mod views;
