//! The `$filter` tokenizer: text in, a list of positioned tokens out.
//!
//! Words are runs of ASCII letters, digits and `_ . - : + /`; a word is then classified as a
//! literal (GUID, integer, date, date-time, `true`, `false`, `null`) or a name (property,
//! keyword, function). Strings are single-quoted with `''` as the escape; double-quoted JSON
//! strings exist only for the value arrays of query functions. Positions are 0-based character
//! offsets. The tokenizer knows nothing of the entity.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::ast::Literal;
use super::error::QueryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A name: property, keyword (`eq`, `and`, ...), function (`Microsoft.Dynamics.CRM.In`).
    Word(String),
    /// A literal, typed by its spelling.
    Literal(Literal),
    /// A double-quoted JSON string (`"1"`), allowed inside value arrays.
    JsonString(String),
    /// A parameter alias, with its `@`.
    Alias(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Equals,
    /// The `:` after a lambda variable (`any(c:c/statecode eq 0)`).
    Colon,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Character offset of the first character of the token.
    pub position: usize,
    /// Where the token is written in the text, in bytes, for error messages.
    pub span: std::ops::Range<usize>,
}

impl Token {
    /// How an error message names the token; `text` is the one it was read from.
    pub fn describe(&self, text: &str) -> String {
        match self.kind {
            TokenKind::End => "the end of the input".to_string(),
            _ => format!("'{}'", &text[self.span.clone()]),
        }
    }
}

/// Splits `text` into tokens, ending with a [`TokenKind::End`] token.
pub fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    // Each char with its byte offset (and the end's), so a token's text is a slice of `text`:
    // positions stay counted in chars, as error messages give them.
    let mut offsets = Vec::with_capacity(text.len() + 1);
    let mut chars = Vec::with_capacity(text.len());
    for (offset, c) in text.char_indices() {
        offsets.push(offset);
        chars.push(c);
    }
    offsets.push(text.len());
    let span = |from: usize, to: usize| &text[offsets[from]..offsets[to]];
    let mut tokens = Vec::with_capacity(8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let simple = match c {
            '(' => Some(TokenKind::LParen),
            ')' => Some(TokenKind::RParen),
            '[' => Some(TokenKind::LBracket),
            ']' => Some(TokenKind::RBracket),
            ',' => Some(TokenKind::Comma),
            '=' => Some(TokenKind::Equals),
            ':' => Some(TokenKind::Colon),
            _ => None,
        };
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if let Some(kind) = simple {
            i += 1;
            kind
        } else if c == '\'' {
            let (value, end) = quoted(&chars, &offsets, i, text)?;
            i = end;
            TokenKind::Literal(Literal::String(value))
        } else if c == '"' {
            let end = json_string_end(&chars, i, text)?;
            let raw = span(i, end);
            i = end;
            let value = serde_json::from_str::<String>(raw)
                .map_err(|_| syntax(text, start, format!("'{raw}'"), "a JSON string"))?;
            TokenKind::JsonString(value)
        } else if c == '@' {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if i == start + 1 {
                return Err(syntax(text, start, "'@'".into(), "a parameter alias name"));
            }
            TokenKind::Alias(span(start, i).to_string())
        } else if is_word_char(c) {
            // A name ends at a `:` (a lambda variable); a date-time keeps its colons.
            let name = c.is_ascii_alphabetic() || c == '_';
            while i < chars.len() && is_word_char(chars[i]) && !(name && chars[i] == ':') {
                i += 1;
            }
            let word = span(start, i);
            classify(word)
                .ok_or_else(|| syntax(text, start, format!("'{word}'"), "a name or a literal"))?
        } else {
            return Err(syntax(text, start, format!("'{c}'"), "a name or a literal"));
        };
        tokens.push(Token {
            kind,
            position: start,
            span: offsets[start]..offsets[i],
        });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: chars.len(),
        span: text.len()..text.len(),
    });
    Ok(tokens)
}

pub(crate) fn syntax(
    text: &str,
    position: usize,
    found: String,
    expected: &'static str,
) -> QueryError {
    QueryError::Syntax {
        position,
        text: text.to_string(),
        found,
        expected,
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '+' | '/')
}

/// Reads a single-quoted string starting at `start`; returns its value and the offset after
/// the closing quote. The runs between quotes are copied as slices of `text` (`offsets` holds
/// each char's byte offset).
fn quoted(
    chars: &[char],
    offsets: &[usize],
    start: usize,
    text: &str,
) -> Result<(String, usize), QueryError> {
    let mut value = String::new();
    let mut i = start + 1;
    let mut run = i;
    while i < chars.len() {
        if chars[i] == '\'' {
            value.push_str(&text[offsets[run]..offsets[i]]);
            if chars.get(i + 1) == Some(&'\'') {
                value.push('\'');
                i += 2;
                run = i;
                continue;
            }
            return Ok((value, i + 1));
        }
        i += 1;
    }
    Err(QueryError::UnterminatedLiteral {
        position: chars.len(),
        text: text.to_string(),
    })
}

/// The offset after the closing quote of the JSON string starting at `start`.
fn json_string_end(chars: &[char], start: usize, text: &str) -> Result<usize, QueryError> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(QueryError::UnterminatedLiteral {
        position: chars.len(),
        text: text.to_string(),
    })
}

/// A word as a literal or a name; `None` when it is neither.
fn classify(word: &str) -> Option<TokenKind> {
    if let Some(guid) = parse_guid(word) {
        return Some(TokenKind::Literal(Literal::Guid(guid)));
    }
    let literal = match word {
        "true" => Some(Literal::Bool(true)),
        "false" => Some(Literal::Bool(false)),
        "null" => Some(Literal::Null),
        _ => None,
    };
    if let Some(literal) = literal {
        return Some(TokenKind::Literal(literal));
    }
    let first = word.chars().next()?;
    if first.is_ascii_digit() || first == '-' {
        return parse_number_or_date(word).map(TokenKind::Literal);
    }
    let is_name = (first.is_ascii_alphabetic() || first == '_')
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/'));
    is_name.then(|| TokenKind::Word(word.to_string()))
}

/// A GUID in its hyphenated 8-4-4-4-12 form only.
pub(crate) fn parse_guid(text: &str) -> Option<uuid::Uuid> {
    let hyphens_in_place = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if hyphens_in_place {
        uuid::Uuid::parse_str(text).ok()
    } else {
        None
    }
}

/// An integer, a date (`2024-05-01`) or a date-time (`2024-05-01T10:00:00Z`, with an offset or
/// none, which means UTC).
pub(crate) fn parse_number_or_date(text: &str) -> Option<Literal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(Literal::Int);
    }
    if let Some(date) = parse_date(text) {
        return Some(Literal::Date(date));
    }
    parse_datetime(text).map(Literal::DateTime)
}

/// `YYYY-MM-DD` as the unix seconds of its midnight UTC.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let date = time::Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// An ISO 8601 date-time as unix seconds; without an offset it is taken as UTC. Fractions of a
/// second are dropped.
pub(crate) fn parse_datetime(text: &str) -> Option<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(text, local)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokenizes `input` and prints each token as `kind:text` (literals as their `Debug`).
    fn check(input: &str, expected: &str) {
        let tokens = tokenize(input).expect("tokenizes");
        let printed: Vec<String> = tokens
            .iter()
            .map(|t| match &t.kind {
                TokenKind::Word(w) => format!("word:{w}"),
                TokenKind::Literal(l) => format!("lit:{l:?}"),
                TokenKind::JsonString(s) => format!("json:{s}"),
                TokenKind::Alias(a) => format!("alias:{a}"),
                TokenKind::End => format!("end@{}", t.position),
                _ => input[t.span.clone()].to_string(),
            })
            .collect();
        assert_eq!(printed.join(" "), expected);
    }

    fn check_error(input: &str, expected: &str) {
        let error = tokenize(input).expect_err("fails");
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn names_keywords_and_integers() {
        check(
            "statecode eq 0 and versionnumber gt -12",
            "word:statecode word:eq lit:Int(0) word:and word:versionnumber word:gt lit:Int(-12) end@39",
        );
    }

    #[test]
    fn strings_with_escaped_quotes_and_unicode() {
        check(
            "msdyn_name eq 'it''s é'",
            r#"word:msdyn_name word:eq lit:String("it's é") end@23"#,
        );
        check("''", r#"lit:String("") end@2"#);
        check("'''a''' eq", r#"lit:String("'a'") word:eq end@10"#);
    }

    #[test]
    fn guids_dates_and_datetimes() {
        check(
            "4026BE43-6b69-e111-8f65-78e7d1620f5e",
            "lit:Guid(4026be43-6b69-e111-8f65-78e7d1620f5e) end@36",
        );
        check(
            "abcdef01-0000-0000-0000-000000000000",
            "lit:Guid(abcdef01-0000-0000-0000-000000000000) end@36",
        );
        check("2024-05-01", "lit:Date(1714521600) end@10");
        check("2024-05-01T10:00:00Z", "lit:DateTime(1714557600) end@20");
        check(
            "2024-05-01T12:00:00+02:00",
            "lit:DateTime(1714557600) end@25",
        );
        check(
            "2024-05-01T10:00:00.123Z",
            "lit:DateTime(1714557600) end@24",
        );
        check("2024-05-01T10:00:00", "lit:DateTime(1714557600) end@19");
        check(
            "true false null",
            "lit:Bool(true) lit:Bool(false) lit:Null end@15",
        );
    }

    #[test]
    fn punctuation_aliases_and_json_strings() {
        check(
            r#"Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=["1","a\"b"])"#,
            r#"word:Microsoft.Dynamics.CRM.In ( word:PropertyName = alias:@p1 , word:PropertyValues = [ json:1 , json:a"b ] ) end@71"#,
        );
    }

    #[test]
    fn unterminated_strings_report_the_end_of_the_text() {
        check_error(
            "msdyn_name eq 'abc",
            "There is an unterminated literal at position 18 in 'msdyn_name eq 'abc'.",
        );
        check_error(
            "msdyn_name eq 'it''",
            "There is an unterminated literal at position 19 in 'msdyn_name eq 'it'''.",
        );
        check_error(
            r#"["abc\"]"#,
            r#"There is an unterminated literal at position 8 in '["abc\"]'."#,
        );
    }

    #[test]
    fn bad_words_and_characters_are_syntax_errors() {
        check_error(
            "statecode eq 12abc",
            "Syntax error at position 13 in 'statecode eq 12abc': expected a name or a literal, found '12abc'.",
        );
        check_error(
            "statecode eq 99999999999999999999",
            "Syntax error at position 13 in 'statecode eq 99999999999999999999': expected a name or a literal, found '99999999999999999999'.",
        );
        check_error(
            "nämé eq 1",
            "Syntax error at position 1 in 'nämé eq 1': expected a name or a literal, found 'ä'.",
        );
        check_error(
            "x eq @",
            "Syntax error at position 5 in 'x eq @': expected a parameter alias name, found '@'.",
        );
        check_error(
            "createdon eq 2024-13-01",
            "Syntax error at position 13 in 'createdon eq 2024-13-01': expected a name or a literal, found '2024-13-01'.",
        );
    }
}
