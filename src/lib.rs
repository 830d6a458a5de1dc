//! smsctx: a self-hosted Dataverse Web API for the Omnichannel SMS Engagement Context table.
//!
//! A request flows one way: [`edge`] (HTTP) → [`parse`] and [`query`] (URL, query options,
//! body against the [`metadata`]) → authorize ([`execute::context`]) → [`execute`] (one handler
//! per message) → [`store`] (SQLite, or PostgreSQL for several nodes) → [`serialize`]. Schema
//! discovery (`$metadata`, `EntityDefinitions`) is computed from the metadata by [`schema`].
//! [`migrate`] copies a store into PostgreSQL. See ARCHITECTURE.md for the map.

pub mod app;
pub mod authorize;
pub mod backup;
pub mod batch;
pub mod channels;
pub mod cli;
pub mod edge;
pub mod execute;
pub mod listen;
pub mod metadata;
pub mod migrate;
pub mod parse;
pub mod query;
pub mod schema;
pub mod security;
pub mod serialize;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tls;
