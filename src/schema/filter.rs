//! `$filter` over metadata objects (`EntityMetadata`, `AttributeMetadata`, relationships, keys,
//! the message catalog): the same tokens as a table's `$filter` (`query::lexer`), a smaller
//! grammar, evaluated against the JSON object the request would return.
//!
//! ```text
//! or      := and ('or' and)*
//! and     := unary ('and' unary)*
//! unary   := 'not' unary | '(' or ')' | fn '(' path ',' string ')' | operand [op operand]
//! operand := path | literal | Namespace.EnumType'Member'
//! op      := eq | ne | gt | ge | lt | le        fn := contains | startswith | endswith
//! ```
//!
//! A path walks nested objects (`DisplayName/UserLocalizedLabel/Label`, `sdkmessageid/name`); a
//! bare Boolean path means `path eq true`. Which first segments exist is the caller's
//! [`Shape`]'s business, checked at parse time, so a misspelt name is an error and never an
//! empty result. Text compares case-insensitively, as Dataverse's metadata queries do.

use std::cmp::Ordering;

use serde_json::Value;

use super::SchemaError;
use crate::query::lexer::{tokenize, Token, TokenKind};
use crate::query::{CmpOp, Literal};

/// The properties a metadata type declares, for checking `$select` and `$filter` names.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The qualified type name used in error messages (`Microsoft.Dynamics.CRM.EntityMetadata`).
    pub type_name: &'a str,
    pub properties: &'a [&'a str],
    /// Single-valued navigation properties a path may go through (`sdkmessageid`).
    pub navigations: &'a [&'a str],
}

impl Shape<'_> {
    pub fn check(&self, property: &str) -> Result<(), SchemaError> {
        if self.properties.contains(&property) || self.navigations.contains(&property) {
            Ok(())
        } else {
            Err(SchemaError::UnknownProperty {
                property: property.to_string(),
                type_name: self.type_name.to_string(),
            })
        }
    }
}

impl Shape<'_> {
    /// Checks a `$select` and parses a `$filter` against the shape.
    pub fn options(
        &self,
        select: Option<&[String]>,
        filter: Option<&str>,
    ) -> Result<Option<Filter>, SchemaError> {
        for property in select.unwrap_or_default() {
            self.check(property)?;
        }
        filter.map(|f| Filter::parse(f, self)).transpose()
    }
}

/// A parsed metadata filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        path: Vec<String>,
        op: CmpOp,
        value: Operand,
    },
    Text {
        function: TextFn,
        path: Vec<String>,
        value: String,
    },
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Literal(Literal),
    /// `Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'`: compared by member name.
    Enum(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFn {
    Contains,
    StartsWith,
    EndsWith,
}

impl Filter {
    /// Parses `text`, checking every path's first segment against `shape`.
    pub fn parse(text: &str, shape: &Shape<'_>) -> Result<Filter, SchemaError> {
        let tokens = tokenize(text).map_err(|e| SchemaError::BadQuery(e.to_string()))?;
        let mut parser = Parser {
            tokens,
            at: 0,
            text,
            shape,
        };
        let filter = parser.or()?;
        match parser.peek() {
            TokenKind::End => Ok(filter),
            _ => Err(parser.unexpected("an operator or the end of the input")),
        }
    }

    /// Whether `object` satisfies the filter.
    pub fn matches(&self, object: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(object) && b.matches(object),
            Filter::Or(a, b) => a.matches(object) || b.matches(object),
            Filter::Not(inner) => !inner.matches(object),
            Filter::Compare { path, op, value } => {
                let found = walk(object, path);
                match compare(found, value) {
                    Some(ordering) => match op {
                        CmpOp::Eq => ordering == Ordering::Equal,
                        CmpOp::Ne => ordering != Ordering::Equal,
                        CmpOp::Gt => ordering == Ordering::Greater,
                        CmpOp::Ge => ordering != Ordering::Less,
                        CmpOp::Lt => ordering == Ordering::Less,
                        CmpOp::Le => ordering != Ordering::Greater,
                    },
                    // Null against a value: only `ne` holds, as in SQL Server's OData.
                    None => *op == CmpOp::Ne,
                }
            }
            Filter::Text {
                function,
                path,
                value,
            } => {
                let Some(Value::String(found)) = walk(object, path) else {
                    return false;
                };
                let (found, value) = (found.to_lowercase(), value.to_lowercase());
                match function {
                    TextFn::Contains => found.contains(&value),
                    TextFn::StartsWith => found.starts_with(&value),
                    TextFn::EndsWith => found.ends_with(&value),
                }
            }
        }
    }
}

/// Keeps the items of `items` that `filter` accepts (all of them without a filter).
pub fn retain(items: &mut Vec<Value>, filter: Option<&Filter>) {
    if let Some(filter) = filter {
        items.retain(|item| filter.matches(item));
    }
}

fn walk<'v>(object: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(object, |value, segment| value.get(segment))
}

/// Orders a found value against an operand; `None` when either side is null and the other is
/// not (so that only `ne` holds), or when the types cannot be compared.
fn compare(found: Option<&Value>, operand: &Operand) -> Option<Ordering> {
    let found = found.unwrap_or(&Value::Null);
    let text = |s: &str, other: &str| Some(s.to_lowercase().cmp(&other.to_lowercase()));
    match (found, operand) {
        (Value::Null, Operand::Literal(Literal::Null)) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Operand::Literal(Literal::Null)) => None,
        (Value::String(s), Operand::Enum(member)) => text(s, member),
        (Value::String(s), Operand::Literal(Literal::String(other))) => text(s, other),
        (Value::String(s), Operand::Literal(Literal::Guid(id))) => text(s, &id.to_string()),
        (Value::Bool(b), Operand::Literal(Literal::Bool(other))) => Some(b.cmp(other)),
        (Value::Number(n), Operand::Literal(Literal::Int(other))) => {
            n.as_i64().map(|n| n.cmp(other))
        }
        // A managed property (`IsCustomizable`) compares by its `Value`.
        (Value::Object(map), _) if map.contains_key("Value") => compare(map.get("Value"), operand),
        _ => None,
    }
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    text: &'a str,
    shape: &'a Shape<'a>,
}

impl Parser<'_> {
    fn peek(&self) -> &TokenKind {
        &self.tokens[self.at].kind
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.at].clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), TokenKind::Word(w) if w == word)
    }

    fn unexpected(&self, expected: &str) -> SchemaError {
        let token = &self.tokens[self.at];
        SchemaError::BadQuery(format!(
            "Syntax error at position {} in '{}': expected {expected}, found {}.",
            token.position,
            self.text,
            token.describe(self.text)
        ))
    }

    fn or(&mut self) -> Result<Filter, SchemaError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next();
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, SchemaError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, SchemaError> {
        if self.keyword("not") {
            self.next();
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if *self.peek() == TokenKind::LParen {
            self.next();
            let inner = self.or()?;
            self.expect(TokenKind::RParen, "')'")?;
            return Ok(inner);
        }
        let function = match self.peek() {
            TokenKind::Word(w) if w == "contains" => Some(TextFn::Contains),
            TokenKind::Word(w) if w == "startswith" => Some(TextFn::StartsWith),
            TokenKind::Word(w) if w == "endswith" => Some(TextFn::EndsWith),
            _ => None,
        };
        if let Some(function) = function {
            if self.tokens.get(self.at + 1).map(|t| &t.kind) == Some(&TokenKind::LParen) {
                return self.text_function(function);
            }
        }
        self.comparison()
    }

    fn text_function(&mut self, function: TextFn) -> Result<Filter, SchemaError> {
        self.next();
        self.next();
        let path = self.path()?;
        self.expect(TokenKind::Comma, "','")?;
        let TokenKind::Literal(Literal::String(value)) = self.peek().clone() else {
            return Err(self.unexpected("a string literal"));
        };
        self.next();
        self.expect(TokenKind::RParen, "')'")?;
        Ok(Filter::Text {
            function,
            path,
            value,
        })
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Result<(), SchemaError> {
        if *self.peek() == kind {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// `path op operand`, `operand op path` (flipped), or a Boolean path alone.
    fn comparison(&mut self) -> Result<Filter, SchemaError> {
        if matches!(self.peek(), TokenKind::Literal(_)) || self.is_enum_literal() {
            let value = self.operand()?;
            let op = self.operator()?;
            let path = self.path()?;
            return Ok(Filter::Compare {
                path,
                op: flip(op),
                value,
            });
        }
        let path = self.path()?;
        let is_operator = matches!(self.peek(), TokenKind::Word(w) if CmpOp::parse(w).is_some());
        if !is_operator {
            return Ok(Filter::Compare {
                path,
                op: CmpOp::Eq,
                value: Operand::Literal(Literal::Bool(true)),
            });
        }
        let op = self.operator()?;
        let value = self.operand()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn operator(&mut self) -> Result<CmpOp, SchemaError> {
        match self.peek() {
            TokenKind::Word(w) => match CmpOp::parse(w) {
                Some(op) => {
                    self.next();
                    Ok(op)
                }
                None => Err(self.unexpected("a comparison operator")),
            },
            _ => Err(self.unexpected("a comparison operator")),
        }
    }

    /// A qualified word immediately followed by a quoted string: an enum literal.
    fn is_enum_literal(&self) -> bool {
        let (Some(word), Some(next)) = (self.tokens.get(self.at), self.tokens.get(self.at + 1))
        else {
            return false;
        };
        matches!(&word.kind, TokenKind::Word(w) if w.contains('.'))
            && matches!(next.kind, TokenKind::Literal(Literal::String(_)))
            && next.span.start == word.span.end
    }

    fn operand(&mut self) -> Result<Operand, SchemaError> {
        if self.is_enum_literal() {
            self.next();
            let TokenKind::Literal(Literal::String(member)) = self.next().kind else {
                unreachable!("checked by is_enum_literal")
            };
            return Ok(Operand::Enum(member));
        }
        match self.peek().clone() {
            TokenKind::Literal(literal) => {
                self.next();
                Ok(Operand::Literal(literal))
            }
            _ => Err(self.unexpected("a literal")),
        }
    }

    fn path(&mut self) -> Result<Vec<String>, SchemaError> {
        let TokenKind::Word(word) = self.peek().clone() else {
            return Err(self.unexpected("a property name"));
        };
        let path: Vec<String> = word.split('/').map(str::to_string).collect();
        if path.iter().any(String::is_empty) {
            return Err(self.unexpected("a property name"));
        }
        self.shape.check(&path[0])?;
        self.next();
        Ok(path)
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHAPE: Shape<'static> = Shape {
        type_name: "Microsoft.Dynamics.CRM.EntityMetadata",
        properties: &[
            "LogicalName",
            "ObjectTypeCode",
            "IsPrivate",
            "OwnershipType",
            "DisplayName",
            "IsCustomizable",
        ],
        navigations: &["sdkmessageid"],
    };

    fn check(filter: &str, expected: bool) {
        let object = json!({
            "LogicalName": "msdyn_smsengagementctx",
            "ObjectTypeCode": 10,
            "IsPrivate": false,
            "OwnershipType": "UserOwned",
            "DisplayName": {"UserLocalizedLabel": {"Label": "SMS Engagement Context"}},
            "IsCustomizable": {"Value": true, "CanBeChanged": true},
            "sdkmessageid": {"name": "Create"},
        });
        let parsed = Filter::parse(filter, &SHAPE).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(parsed.matches(&object), expected, "{filter}");
    }

    #[test]
    fn comparisons_and_connectives_evaluate_like_odata() {
        check("LogicalName eq 'msdyn_smsengagementctx'", true);
        check("LogicalName eq 'MSDYN_SMSENGAGEMENTCTX'", true);
        check("LogicalName eq 'account'", false);
        check("LogicalName ne 'account'", true);
        check("ObjectTypeCode gt 9 and ObjectTypeCode le 10", true);
        check("10 eq ObjectTypeCode", true);
        check("9 gt ObjectTypeCode", false);
        check("IsPrivate eq false", true);
        check("IsPrivate", false);
        check("not IsPrivate", true);
        check("IsPrivate eq true or ObjectTypeCode eq 10", true);
        check("not (IsPrivate eq false and ObjectTypeCode eq 10)", false);
        check(
            "OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'",
            true,
        );
        check("OwnershipType eq 'OrganizationOwned'", false);
        check(
            "DisplayName/UserLocalizedLabel/Label eq 'SMS Engagement Context'",
            true,
        );
        check("IsCustomizable/Value eq true", true);
        check("IsCustomizable eq true", true);
        check("sdkmessageid/name eq 'Create'", true);
        check("contains(LogicalName,'engagement')", true);
        check("startswith(LogicalName,'team')", false);
        check("endswith(LogicalName,'CTX')", true);
        check("ObjectTypeCode eq null", false);
        check("ObjectTypeCode ne null", true);
        check("sdkmessageid/missing eq null", true);
        check("sdkmessageid/missing eq 'x'", false);
        check("sdkmessageid/missing ne 'x'", true);
    }

    #[test]
    fn every_prefix_of_a_filter_parses_or_is_refused() {
        let text = "not (contains(LogicalName,'a') or OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned') and 10 le ObjectTypeCode";
        for end in 0..=text.len() {
            let _ = Filter::parse(&text[..end], &SHAPE);
        }
        assert!(Filter::parse(text, &SHAPE).is_ok());
    }

    #[test]
    fn unknown_names_and_bad_syntax_are_errors() {
        assert_eq!(
            Filter::parse("Nope eq 1", &SHAPE).unwrap_err(),
            SchemaError::UnknownProperty {
                property: "Nope".into(),
                type_name: "Microsoft.Dynamics.CRM.EntityMetadata".into()
            }
        );
        for bad in [
            "LogicalName eq",
            "LogicalName eq 'x' and",
            "(LogicalName eq 'x'",
            "LogicalName 'x'",
            "contains(LogicalName)",
            "LogicalName eq 'x')",
            "LogicalName eq 'unterminated",
        ] {
            assert!(
                matches!(Filter::parse(bad, &SHAPE), Err(SchemaError::BadQuery(_))),
                "{bad}"
            );
        }
    }
}
