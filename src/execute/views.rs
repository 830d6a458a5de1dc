//! Views: the default system views seeded on start, and the reading of a view's query for
//! `?savedQuery=` / `?userQuery=`.

use std::sync::Arc;

use uuid::Uuid;

use super::{Caller, ExecError, Service};
use crate::metadata::views::{
    SystemView, DEFAULT_VIEWS, FETCH_XML, IS_DEFAULT, IS_QUICK_FIND_QUERY, LAYOUT_XML, NAME,
    QUERY_TYPE, RETURNED_TYPE_CODE, SAVED_QUERY,
};
use crate::metadata::Entity;
use crate::parse::body::Payload;
use crate::store::{Access, StoreError, Value};

/// The stable id of a default system view, so seeding again finds the same row.
pub fn system_view_id(view: &SystemView) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x8e6b_0d3c_5f1a_4c7e_9b2d_6a40_1f3e_7c01);
    Uuid::new_v5(
        &NAMESPACE,
        format!("{}:{}", view.table, view.name).as_bytes(),
    )
}

/// Creates each default system view that does not exist yet, as `admin`.
pub async fn seed_system_views(service: &Service, admin: &Caller) -> Result<(), ExecError> {
    let store: &dyn Access = &*service.store;
    let saved = table(service, SAVED_QUERY)?;
    for view in DEFAULT_VIEWS {
        let id = system_view_id(view);
        if store.get(&saved, id, false).await?.is_some() {
            continue;
        }
        let code = crate::security::privilege::object_type_code(view.table);
        let values = [
            (NAME, Value::Text(view.name.to_string())),
            (RETURNED_TYPE_CODE, Value::Text(view.table.to_string())),
            (QUERY_TYPE, Value::Int(view.query_type)),
            (IS_DEFAULT, Value::Bool(view.is_default)),
            (IS_QUICK_FIND_QUERY, Value::Bool(false)),
            (FETCH_XML, Value::Text(view.fetch_xml())),
            (LAYOUT_XML, Value::Text(view.layout_xml(code))),
        ];
        let payload = Payload {
            values: values
                .into_iter()
                .filter_map(|(column, value)| saved.position(column).map(|p| (p, value)))
                .collect(),
            binds: Vec::new(),
        };
        match service
            .create(store, admin, &saved, payload, Some(id))
            .await
        {
            Ok(_) | Err(ExecError::Duplicate) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A view's query: the FetchXML of the view `id` of `views` (`savedquery` or `userquery`),
/// read through the caller's guard, checked to query `entity`.
pub async fn view_fetch_xml(
    service: &Service,
    db: &dyn Access,
    caller: &Caller,
    views: &Arc<Entity>,
    id: Uuid,
    entity: &Entity,
) -> Result<String, ExecError> {
    let view = service.retrieve(db, caller, views, id, false).await?;
    let table = view.get(RETURNED_TYPE_CODE).as_text().unwrap_or_default();
    if !table.eq_ignore_ascii_case(&entity.logical_name) {
        return Err(ExecError::InvalidArgument(format!(
            "The {} with Id = {id} returns '{table}', but the request addresses '{}'.",
            views.logical_name, entity.entity_set_name
        )));
    }
    view.get(FETCH_XML)
        .as_text()
        .map(str::to_string)
        .ok_or_else(|| {
            ExecError::InvalidArgument(format!(
                "The {} with Id = {id} has no fetchxml.",
                views.logical_name
            ))
        })
}

/// A view table of the catalog.
pub fn table(service: &Service, name: &str) -> Result<Arc<Entity>, StoreError> {
    service
        .catalog
        .entity(name)
        .cloned()
        .ok_or_else(|| StoreError::Database(format!("no {name} table")))
}
