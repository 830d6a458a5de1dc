//! The OData query-option compiler front end: parse and bind, no SQL and no I/O.
//!
//! A request's query string arrives as decoded `(name, value)` pairs. [`QueryOptions::parse`]
//! reads the system query options; `$filter` goes through the [`lexer`] and the
//! recursive-descent [`filter`] parser, which resolves every name against the [`Entity`]
//! metadata and types every literal, producing the [`ast::Expr`] tree that the store lowers to
//! SQL with bound parameters. The `fetchXml` option goes through [`fetchxml`] instead, which
//! reads the XML with quick-xml and binds it into a [`fetchxml::FetchQuery`] whose filter is the
//! same [`ast::Expr`]: one query plan serves both front ends. Errors are one enum,
//! [`QueryError`], carrying the Dataverse message and code.
//!
//! **Architecture invariant:** this module never sees SQL, HTTP or the caller's identity; it
//! depends only on [`crate::metadata`].
//!
//! [`Entity`]: crate::metadata::Entity

pub mod apply;
pub mod ast;
pub mod error;
pub mod fetchxml;
pub mod filter;
pub(crate) mod lexer;
pub mod options;
pub mod read;
pub mod skiptoken;
pub mod sql;

pub use ast::{
    ChildJoin, CmpOp, Expr, FnValues, Hop, Literal, PropertyRef, QueryFnName, StringFn, Table,
};
pub use error::QueryError;
pub use options::{CollectionOptions, Expand, ExpandSelect, OrderBy, QueryOptions};

/// The longest option value (in characters) the parsers read; Dataverse URLs are limited to
/// about 32 KB anyway.
pub const MAX_OPTION_LENGTH: usize = 32_768;
