//! No query option is dropped: before a request runs, each name in its query string is checked
//! against what the addressed resource applies. A name is either read by the handler that
//! serves the resource or refused here with a 400, never ignored.
//!
//! - `@name` are parameter aliases, read by `$filter` and by function parameters.
//! - `fetchXml`, `sql`, `savedQuery`, `userQuery` choose the query of a RetrieveMultiple: only on
//!   `GET /{set}`, at most one of them, and without OData `$` options (`sql` pages with
//!   `$skiptoken`).
//! - `$` options: `GET /{set}` and the single-record resources leave them to
//!   [`crate::query::QueryOptions`] and their handlers (which apply or refuse each), and
//!   `EntityDefinitions` to [`crate::schema`]; `/$count` applies `$filter` only; the association
//!   `$ref` routes apply `$id`; every other resource applies none.
//! - Any other name is refused as Dataverse does: `The query parameter X is not supported`.

use axum::http::Method;

use crate::parse::path::Resource;
use crate::parse::ParseError;
use crate::query::QueryError;

use super::error::ApiError;

/// The query options that choose a RetrieveMultiple's query instead of OData's `$` options.
pub(crate) const QUERY_CHOOSERS: [&str; 4] = ["fetchXml", "sql", "savedQuery", "userQuery"];

/// Which `$` options a resource leaves to its handler.
enum Dollar {
    /// The handler reads them and refuses what it does not apply.
    Handler,
    /// These, and no others.
    Only(&'static [&'static str]),
}

/// Refuses every query option `resource` does not apply.
pub(crate) fn check(
    resource: &Resource,
    method: &Method,
    pairs: &[(String, String)],
) -> Result<(), ApiError> {
    let get = *method == Method::GET;
    let (dollar, choosers, named): (Dollar, bool, &[&str]) = match resource {
        Resource::Collection(_) if get => (Dollar::Handler, true, &[]),
        Resource::Collection(_) | Resource::Record(..) if *method == Method::DELETE => {
            (Dollar::Only(&[]), false, &[])
        }
        Resource::Collection(_) | Resource::Record(..) => (Dollar::Handler, false, &[]),
        Resource::Navigation {
            reference: false, ..
        } if get => (Dollar::Handler, false, &[]),
        Resource::Count(_) => (Dollar::Only(&["$filter"]), false, &[]),
        Resource::Schema(_) => (Dollar::Handler, false, &[]),
        Resource::Metadata => (Dollar::Only(&[]), false, &["annotations"]),
        Resource::Association { .. } | Resource::RelatedReference { .. } => {
            (Dollar::Only(&["$id"]), false, &[])
        }
        Resource::RelatedRows { .. } if get => (Dollar::Handler, false, &[]),
        _ => (Dollar::Only(&[]), false, &[]),
    };
    let mut chosen: Option<&str> = None;
    for (name, _) in pairs {
        if name.starts_with('@') || named.contains(&name.as_str()) {
            continue;
        }
        if let Some(option) = name.strip_prefix('$').map(|_| name.as_str()) {
            match dollar {
                Dollar::Handler => {}
                Dollar::Only(allowed) if allowed.contains(&option) => {}
                Dollar::Only(_) => return Err(not_on_this_request(option)),
            }
            continue;
        }
        if QUERY_CHOOSERS.contains(&name.as_str()) {
            if !choosers {
                return Err(not_on_this_request(name));
            }
            if let Some(first) = chosen.filter(|first| *first != name) {
                return Err(ParseError::BadQuery(format!(
                    "The query options '{first}' and '{name}' cannot be combined."
                ))
                .into());
            }
            chosen = Some(name);
            continue;
        }
        return Err(QueryError::UnknownOption { name: name.clone() }.into());
    }
    if let Some(chooser) = chosen {
        let allowed: &[&str] = if chooser == "sql" {
            &["$skiptoken"]
        } else {
            &[]
        };
        if let Some((option, _)) = pairs
            .iter()
            .find(|(k, _)| k.starts_with('$') && !allowed.contains(&k.as_str()))
        {
            return Err(ParseError::BadQuery(format!(
                "The query option '{chooser}' cannot be combined with '{option}'."
            ))
            .into());
        }
    }
    Ok(())
}

fn not_on_this_request(name: &str) -> ApiError {
    ParseError::BadQuery(format!(
        "The query option '{name}' is not supported on this request."
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::Catalog;
    use std::sync::Arc;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entity() -> Arc<crate::metadata::Entity> {
        Catalog::builtin()
            .unwrap()
            .entity("msdyn_smsengagementctx")
            .unwrap()
            .clone()
    }

    fn refused(resource: &Resource, method: Method, items: &[(&str, &str)]) -> bool {
        check(resource, &method, &pairs(items)).is_err()
    }

    #[test]
    fn query_choosers_apply_to_a_collection_get_only() {
        let collection = Resource::Collection(entity());
        let record = Resource::Record(entity(), uuid::Uuid::nil());
        for chooser in QUERY_CHOOSERS {
            assert!(!refused(&collection, Method::GET, &[(chooser, "x")]));
            assert!(refused(&collection, Method::POST, &[(chooser, "x")]));
            assert!(refused(&record, Method::GET, &[(chooser, "x")]));
            assert!(refused(
                &collection,
                Method::GET,
                &[(chooser, "x"), ("$top", "1")]
            ));
        }
        assert!(refused(
            &collection,
            Method::GET,
            &[("sql", "x"), ("fetchXml", "y")]
        ));
        assert!(!refused(
            &collection,
            Method::GET,
            &[("sql", "x"), ("$skiptoken", "y")]
        ));
    }

    #[test]
    fn unknown_names_are_refused_everywhere() {
        for resource in [
            Resource::Collection(entity()),
            Resource::Count(entity()),
            Resource::Record(entity(), uuid::Uuid::nil()),
            Resource::ServiceDocument,
            Resource::Metadata,
        ] {
            assert!(refused(&resource, Method::GET, &[("utm_source", "x")]));
            assert!(!refused(&resource, Method::GET, &[("@p1", "1")]));
        }
    }

    #[test]
    fn resources_without_options_refuse_dollar_options() {
        let property = Resource::Property {
            entity: entity(),
            id: uuid::Uuid::nil(),
            position: 0,
            raw: false,
        };
        assert!(refused(
            &property,
            Method::GET,
            &[("$select", "msdyn_name")]
        ));
        assert!(refused(
            &Resource::Count(entity()),
            Method::GET,
            &[("$top", "1")]
        ));
        assert!(!refused(
            &Resource::Count(entity()),
            Method::GET,
            &[("$filter", "x")]
        ));
        assert!(refused(
            &Resource::ServiceDocument,
            Method::GET,
            &[("$top", "1")]
        ));
        assert!(!refused(
            &Resource::Metadata,
            Method::GET,
            &[("annotations", "true")]
        ));
        // The SMS channel set takes no option: a narrowing one is refused, not ignored.
        let channels = Resource::SmsChannels(None);
        assert!(refused(&channels, Method::GET, &[("$filter", "x")]));
        assert!(!refused(&channels, Method::GET, &[]));
    }
}
