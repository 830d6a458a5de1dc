//! The query string, decoded into name/value pairs (the query options are [`crate::query`]'s).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode() {
        let pairs = query_pairs(Some("$select=msdyn_name&@s=%27Inactive%27&x=a+b"));
        assert_eq!(option(&pairs, "@s"), Some("'Inactive'"));
        assert_eq!(option(&pairs, "x"), Some("a b"));
    }
}
