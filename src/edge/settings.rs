//! The audit and change-tracking settings at the edge: the catalog's copy read again from the
//! store before what depends on it (so every node answers with the stored settings), and
//! `PUT EntityDefinitions(...)` / `PUT EntityDefinitions(...)/Attributes(...)`, the metadata
//! updates that change a table's `IsAuditEnabled` and `ChangeTrackingEnabled` and a column's
//! `IsAuditEnabled` (a System Administrator's, through the guard).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json;

use super::error::ApiError;
use super::Call;
use crate::schema::{DefinitionsRequest, SchemaError};

/// Reads the stored settings into the catalog.
pub(super) async fn refresh(call: &Call<'_>) -> Result<(), ApiError> {
    if let Some(settings) = call.db.tracking_settings().await? {
        call.state.service.catalog.set_tracking(settings);
    }
    Ok(())
}

/// `PUT EntityDefinitions(LogicalName='x')` or `.../Attributes(LogicalName='y')` with the
/// definition: stores the settings it changes; 204.
pub(super) async fn put_definition(
    call: &Call<'_>,
    segments: &[String],
) -> Result<Response, ApiError> {
    let request = crate::schema::parse_definitions_path(segments, &[])?;
    let body: Json = serde_json::from_slice(&call.body).map_err(|e| {
        SchemaError::BadPayload(format!("The metadata definition is not JSON: {e}."))
    })?;
    refresh(call).await?;
    let catalog = &call.state.service.catalog;
    let settings = catalog.tracking();
    match request {
        DefinitionsRequest::Entity { key, .. } => {
            let entity = crate::schema::resolve_entity(catalog, &key)?;
            if let Some(table) = crate::schema::entity_update(&settings, entity, &body)? {
                call.db.set_table_tracking(&table).await?;
            }
        }
        DefinitionsRequest::Attribute {
            entity, attribute, ..
        } => {
            let entity = crate::schema::resolve_entity(catalog, &entity)?;
            let attribute = crate::schema::resolve_attribute(entity, &attribute)?;
            if let Some(column) =
                crate::schema::attribute_update(&settings, entity, attribute, &body)?
            {
                call.db.set_column_audit(&column).await?;
            }
        }
        _ => return Err(ApiError::no_resource(&call.uri)),
    }
    refresh(call).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
