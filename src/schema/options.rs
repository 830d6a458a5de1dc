//! The system query options of the schema requests, read into names and raw `$filter` text;
//! each request type checks them against the metadata type it returns.

use super::SchemaError;

/// One `$expand` item: `Name` or `Name($select=...;$filter=...;$expand=...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    pub name: String,
    pub select: Option<Vec<String>>,
    pub filter: Option<String>,
    pub expand: Vec<Expansion>,
}

/// `$select`, `$filter` and `$expand`; any other `$` option is refused, parameter aliases and
/// custom options (no `$`) pass.
#[derive(Debug, Default)]
pub struct QueryOptions {
    pub select: Option<Vec<String>>,
    pub filter: Option<String>,
    pub expand: Vec<Expansion>,
}

impl QueryOptions {
    pub fn parse(query: &[(String, String)]) -> Result<QueryOptions, SchemaError> {
        let mut options = QueryOptions::default();
        for (name, value) in query {
            match name.as_str() {
                "$select" => options.select = Some(parse_select(value)?),
                "$expand" => options.expand = parse_expand(value)?,
                "$filter" => options.filter = Some(value.clone()),
                n if n.starts_with('$') => return Err(unsupported(n)),
                _ => {}
            }
        }
        Ok(options)
    }

    /// Refuses `$filter` where the request addresses one object.
    pub fn single(self) -> Result<QueryOptions, SchemaError> {
        match self.filter {
            Some(_) => Err(unsupported("$filter")),
            None => Ok(self),
        }
    }
}

pub fn unsupported(option: &str) -> SchemaError {
    SchemaError::BadQuery(format!(
        "The query option '{option}' is not supported on this request."
    ))
}

pub fn parse_select(text: &str) -> Result<Vec<String>, SchemaError> {
    let mut names: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(SchemaError::BadQuery(format!(
                "The $select option '{text}' has an empty item."
            )));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// `a,b($select=x;$expand=c($select=y))`: items separated by top-level commas, each with
/// `;`-separated options in parentheses.
pub fn parse_expand(text: &str) -> Result<Vec<Expansion>, SchemaError> {
    let bad = |why: &str| SchemaError::BadQuery(format!("The $expand option '{text}' {why}."));
    let mut items = Vec::new();
    for item in split_top_level(text, ',').ok_or_else(|| bad("has unbalanced parentheses"))? {
        let item = item.trim();
        let (name, options) = match item.split_once('(') {
            None => (item, None),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix(')')
                    .ok_or_else(|| bad("has text after a closing parenthesis"))?;
                (name.trim(), Some(inner))
            }
        };
        if name.is_empty() {
            return Err(bad("has an empty item"));
        }
        let mut expansion = Expansion {
            name: name.to_string(),
            ..Expansion::default()
        };
        let options = options
            .map(|o| split_top_level(o, ';'))
            .unwrap_or(Some(Vec::new()));
        for option in options.ok_or_else(|| bad("has unbalanced parentheses"))? {
            let option = option.trim();
            if option.is_empty() {
                continue;
            }
            match option.split_once('=') {
                Some(("$select", value)) => expansion.select = Some(parse_select(value)?),
                Some(("$expand", value)) => expansion.expand = parse_expand(value)?,
                Some(("$filter", value)) => expansion.filter = Some(value.to_string()),
                _ => {
                    return Err(bad(&format!(
                        "has the option '{option}' inside '{name}', where only $select, $filter and $expand are supported"
                    )))
                }
            }
        }
        items.push(expansion);
    }
    Ok(items)
}

/// Splits at `separator` outside parentheses and quotes; `None` when parentheses don't balance.
pub fn split_top_level(text: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            c if c == separator && depth == 0 && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_options_nest_with_semicolons() {
        let parsed = parse_expand(
            "Attributes($select=LogicalName,AttributeType;$filter=AttributeType eq 'String';$expand=OptionSet($select=Options)),Keys",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                Expansion {
                    name: "Attributes".into(),
                    select: Some(vec!["LogicalName".into(), "AttributeType".into()]),
                    filter: Some("AttributeType eq 'String'".into()),
                    expand: vec![Expansion {
                        name: "OptionSet".into(),
                        select: Some(vec!["Options".into()]),
                        filter: None,
                        expand: vec![],
                    }],
                },
                Expansion {
                    name: "Keys".into(),
                    ..Expansion::default()
                },
            ]
        );
    }
}
