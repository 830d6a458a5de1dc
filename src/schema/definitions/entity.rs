//! Table metadata: `EntityMetadata` and its JSON.
//!
//! Every property Microsoft's Web API reference documents for `EntityMetadata` can be selected
//! and filtered on. Values come from the table's fields, then from its page's entity property
//! table (`ObjectTypeCode`, `IsActivity`, `IsIntersect`, ... typed by their spelling), then
//! from what smsctx itself does (`IsOptimisticConcurrencyEnabled`: every table has row
//! versions); a property smsctx knows nothing about is `null`.

use serde_json::{json, Map, Value};

use super::attribute::{attribute_projection, filtered_attributes, write_attribute};
use super::member::member_projection;
use super::{label, project, projection, EntityQuery};
use crate::metadata::tracking::TrackingSettings;
use crate::metadata::{Catalog, Entity, OwnershipType};
use crate::schema::entity_metadata_id;
use crate::schema::filter::{self, Shape};
use crate::security::privilege::{privilege_id, Privilege};

/// The properties of `EntityMetadata` as Microsoft's Web API reference lists them, in the
/// order they are written (the key last).
pub(super) const ENTITY_PROPERTIES: &[&str] = &[
    "ActivityTypeMask",
    "AutoCreateAccessTeams",
    "AutoReplicateClusterRecords",
    "AutoRouteToOwnerQueue",
    "CanBeInCustomEntityAssociation",
    "CanBeInManyToMany",
    "CanBePrimaryEntityInRelationship",
    "CanBeRelatedEntityInRelationship",
    "CanChangeClusterMode",
    "CanChangeHierarchicalRelationship",
    "CanChangeTrackingBeEnabled",
    "CanCreateAttributes",
    "CanCreateCharts",
    "CanCreateForms",
    "CanCreateViews",
    "CanEnableSyncToExternalSearchIndex",
    "CanModifyAdditionalSettings",
    "CanTriggerWorkflow",
    "ChangeTrackingEnabled",
    "ClusterMode",
    "CollectionSchemaName",
    "CreatedOn",
    "DataProviderId",
    "DataSourceId",
    "DaysSinceRecordLastModified",
    "Description",
    "DisplayCollectionName",
    "DisplayName",
    "EnforceStateTransitions",
    "EntityColor",
    "EntityHelpUrl",
    "EntityHelpUrlEnabled",
    "EntitySetName",
    "ExternalCollectionName",
    "ExternalName",
    "HasActivities",
    "HasChanged",
    "HasEmailAddresses",
    "HasFeedback",
    "HasNotes",
    "IconLargeName",
    "IconMediumName",
    "IconSmallName",
    "IconVectorName",
    "IntroducedVersion",
    "IsActivity",
    "IsActivityParty",
    "IsAIRUpdated",
    "IsArchivalEnabled",
    "IsAuditEnabled",
    "IsAvailableOffline",
    "IsBPFEntity",
    "IsBusinessProcessEnabled",
    "IsChildEntity",
    "IsConnectionsEnabled",
    "IsCustomEntity",
    "IsCustomizable",
    "IsDocumentManagementEnabled",
    "IsDocumentRecommendationsEnabled",
    "IsDuplicateDetectionEnabled",
    "IsEnabledForCharts",
    "IsEnabledForExternalChannels",
    "IsEnabledForTrace",
    "IsImportable",
    "IsInteractionCentricEnabled",
    "IsIntersect",
    "IsKnowledgeManagementEnabled",
    "IsLogicalEntity",
    "IsMailMergeEnabled",
    "IsManaged",
    "IsMappable",
    "IsMSTeamsIntegrationEnabled",
    "IsOfflineInMobileClient",
    "IsOneNoteIntegrationEnabled",
    "IsOptimisticConcurrencyEnabled",
    "IsPrivate",
    "IsQuickCreateEnabled",
    "IsReadingPaneEnabled",
    "IsReadOnlyInMobileClient",
    "IsRenameable",
    "IsRetainEnabled",
    "IsRetentionEnabled",
    "IsSLAEnabled",
    "IsSolutionAware",
    "IsStateModelAware",
    "IsValidForAdvancedFind",
    "IsValidForQueue",
    "IsVisibleInMobile",
    "IsVisibleInMobileClient",
    "LogicalCollectionName",
    "LogicalName",
    "MobileOfflineFilters",
    "ModifiedOn",
    "ObjectTypeCode",
    "OwnerId",
    "OwnerIdType",
    "OwningBusinessUnit",
    "OwnershipType",
    "PrimaryIdAttribute",
    "PrimaryImageAttribute",
    "PrimaryNameAttribute",
    "Privileges",
    "RecurrenceBaseEntityLogicalName",
    "ReportViewName",
    "SchemaName",
    "SettingOf",
    "Settings",
    "SyncToExternalSearchIndex",
    "TableType",
    "UsesBusinessDataLabelTable",
    "MetadataId",
];

/// The collection-valued navigation properties of `EntityMetadata`.
pub(super) const ENTITY_NAVIGATIONS: &[&str] = &[
    "Attributes",
    "Keys",
    "ManyToManyRelationships",
    "ManyToOneRelationships",
    "OneToManyRelationships",
];

/// What `$select` and `$filter` accept on tables.
pub fn entity_shape() -> Shape<'static> {
    Shape {
        type_name: "Microsoft.Dynamics.CRM.EntityMetadata",
        properties: ENTITY_PROPERTIES,
        navigations: &[],
    }
}

/// `GET EntityDefinitions(LogicalName='entity')`.
pub fn entity_definition(
    catalog: &Catalog,
    entity: &Entity,
    root: &str,
    query: &EntityQuery,
) -> Value {
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{root}$metadata#EntityDefinitions{}/$entity",
            entity_projection(query)
        )),
    );
    out.extend(write_entity(catalog, entity, query));
    Value::Object(out)
}

/// `GET EntityDefinitions`: every table of the catalog that the filter accepts.
pub fn entities_definition(catalog: &Catalog, root: &str, query: &EntityQuery) -> Value {
    let settings = catalog.tracking();
    let mut tables: Vec<Value> = catalog
        .entities()
        .iter()
        .map(|entity| Value::Object(entity_object(&settings, entity)))
        .collect();
    filter::retain(&mut tables, query.filter.as_ref());
    let value: Vec<Value> = tables
        .iter()
        .filter_map(|table| table["LogicalName"].as_str())
        .filter_map(|name| catalog.entity(name))
        .map(|entity| Value::Object(write_entity(catalog, entity, query)))
        .collect();
    json!({
        "@odata.context": format!(
            "{root}$metadata#EntityDefinitions{}",
            entity_projection(query)
        ),
        "value": value,
    })
}

fn entity_projection(query: &EntityQuery) -> String {
    let mut expansions: Vec<(&str, String)> = Vec::new();
    if let Some(attributes) = &query.attributes {
        let inner = attribute_projection(attributes);
        let inner = inner
            .strip_prefix('(')
            .and_then(|i| i.strip_suffix(')'))
            .unwrap_or(&inner)
            .to_string();
        expansions.push(("Attributes", inner));
    }
    for (member, member_query) in &query.members {
        expansions.push((member.name(), member_projection(member_query)));
    }
    projection(query.select.as_deref(), &expansions)
}

/// One table as the query shapes it: the selected properties, then the expansions.
fn write_entity(catalog: &Catalog, entity: &Entity, query: &EntityQuery) -> Map<String, Value> {
    let settings = catalog.tracking();
    let mut out = project(
        entity_object(&settings, entity),
        query.select.as_deref(),
        "MetadataId",
    );
    if let Some(attributes) = &query.attributes {
        let values = filtered_attributes(&settings, entity, None, attributes.filter.as_ref())
            .into_iter()
            .map(|attribute| {
                let mut object = Map::new();
                write_attribute(&mut object, &settings, entity, attribute, None, attributes);
                Value::Object(object)
            })
            .collect();
        out.insert("Attributes".into(), Value::Array(values));
    }
    for (member, member_query) in &query.members {
        let items = member.items(catalog, entity, member_query);
        out.insert(member.name().to_string(), Value::Array(items));
    }
    out
}

/// Every property of a table, in declared order.
pub fn entity_object(settings: &TrackingSettings, entity: &Entity) -> Map<String, Value> {
    ENTITY_PROPERTIES
        .iter()
        .map(|name| (name.to_string(), entity_value(settings, entity, name)))
        .collect()
}

pub(super) fn entity_value(settings: &TrackingSettings, entity: &Entity, property: &str) -> Value {
    // The tables the change log watches (migration 15) track changes and are audited as their
    // settings say; no other table can.
    let watched = settings.table(&entity.logical_name);
    match property {
        "ChangeTrackingEnabled" => json!(watched.is_some_and(|t| t.change_tracking)),
        "CanChangeTrackingBeEnabled" => json!({
            "Value": watched.is_some(),
            "CanBeChanged": false,
            "ManagedPropertyLogicalName": "canchangetrackingbeenabled",
        }),
        "IsAuditEnabled" => json!({
            "Value": watched.is_some_and(|t| t.audit),
            "CanBeChanged": watched.is_some(),
            "ManagedPropertyLogicalName": "canmodifyauditsettings",
        }),
        "LogicalName" => json!(entity.logical_name),
        "SchemaName" => json!(entity.schema_name),
        "EntitySetName" => json!(entity.entity_set_name),
        "PrimaryIdAttribute" => json!(entity.primary_id),
        "PrimaryNameAttribute" => json!(entity.primary_name),
        "OwnershipType" => json!(entity.ownership.name()),
        "DisplayName" => label(&entity.display_name),
        "DisplayCollectionName" => label(&entity.display_collection_name),
        "Description" => label(&entity.description),
        "MetadataId" => json!(entity_metadata_id(entity)),
        "Privileges" => privileges(entity),
        _ => {
            if let Some(text) = entity.properties.get(property) {
                return typed(text);
            }
            match property {
                // A publisher prefix (`msdyn_`, `smsctx_`) marks a table that is not part of
                // the base system.
                "IsCustomEntity" => json!(entity.logical_name.contains('_')),
                "IsActivity"
                | "IsIntersect"
                | "IsPrivate"
                | "IsLogicalEntity"
                | "IsActivityParty"
                | "IsChildEntity"
                | "IsBPFEntity"
                | "HasActivities"
                | "HasNotes"
                | "HasEmailAddresses"
                | "HasFeedback"
                | "EnforceStateTransitions"
                | "AutoRouteToOwnerQueue"
                | "AutoCreateAccessTeams" => json!(false),
                "IsManaged" | "IsValidForAdvancedFind" | "IsOptimisticConcurrencyEnabled" => {
                    json!(true)
                }
                "IsStateModelAware" => json!(entity.state_model().is_some()),
                "IsCustomizable" => json!({
                    "Value": true,
                    "CanBeChanged": false,
                    "ManagedPropertyLogicalName": "iscustomizable",
                }),
                "TableType" => json!("Standard"),
                "IntroducedVersion" => json!("1.0"),
                "PrimaryImageAttribute" => Value::Null,
                "Settings" => json!([]),
                _ => Value::Null,
            }
        }
    }
}

/// A page value typed by its spelling: `True`/`False`, an integer, or text.
fn typed(text: &str) -> Value {
    match text {
        "True" | "true" => json!(true),
        "False" | "false" => json!(false),
        _ => text
            .parse::<i64>()
            .map(|n| json!(n))
            .unwrap_or_else(|_| json!(text)),
    }
}

/// The table's privileges (`SecurityPrivilegeMetadata`) under the ids the security model uses;
/// Assign and Share exist only for tables that users and teams own.
fn privileges(entity: &Entity) -> Value {
    let owned = entity.ownership == OwnershipType::UserOwned;
    let values: Vec<Value> = Privilege::ALL
        .into_iter()
        .filter(|p| owned || !matches!(p, Privilege::Assign | Privilege::Share))
        .map(|privilege| {
            let name = privilege.dataverse_name(&entity.logical_name);
            json!({
                "CanBeBasic": owned,
                "CanBeDeep": owned,
                "CanBeGlobal": true,
                "CanBeLocal": owned,
                "CanBeEntityReference": false,
                "CanBeParentEntityReference": false,
                "CanBeRecordFilter": false,
                "Name": name,
                "PrivilegeId": privilege_id(&name),
                "PrivilegeType": privilege.name(),
            })
        })
        .collect();
    Value::Array(values)
}
