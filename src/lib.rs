//! smsctx: a self-hosted Dataverse Web API for the Omnichannel SMS Engagement Context table.
//!
//! A request flows one way: [`edge`] (HTTP) → [`parse`] (URL, query options, body against the
//! [`metadata`]) → authorize ([`execute::context`]) → [`execute`] (one handler per message) →
//! [`store`] (SQLite today) → [`serialize`]. See ARCHITECTURE.md for the map.

pub mod channels;
pub mod metadata;
