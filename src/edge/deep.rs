//! Deep insert: a create whose body nests related records, in one transaction. A nested
//! object under a single-valued navigation property (a context's `msdyn_liveworkitemid`) is
//! created first and bound; an array under a collection-valued one (a conversation's
//! contexts) is created after its parent, each bound to it. Every record goes through the
//! single Create's parser and [`Service::create`](crate::execute::Service::create) under the
//! caller's guard; a nested failure writes nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::error::ApiError;
use super::Call;
use crate::authorize::Guard;
use crate::metadata::{Catalog, Entity};
use crate::parse::body::parse_payload;
use crate::query::filter::collection;
use crate::schema::{navigations, Target};

/// The deepest nesting a deep insert takes.
const MAX_DEPTH: usize = 5;

/// Whether `object` nests a record under one of `entity`'s navigation properties.
pub(super) fn is_deep(catalog: &Catalog, entity: &Entity, object: &Map<String, Json>) -> bool {
    object.iter().any(|(key, value)| {
        (value.is_object() && single(catalog, entity, key).is_some())
            || (value.is_array() && collection(catalog, entity, key).is_some())
    })
}

/// The table a single-valued navigation property `name` of `entity` points at.
fn single<'a>(catalog: &'a Catalog, entity: &Entity, name: &str) -> Option<&'a Arc<Entity>> {
    navigations(catalog, entity)
        .into_iter()
        .find(|n| n.name == name)
        .and_then(|n| match n.target {
            Target::Entity(t) => catalog.entity(&t.logical_name),
            Target::Principal => None,
        })
}

/// Creates `object` and what it nests, in one transaction; the new parent's id and version.
pub(super) async fn create(
    call: &Call<'_>,
    entity: &Arc<Entity>,
    object: Map<String, Json>,
) -> Result<(Uuid, i64), ApiError> {
    let own = call.db.own_transaction().await?;
    let db = call.db.scoped(own.as_ref());
    let outcome = insert(call, &db, Arc::clone(entity), object, 0).await;
    super::bulk::finish(own, outcome).await
}

type Insert<'a> = Pin<Box<dyn Future<Output = Result<(Uuid, i64), ApiError>> + Send + 'a>>;

fn insert<'a>(
    call: &'a Call<'a>,
    db: &'a Guard<'a>,
    entity: Arc<Entity>,
    mut object: Map<String, Json>,
    depth: usize,
) -> Insert<'a> {
    Box::pin(async move {
        if depth >= MAX_DEPTH {
            return Err(ApiError::invalid_argument(format!(
                "A deep insert nests at most {MAX_DEPTH} levels of records."
            )));
        }
        let catalog = &call.state.service.catalog;
        let mut children = Vec::new();
        let keys: Vec<String> = object.keys().cloned().collect();
        for key in keys {
            if object[&key].is_object() {
                if let Some(target) = single(catalog, &entity, &key) {
                    let Some(Json::Object(nested)) = object.remove(&key) else {
                        continue;
                    };
                    let (id, _) = insert(call, db, Arc::clone(target), nested, depth + 1).await?;
                    let bind = format!("/{}({id})", target.entity_set_name);
                    object.insert(format!("{key}@odata.bind"), Json::String(bind));
                }
            } else if object[&key].is_array() {
                if let Some((child, lookup)) = collection(catalog, &entity, &key) {
                    let Some(Json::Array(items)) = object.remove(&key) else {
                        continue;
                    };
                    children.push((Arc::clone(child), lookup, items));
                }
            }
        }
        let payload = parse_payload(catalog, &entity, &object)?;
        let (id, version) = call
            .state
            .service
            .create(db, &call.caller, &entity, payload, None)
            .await?;
        let parent = format!("/{}({id})", entity.entity_set_name);
        for (child, lookup, items) in children {
            let bind = format!("{}@odata.bind", child.attributes[lookup].logical_name);
            for item in items {
                let Json::Object(mut nested) = item else {
                    return Err(ApiError::bad_payload(
                        "A record nested in a collection-valued navigation property must be a JSON object.",
                    ));
                };
                nested.insert(bind.clone(), Json::String(parent.clone()));
                insert(call, db, Arc::clone(&child), nested, depth + 1).await?;
            }
        }
        Ok((id, version))
    })
}
