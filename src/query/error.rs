//! The one error type of the query front end, worded the way Dataverse words it.
//!
//! Where the contract quotes a Dataverse (OData library) message, the text here is that message;
//! otherwise the message names the option, the position and the offending token. Positions are
//! 0-based character offsets into the text that was being read (the `$filter` value, or the
//! parameter alias value when the error is inside an alias, or the FetchXML document). The HTTP
//! edge answers every variant with status 400 and the code `edge/error.rs` chooses for it.
//!
//! The FetchXML variants use Dataverse's wording and codes where they are known: `Invalid XML.`
//! is `0x80040201` (InvalidXml), an unknown table `0x80041102` (QueryBuilderNoEntity), an unknown
//! column `0x80041103` (QueryBuilderNoAttribute), an unknown operator `0x80041120`
//! (QueryBuilderInvalidConditionOperator), a bad link type `0x80041117`
//! (QueryBuilderDeserializeInvalidLinkType); condition values and paging limits are the generic
//! InvalidArgument `0x80040203`. Violations of the FetchXML schema (an unknown element or
//! attribute, a bad attribute value) carry `0x0`: their Dataverse code is unverified.

/// A query option could not be parsed or bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A property name that the entity type does not have.
    #[error("Could not find a property named '{name}' on type '{type_name}'.")]
    UnknownProperty { name: String, type_name: String },

    /// A quoted string with no closing quote; `position` is the end of the text.
    #[error("There is an unterminated literal at position {position} in '{text}'.")]
    UnterminatedLiteral { position: usize, text: String },

    /// A token where the grammar does not allow it (or a character no token starts with).
    #[error(
        "Syntax error at position {position} in '{text}': expected {expected}, found {found}."
    )]
    Syntax {
        position: usize,
        text: String,
        found: String,
        expected: &'static str,
    },

    /// A comparison whose two sides have types that cannot be compared.
    #[error(
        "A binary operator with incompatible types was detected. Found operand types '{left}' and '{right}' for operator kind '{operator}'."
    )]
    IncompatibleTypes {
        left: &'static str,
        right: &'static str,
        operator: &'static str,
    },

    /// `contains`, `startswith` or `endswith` applied to something other than a string column
    /// and a string literal.
    #[error(
        "No function signature for the function with name '{name}' matches the specified arguments. The function signatures considered are: {name}(Edm.String Nullable=true, Edm.String Nullable=true)."
    )]
    NoFunctionSignature { name: String },

    /// A function name that is neither a string function nor a known query function.
    #[error(
        "An unknown function with name '{name}' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed."
    )]
    UnknownFunction { name: String },

    /// A query function used on a column it does not apply to, or given the wrong values.
    #[error("Invalid argument for function '{function}': {reason}")]
    InvalidFunctionArgument { function: String, reason: String },

    /// A parameter alias (`@p1`) that the query string does not define.
    #[error("The parameter alias '{name}' is not defined in the query.")]
    UndefinedAlias { name: String },

    /// Parentheses or `not` nested deeper than the parser allows.
    #[error("The recursion limit has been exceeded.")]
    TooDeep,

    /// An option value longer than the parser reads.
    #[error("The value of '{option}' is {length} characters long; the limit is {limit}.")]
    TooLong {
        option: String,
        length: usize,
        limit: usize,
    },

    #[error(
        "Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value."
    )]
    InvalidTop { value: String },

    #[error("'{value}' is not a valid count option.")]
    InvalidCount { value: String },

    /// A `$`-option this server does not know.
    #[error("The query parameter {name} is not supported")]
    UnknownOption { name: String },

    /// A known OData option or construct that Dataverse does not support (`$skip`, ordering
    /// by a navigation path, a collection behind a lookup in `$filter`, options other than
    /// `$select` inside `$expand`).
    #[error("{what} is not supported.")]
    Unsupported { what: String },

    /// A query crossing more relationships than Dataverse's limit on the tables one query
    /// joins.
    #[error("The query crosses {count} relationships (lookup paths, lambdas and link-entities); at most {limit} are allowed.")]
    TooManyRelationships { count: usize, limit: usize },

    /// `any`/`all` after a property that is not a collection-valued navigation property.
    #[error("Any/All may only be used following a collection.")]
    LambdaNotOnCollection,

    #[error(
        "Query option '{name}' was specified more than once, but it must be specified at most once."
    )]
    DuplicateOption { name: String },

    /// A `$apply` that Dataverse's aggregation does not accept.
    #[error("Invalid $apply: {reason}")]
    InvalidApply { reason: String },

    /// FetchXML that is not well-formed XML, or that is not a `<fetch>` document. `detail` says
    /// what and where (a character offset).
    #[error("Invalid XML. {detail}")]
    InvalidXml { detail: String },

    /// FetchXML that is well-formed but breaks the FetchXML schema: an unknown element or
    /// attribute, a missing required attribute, an attribute value of the wrong type.
    #[error("{detail}")]
    FetchXmlSchema { detail: String },

    /// A FetchXML `entity` or `link-entity` naming a table the catalog does not have.
    #[error(
        "The entity with a name = '{name}' with namemapping = 'Logical' was not found in the MetadataCache."
    )]
    UnknownEntity { name: String },

    /// A FetchXML column name (logical name) that the table does not have.
    #[error(
        "'{entity}' entity doesn't contain attribute with Name = '{name}' and NameMapping = 'Logical'."
    )]
    UnknownAttribute { entity: String, name: String },

    /// A FetchXML condition operator that is not one of Dataverse's.
    #[error("Unknown Condition Operator: {operator}")]
    UnknownOperator { operator: String },

    /// A FetchXML condition with the wrong number of values for its operator.
    #[error(
        "The ConditionOperator.{operator} requires {expected} value/s, not {found}. Parameter Name: {attribute}."
    )]
    ConditionValueCount {
        operator: String,
        attribute: String,
        expected: &'static str,
        found: usize,
    },

    /// A FetchXML condition value that does not convert to the column's type.
    #[error(
        "An exception System.FormatException was thrown while trying to convert input value '{value}' to attribute '{entity}.{attribute}'. Expected type of attribute value: {expected}."
    )]
    ConditionValue {
        value: String,
        entity: String,
        attribute: String,
        expected: &'static str,
    },

    /// A FetchXML condition whose operator does not apply to its column, or whose value is out
    /// of range for the operator.
    #[error("Condition for attribute '{entity}.{attribute}': {reason}")]
    InvalidCondition {
        entity: String,
        attribute: String,
        reason: String,
    },

    /// A well-formed FetchXML query that Dataverse refuses: paging limits, aggregate rules,
    /// aliases.
    #[error("{detail}")]
    InvalidFetch { detail: String },

    /// `?sql=` text that the SQL parser cannot read.
    #[error("The SQL query could not be parsed: {detail}")]
    SqlSyntax { detail: String },

    /// `?sql=` text outside the read-only subset smsctx runs (see [`super::sql`]).
    #[error("{what} is not supported in the sql query option.")]
    SqlUnsupported { what: String },

    /// A FetchXML link-entity with a `link-type` smsctx does not know.
    #[error("Invalid link-type '{link_type}': only 'inner', 'outer', 'exists', 'in', 'any', 'not any', 'all' and 'not all' are supported.")]
    InvalidLinkType { link_type: String },

    /// A `$skiptoken` that is not one this server issued for the request's order.
    #[error("The $skiptoken '{token}' is not valid.")]
    InvalidSkipToken { token: String },

    /// Options that are valid alone but not together (`$apply` with `$top`, ...).
    #[error("{detail}")]
    BadCombination { detail: String },

    /// A FetchXML construct that binds but that this server does not run yet.
    #[error("{what} is not supported in FetchXML here yet.")]
    FetchUnsupported { what: String },

    /// A `QueryExpression` (BulkDelete's `QuerySet`) that is malformed or uses what this
    /// server does not evaluate; the detail names it.
    #[error("{detail}")]
    QueryExpression { detail: String },
}

#[cfg(test)]
impl QueryError {
    /// The code the HTTP edge answers with, chosen in [`crate::edge::error::query_code`]; here
    /// for the tests beside each front end.
    pub fn code(&self) -> &'static str {
        crate::edge::error::query_code(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: QueryError, expected_code: &str, expected_message: &str) {
        assert_eq!(error.code(), expected_code);
        assert_eq!(error.to_string(), expected_message);
    }

    #[test]
    fn the_contract_messages_are_verbatim() {
        check(
            QueryError::UnknownProperty {
                name: "X".into(),
                type_name: "Microsoft.Dynamics.CRM.msdyn_smsengagementctx".into(),
            },
            "0x0",
            "Could not find a property named 'X' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'.",
        );
        check(
            QueryError::UnterminatedLiteral {
                position: 18,
                text: "msdyn_name eq 'abc".into(),
            },
            "0x0",
            "There is an unterminated literal at position 18 in 'msdyn_name eq 'abc'.",
        );
    }

    #[test]
    fn function_arguments_are_invalid_arguments() {
        check(
            QueryError::InvalidFunctionArgument {
                function: "Microsoft.Dynamics.CRM.Today".into(),
                reason: "it applies to date and time columns only.".into(),
            },
            "0x80040203",
            "Invalid argument for function 'Microsoft.Dynamics.CRM.Today': it applies to date and time columns only.",
        );
    }
}
