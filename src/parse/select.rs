//! The query string: decoding it, and the options of single-record requests (`$select`).

use super::ParseError;
use crate::metadata::Entity;

/// Decodes a query string into name/value pairs (`+` is a space, as ASP.NET reads it).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of one option, if given.
pub fn option<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses `$select` into column positions, in the order given.
pub fn parse_select(entity: &Entity, text: &str) -> Result<Vec<usize>, ParseError> {
    let mut positions = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(ParseError::BadQuery(format!(
                "The $select option '{text}' has an empty item."
            )));
        }
        let position = entity
            .property_position(name)
            .ok_or_else(|| ParseError::unknown_property(entity, name))?;
        if !positions.contains(&position) {
            positions.push(position);
        }
    }
    Ok(positions)
}

/// Options accepted on a single-record request; anything else is refused rather than ignored.
pub fn record_options(
    entity: &Entity,
    pairs: &[(String, String)],
) -> Result<Option<Vec<usize>>, ParseError> {
    let mut select = None;
    for (name, value) in pairs {
        match name.as_str() {
            "$select" => select = Some(parse_select(entity, value)?),
            n if n.starts_with('@') => {}
            n if n.starts_with('$') => {
                return Err(ParseError::BadQuery(format!(
                    "The query option '{n}' is not supported on this request."
                )))
            }
            _ => {}
        }
    }
    Ok(select)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;

    #[test]
    fn select_binds_property_names() {
        let catalog = Catalog::builtin().unwrap();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let s = parse_select(ctx, "msdyn_name, _ownerid_value,msdyn_name").unwrap();
        assert_eq!(s.len(), 2);
        let err = parse_select(ctx, "msdyn_name,Nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Could not find a property named 'Nope' on type 'Microsoft.Dynamics.CRM.msdyn_smsengagementctx'."
        );
        assert!(parse_select(ctx, "msdyn_name,").is_err());
    }

    #[test]
    fn query_pairs_decode() {
        let pairs = query_pairs(Some("$select=msdyn_name&@s=%27Inactive%27&x=a+b"));
        assert_eq!(option(&pairs, "@s"), Some("'Inactive'"));
        assert_eq!(option(&pairs, "x"), Some("a b"));
    }
}
