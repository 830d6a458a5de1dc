//! The request headers that change what a message does: `Prefer`, `If-Match`, `If-None-Match`.
//!
//! Header values arrive as bytes. Each header is read by its own grammar, and a value outside it
//! is a [`ParseError`] (a 400), never "the header is absent": a condition that cannot be read must
//! not let a write through unconditionally.

use super::ParseError;

/// The preferences a client asked for (`Prefer`, comma-joined or repeated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    pub return_representation: bool,
    /// The raw `odata.include-annotations` value (`*`, `OData.Community.Display.V1.FormattedValue`, ...).
    pub include_annotations: Option<String>,
    pub max_page_size: Option<u32>,
    pub continue_on_error: bool,
    /// `odata.track-changes`: a list answers a delta link too.
    pub track_changes: bool,
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
                    ("odata.track-changes", _) => prefer.track_changes = true,
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
    /// Parses the bytes of an `If-Match` or `If-None-Match` header (`name`, for messages) by
    /// RFC 9110's grammar: `*` or a comma-separated list of `W/"..."` / `"..."` whose characters
    /// are `etagc` (`!`, `#`-`~` and obs-text). A tag that is valid but not one of ours (such as
    /// `"\xe9"`) never matches, so `If-Match` with it is false. `If-None-Match: null` (sent by
    /// clients to defeat caching) is absent.
    pub fn parse(name: &str, value: Option<&[u8]>) -> Result<Option<Condition>, ParseError> {
        let Some(value) = value.map(trim_ows) else {
            return Ok(None);
        };
        if value.is_empty() || value.eq_ignore_ascii_case(b"null") {
            return Ok(None);
        }
        if value == b"*" {
            return Ok(Some(Condition::Any));
        }
        let mut tags = Vec::new();
        for tag in value.split(|b| *b == b',').map(trim_ows) {
            let quoted = tag.strip_prefix(b"W/").unwrap_or(tag);
            let inner = quoted
                .strip_prefix(b"\"")
                .and_then(|t| t.strip_suffix(b"\""))
                .filter(|inner| inner.iter().all(|&b| is_etagc(b)))
                .ok_or_else(|| {
                    ParseError::InvalidArgument(format!(
                        "The {name} header's entity tag '{}' is not valid: expected W/\"<version>\", \"<version>\" or *.",
                        String::from_utf8_lossy(tag).escape_debug()
                    ))
                })?;
            let version = std::str::from_utf8(inner)
                .ok()
                .and_then(|text| text.parse::<i64>().ok());
            tags.push(version);
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

/// RFC 9110's `etagc`: `!`, `#` to `~`, and obs-text.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A header whose grammar is ASCII (`Prefer`, `Content-Type`, impersonation GUIDs, credentials,
/// signatures) as text: visible ASCII, spaces and tabs; any other byte is a 400 naming the header.
pub fn ascii_text<'v>(name: &str, value: &'v [u8]) -> Result<&'v str, ParseError> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
    {
        // Visible ASCII is UTF-8.
        Ok(std::str::from_utf8(value).unwrap_or_default())
    } else {
        Err(ParseError::InvalidArgument(format!(
            "The {name} header contains bytes that are not allowed in it (only visible ASCII, spaces and tabs)."
        )))
    }
}

/// The weak entity tag of a row version.
pub fn etag(version: i64) -> String {
    ["W/\"", itoa::Buffer::new().format(version), "\""].concat()
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

    fn condition(value: &[u8]) -> Result<Option<Condition>, ParseError> {
        Condition::parse("If-Match", Some(value))
    }

    #[test]
    fn conditions() {
        assert_eq!(Condition::parse("If-Match", None).unwrap(), None);
        assert_eq!(condition(b"null").unwrap(), None);
        assert_eq!(condition(b" * ").unwrap(), Some(Condition::Any));
        let c = condition(b"W/\"42\"").unwrap().unwrap();
        assert!(c.matches(42) && !c.matches(43));
        let c = condition(b"\"abc\", W/\"7\"").unwrap().unwrap();
        assert!(!c.matches(0) && c.matches(7));
        assert!(condition(b"W/42").is_err());
    }

    #[test]
    fn obs_text_tags_are_valid_and_never_match() {
        for value in [&b"\"\xe9\""[..], "\"\u{e9}\"".as_bytes(), b"W/\"\xff1\""] {
            let c = condition(value).unwrap().unwrap();
            assert_eq!(c, Condition::Tags(vec![None]), "{value:?}");
        }
        for value in [
            &b"\"a\tb\""[..],
            b"\xe9",
            b"\"a\"b\"",
            b"\"\x7f\"",
            b"W/\"1\",\x01",
        ] {
            assert!(condition(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn ascii_headers_refuse_other_bytes() {
        assert_eq!(
            ascii_text("Prefer", b"return=representation\t").unwrap(),
            "return=representation\t"
        );
        let e = ascii_text("Prefer", b"odata.maxpagesize=\xe9").unwrap_err();
        assert!(e.to_string().contains("Prefer"), "{e}");
        assert!(ascii_text("Prefer", b"a\x00").is_err());
    }
}
