//! The request headers that change what a message does: `Prefer`, `If-Match`, `If-None-Match`.

use super::ParseError;

/// The preferences a client asked for (`Prefer`, comma-joined or repeated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    pub return_representation: bool,
    /// The raw `odata.include-annotations` value (`*`, `OData.Community.Display.V1.FormattedValue`, ...).
    pub include_annotations: Option<String>,
    pub max_page_size: Option<u32>,
    pub continue_on_error: bool,
}

impl Prefer {
    pub fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Prefer {
        let mut prefer = Prefer::default();
        for value in values {
            for item in split_outside_quotes(value) {
                let (name, arg) = match item.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (item.trim(), None),
                };
                match (name.to_ascii_lowercase().as_str(), arg) {
                    ("return", Some(a)) if a.eq_ignore_ascii_case("representation") => {
                        prefer.return_representation = true
                    }
                    ("odata.include-annotations", Some(a)) => {
                        prefer.include_annotations = Some(a.to_string())
                    }
                    ("odata.maxpagesize", Some(a)) => prefer.max_page_size = a.parse().ok(),
                    ("odata.continue-on-error", _) => prefer.continue_on_error = true,
                    _ => {}
                }
            }
        }
        prefer
    }

    pub fn annotations(&self) -> Annotations {
        Annotations::new(self.include_annotations.as_deref())
    }
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quote = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            ',' if !in_quote => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Which instance annotations a response carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    patterns: Vec<String>,
}

pub const FORMATTED_VALUE: &str = "OData.Community.Display.V1.FormattedValue";
pub const NAVIGATION_PROPERTY: &str = "Microsoft.Dynamics.CRM.associatednavigationproperty";
pub const LOOKUP_LOGICAL_NAME: &str = "Microsoft.Dynamics.CRM.lookuplogicalname";

impl Annotations {
    pub fn new(requested: Option<&str>) -> Annotations {
        let patterns = requested
            .map(|r| {
                r.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Annotations { patterns }
    }

    pub fn none(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `name` is asked for: exactly, by `*`, or by a `Namespace.*` wildcard.
    pub fn includes(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| {
            p == "*"
                || p == name
                || p.strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('.') && name.starts_with(prefix))
        })
    }

    /// Whether any annotation needs the names of lookup targets.
    pub fn wants_formatted_values(&self) -> bool {
        self.includes(FORMATTED_VALUE)
    }
}

/// An `If-Match` or `If-None-Match` precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`.
    Any,
    /// One or more entity tags; `None` stands for a tag that is not one of ours and so never
    /// matches.
    Tags(Vec<Option<i64>>),
}

impl Condition {
    /// Parses a header value; `If-None-Match: null` (sent by clients to defeat caching) is absent.
    pub fn parse(value: Option<&str>) -> Result<Option<Condition>, ParseError> {
        let Some(value) = value.map(str::trim) else {
            return Ok(None);
        };
        if value.is_empty() || value.eq_ignore_ascii_case("null") {
            return Ok(None);
        }
        if value == "*" {
            return Ok(Some(Condition::Any));
        }
        let mut tags = Vec::new();
        for tag in value.split(',') {
            let tag = tag.trim();
            let quoted = tag.strip_prefix("W/").unwrap_or(tag);
            let inner = quoted
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| {
                    ParseError::InvalidArgument(format!(
                        "The entity tag '{tag}' is not valid: expected W/\"<version>\" or *."
                    ))
                })?;
            tags.push(inner.parse::<i64>().ok());
        }
        Ok(Some(Condition::Tags(tags)))
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            Condition::Any => true,
            Condition::Tags(tags) => tags.contains(&Some(version)),
        }
    }
}

/// The weak entity tag of a row version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_accepts_joined_and_repeated_values() {
        let p = Prefer::parse(
            [
                "return=representation, odata.include-annotations=\"OData.Community.Display.V1.FormattedValue,Microsoft.Dynamics.CRM.*\"",
                "odata.maxpagesize=2",
            ]
            .into_iter(),
        );
        assert!(p.return_representation);
        assert_eq!(p.max_page_size, Some(2));
        let a = p.annotations();
        assert!(a.includes(FORMATTED_VALUE));
        assert!(a.includes(LOOKUP_LOGICAL_NAME));
        assert!(!a.includes("Other.Thing"));
        assert!(Prefer::parse(["odata.include-annotations=*"].into_iter())
            .annotations()
            .includes("Anything.At.All"));
    }

    #[test]
    fn conditions() {
        assert_eq!(Condition::parse(None).unwrap(), None);
        assert_eq!(Condition::parse(Some("null")).unwrap(), None);
        assert_eq!(Condition::parse(Some("*")).unwrap(), Some(Condition::Any));
        let c = Condition::parse(Some("W/\"42\"")).unwrap().unwrap();
        assert!(c.matches(42) && !c.matches(43));
        let c = Condition::parse(Some("\"abc\"")).unwrap().unwrap();
        assert!(!c.matches(0));
        assert!(Condition::parse(Some("W/42")).is_err());
    }
}
