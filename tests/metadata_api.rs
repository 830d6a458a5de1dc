//! The metadata Web API over HTTP: `EntityDefinitions` as a queryable collection and its
//! sub-collections, `RelationshipDefinitions`, `GlobalOptionSetDefinitions`,
//! `RetrieveMetadataChanges` and the message catalog, including the exact requests (as they go
//! on the wire, percent-encoded by Python's `requests`) of Microsoft's Python SDK 1.1.0 and
//! PyPI `dataverse-api` 1.4.3.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SEED: &str = "msdyn_smsengagementctx";
const SEED_PATH: &str = "EntityDefinitions(LogicalName='msdyn_smsengagementctx')";

/// Sends a GET and asserts Dataverse's error: status, code and part of the message.
async fn refused(app: &TestApp, path: &str, status: StatusCode, code: &str, message: &str) {
    let response = app.get(path).send().await.expect("the request is sent");
    assert_error(response, status, code, message).await;
}

fn values(body: &Value) -> &Vec<Value> {
    body["value"].as_array().expect("a collection")
}

fn strings<'a>(body: &'a Value, property: &str) -> Vec<&'a str> {
    values(body)
        .iter()
        .map(|v| v[property].as_str().unwrap_or_default())
        .collect()
}

/// The message names of `sdkmessagefilters` rows with `$expand=sdkmessageid`, sorted.
fn message_names(body: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = values(body)
        .iter()
        .map(|row| row["sdkmessageid"]["name"].as_str().unwrap_or_default())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_python_sdk_resolves_the_entity_set_through_a_filter() {
    let app = spawn_app().await;
    // PowerPlatform-Dataverse-Client 1.1.0, `_entity_set_from_schema_name`.
    let body = app
        .get_json("EntityDefinitions?%24select=LogicalName%2CEntitySetName%2CPrimaryIdAttribute&%24filter=LogicalName+eq+%27msdyn_smsengagementctx%27")
        .await;
    assert_eq!(
        body["@odata.context"],
        format!(
            "{}$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute)",
            app.url("")
        )
    );
    let tables = values(&body);
    assert_eq!(tables.len(), 1);
    let table = tables[0].as_object().unwrap();
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        [
            "LogicalName",
            "EntitySetName",
            "PrimaryIdAttribute",
            "MetadataId"
        ]
    );
    assert_eq!(table["EntitySetName"], "msdyn_smsengagementctxes");
    assert_eq!(table["PrimaryIdAttribute"], "msdyn_smsengagementctxid");

    // `_get_entity_by_table_schema_name`, then the column lookup by the table's MetadataId.
    let entity = app
        .get_json("EntityDefinitions?%24select=MetadataId%2CLogicalName%2CSchemaName%2CEntitySetName%2CPrimaryNameAttribute%2CPrimaryIdAttribute&%24filter=LogicalName+eq+%27msdyn_smsengagementctx%27")
        .await;
    let id = entity["value"][0]["MetadataId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(entity["value"][0]["PrimaryNameAttribute"], "msdyn_name");
    let column = app
        .get_json(&format!("EntityDefinitions({id})/Attributes?%24select=MetadataId%2CLogicalName%2CSchemaName&%24filter=LogicalName+eq+%27msdyn_name%27"))
        .await;
    assert_eq!(strings(&column, "LogicalName"), ["msdyn_name"]);
    assert_eq!(column["value"][0]["SchemaName"], "msdyn_name");

    // `_list_tables`: non-private tables, narrowed by the caller's filter.
    let listed = app
        .get_json("EntityDefinitions?$filter=IsPrivate eq false and (SchemaName eq 'msdyn_smsengagementctx')&$select=LogicalName")
        .await;
    assert_eq!(strings(&listed, "LogicalName"), [SEED]);
}

#[tokio::test]
async fn a_filter_matching_nothing_is_an_empty_collection() {
    let app = spawn_app().await;
    let body = app
        .get_json("EntityDefinitions?$filter=LogicalName eq 'account'&$select=LogicalName")
        .await;
    assert_eq!(body["value"], json!([]));
    let body = app
        .get_json(&format!(
            "{SEED_PATH}/Attributes?$filter=AttributeType eq 'Money'"
        ))
        .await;
    assert_eq!(body["value"], json!([]));
}

#[tokio::test]
async fn entity_definitions_filter_on_documented_properties() {
    let app = spawn_app().await;
    let names = |filter: &str| {
        let app = &app;
        let path = format!("EntityDefinitions?$select=LogicalName&$filter={filter}");
        async move {
            let body = app.get_json(&path).await;
            let mut names: Vec<String> = strings(&body, "LogicalName")
                .into_iter()
                .map(str::to_string)
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(names("IsActivity eq true").await, ["msdyn_ocliveworkitem"]);
    assert_eq!(
        names("IsCustomEntity eq true").await,
        ["msdyn_ocliveworkitem", SEED, "msdyn_transcript"]
    );
    assert_eq!(
        names("ObjectTypeCode eq 8 or ObjectTypeCode eq 9").await,
        ["systemuser", "team"]
    );
    assert_eq!(
        names(
            "OwnershipType eq Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned' and not IsActivity"
        )
        .await,
        [
            "annotation",
            "asyncoperation",
            SEED,
            "msdyn_transcript",
            "userquery"
        ]
    );
    assert_eq!(
        names("EntitySetName eq 'msdyn_smsengagementctxes'").await,
        [SEED]
    );
    assert_eq!(
        names("IsIntersect and startswith(LogicalName,'team')").await,
        ["teammembership", "teamroles"]
    );
    assert_eq!(
        names("DisplayName/UserLocalizedLabel/Label eq 'Conversation'").await,
        ["msdyn_ocliveworkitem"]
    );
    // Every documented property can be selected; values smsctx does not know are null.
    let body = app
        .get_json(&format!(
            "{SEED_PATH}?$select=ObjectTypeCode,IsAuditEnabled,PrimaryImageAttribute,IsCustomEntity,EntityColor"
        ))
        .await;
    assert_eq!(body["IsCustomEntity"], true);
    assert_eq!(body["IsAuditEnabled"]["Value"], true, "{body}");
    for property in ["ObjectTypeCode", "PrimaryImageAttribute", "EntityColor"] {
        assert_eq!(body[property], Value::Null, "{property}");
    }
}

#[tokio::test]
async fn dataverse_api_reads_keys_relationships_and_messages() {
    let app = spawn_app().await;
    // dataverse-api 1.4.3, DataverseEntity.__get_entity_set_properties.
    let body = app
        .get_json(&format!(
            "{SEED_PATH}?%24select=EntitySetName%2CPrimaryIdAttribute%2CPrimaryImageAttribute"
        ))
        .await;
    assert_eq!(body["EntitySetName"], "msdyn_smsengagementctxes");
    assert_eq!(body["PrimaryImageAttribute"], Value::Null);
    assert!(body
        .as_object()
        .unwrap()
        .contains_key("PrimaryImageAttribute"));

    // __get_entity_alternate_keys: none defined.
    let keys = app
        .get_json(&format!(
            "{SEED_PATH}/Keys?%24select=SchemaName%2CKeyAttributes"
        ))
        .await;
    assert_eq!(
        keys["@odata.context"],
        format!(
            "{}$metadata#EntityDefinitions('{SEED}')/Keys(SchemaName,KeyAttributes)",
            app.url("")
        )
    );
    assert_eq!(keys["value"], json!([]));

    // __get_entity_sdk_messages: CreateMultiple and UpdateMultiple are served.
    let filter = "%24select=sdkmessagefilterid&%24expand=sdkmessageid%28%24select%3Dname%29&%24filter=%28sdkmessageid%2Fname+eq+%27CreateMultiple%27+or+sdkmessageid%2Fname+eq+%27UpdateMultiple%27%29+and+primaryobjecttypecode+eq+%27msdyn_smsengagementctx%27";
    let messages = app.get_json(&format!("sdkmessagefilters?{filter}")).await;
    assert_eq!(
        message_names(&messages),
        ["CreateMultiple", "UpdateMultiple"]
    );
    let served = filter
        .replace("CreateMultiple", "Create")
        .replace("UpdateMultiple", "Update");
    let messages = app.get_json(&format!("sdkmessagefilters?{served}")).await;
    assert_eq!(
        messages["@odata.context"],
        format!(
            "{}$metadata#sdkmessagefilters(sdkmessagefilterid,sdkmessageid(name))",
            app.url("")
        )
    );
    assert_eq!(message_names(&messages), ["Create", "Update"]);
    let row = values(&messages)[0].as_object().unwrap();
    assert_eq!(
        row.keys().collect::<Vec<_>>(),
        ["sdkmessagefilterid", "sdkmessageid"]
    );
    assert_eq!(
        row["sdkmessageid"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["name", "sdkmessageid"]
    );

    // __get_entity_relationships.
    let one_to_many = app
        .get_json("EntityDefinitions(LogicalName='msdyn_ocliveworkitem')/OneToManyRelationships")
        .await;
    let partner = values(&one_to_many)
        .iter()
        .find(|r| r["ReferencingEntity"] == SEED)
        .expect("the context's lookup of its conversation");
    assert_eq!(
        partner["ReferencedEntityNavigationPropertyName"],
        "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid"
    );
    assert_eq!(
        partner["ReferencingEntityNavigationPropertyName"],
        "msdyn_liveworkitemid"
    );
    assert_eq!(partner["ReferencedAttribute"], "activityid");
    assert_eq!(partner["RelationshipType"], "OneToManyRelationship");
    let many_to_one = app
        .get_json(&format!("{SEED_PATH}/ManyToOneRelationships"))
        .await;
    let navigations = strings(&many_to_one, "ReferencingEntityNavigationPropertyName");
    for name in [
        "msdyn_liveworkitemid",
        "ownerid",
        "createdby",
        "owningbusinessunit",
    ] {
        assert!(navigations.contains(&name), "{name} in {navigations:?}");
    }
}

#[tokio::test]
async fn sub_collections_expand_and_address_by_key() {
    let app = spawn_app().await;
    let body = app
        .get_json(&format!(
            "{SEED_PATH}?$select=LogicalName&$expand=Keys,ManyToOneRelationships($select=SchemaName,ReferencedEntity;$filter=ReferencedEntity eq 'msdyn_ocliveworkitem'),Attributes($select=LogicalName;$filter=AttributeType eq 'Picklist')"
        ))
        .await;
    assert_eq!(body["Keys"], json!([]));
    let relationships = body["ManyToOneRelationships"].as_array().unwrap();
    assert_eq!(relationships.len(), 1);
    let schema_name = relationships[0]["SchemaName"].as_str().unwrap().to_string();
    assert_eq!(
        schema_name,
        "msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid"
    );
    let attributes: Vec<&str> = body["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["LogicalName"].as_str().unwrap())
        .collect();
    assert_eq!(attributes, ["msdyn_smsprovider"]);

    // The same relationship by its MetadataId, under the table's MetadataId.
    let table_id = app
        .get_json(&format!("{SEED_PATH}?$select=LogicalName"))
        .await["MetadataId"]
        .as_str()
        .unwrap()
        .to_string();
    let relationship_id = relationships[0]["MetadataId"].as_str().unwrap().to_string();
    let one = app
        .get_json(&format!(
            "EntityDefinitions({table_id})/ManyToOneRelationships({relationship_id})?$select=SchemaName"
        ))
        .await;
    assert_eq!(one["SchemaName"], schema_name.as_str());
    assert!(one["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/ManyToOneRelationships(SchemaName)/$entity"));
    let column = app
        .get_json(&format!(
            "EntityDefinitions({table_id})/Attributes(LogicalName='msdyn_name')/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=MaxLength"
        ))
        .await;
    assert_eq!(column["MaxLength"], 100);
    assert_eq!(column.get("LogicalName"), None);
    let many_to_many = app
        .get_json("EntityDefinitions(LogicalName='systemuser')/ManyToManyRelationships?$select=SchemaName,IntersectEntityName")
        .await;
    let mut names = strings(&many_to_many, "SchemaName");
    names.sort();
    assert_eq!(
        names,
        ["systemuserroles_association", "teammembership_association"]
    );
    let missing = format!("{SEED_PATH}/Keys(LogicalName='nope')");
    refused(&app, &missing, StatusCode::NOT_FOUND, "0x80040217", "nope").await;
}

#[tokio::test]
async fn relationship_definitions_with_casts_and_filters() {
    let app = spawn_app().await;
    // The Python SDK's `_get_relationship`.
    let body = app
        .get_json(
            "RelationshipDefinitions?%24filter=SchemaName+eq+%27owner_msdyn_smsengagementctx%27",
        )
        .await;
    let found = values(&body);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0]["@odata.type"],
        "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata"
    );
    assert_eq!(found[0]["ReferencedEntity"], "owner");
    let id = found[0]["MetadataId"].as_str().unwrap().to_string();
    let by_id = app
        .get_json(&format!("RelationshipDefinitions({id})?$select=SchemaName"))
        .await;
    assert_eq!(by_id["SchemaName"], "owner_msdyn_smsengagementctx");
    let by_name = app
        .get_json("RelationshipDefinitions(SchemaName='owner_msdyn_smsengagementctx')")
        .await;
    assert_eq!(by_name["MetadataId"], id.as_str());

    let many = app
        .get_json("RelationshipDefinitions/Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata?$select=SchemaName,Entity1LogicalName,Entity2LogicalName,IntersectEntityName")
        .await;
    let rows = values(&many);
    assert_eq!(rows.len(), 3);
    let roles = rows
        .iter()
        .find(|r| r["SchemaName"] == "systemuserroles_association")
        .unwrap();
    assert_eq!(roles["Entity1LogicalName"], "systemuser");
    assert_eq!(roles["Entity2LogicalName"], "role");
    assert_eq!(roles["IntersectEntityName"], "systemuserroles");
    assert_eq!(roles.get("@odata.type"), None);

    let typed = app
        .get_json("RelationshipDefinitions?$select=SchemaName&$filter=RelationshipType eq Microsoft.Dynamics.CRM.RelationshipType'ManyToManyRelationship'")
        .await;
    assert_eq!(values(&typed).len(), 3);
    // Without a cast only RelationshipMetadataBase's properties exist.
    refused(
        &app,
        "RelationshipDefinitions?$select=ReferencedEntity",
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "Could not find a property named 'ReferencedEntity' on type 'Microsoft.Dynamics.CRM.RelationshipMetadataBase'.",
    )
    .await;
}

#[tokio::test]
async fn global_option_sets_are_none_every_option_set_is_local() {
    let app = spawn_app().await;
    let body = app.get_json("GlobalOptionSetDefinitions").await;
    assert_eq!(body["value"], json!([]));
    refused(
        &app,
        "GlobalOptionSetDefinitions(Name='msdyn_smsprovider')",
        StatusCode::NOT_FOUND,
        "0x80040217",
        "msdyn_smsprovider",
    )
    .await;
}

#[tokio::test]
async fn retrieve_metadata_changes_in_the_python_sdk_form() {
    let app = spawn_app().await;
    // `_retrieve_metadata_changes` with one column and the typed properties.
    let query = json!({
        "Properties": {"PropertyNames": ["LogicalName", "Attributes"]},
        "Criteria": {"Conditions": [{
            "PropertyName": "LogicalName",
            "ConditionOperator": "Equals",
            "Value": {"Type": "System.String", "Value": SEED},
        }]},
        "AttributeQuery": {
            "Properties": {"PropertyNames": [
                "LogicalName", "SchemaName", "AttributeType", "AttributeTypeName", "MetadataId",
                "DisplayName", "RequiredLevel", "MaxLength", "Format", "FormatName", "MinValue",
                "MaxValue", "Precision",
            ]},
            "Criteria": {"Conditions": [{
                "PropertyName": "LogicalName",
                "ConditionOperator": "Equals",
                "Value": {"Type": "System.String", "Value": "msdyn_name"},
            }]},
        },
    });
    let encoded: String = form_urlencoded::byte_serialize(query.to_string().as_bytes()).collect();
    let body = app
        .get_json(&format!(
            "RetrieveMetadataChanges(Query=@p1)?%40p1={encoded}"
        ))
        .await;
    assert!(body["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#Microsoft.Dynamics.CRM.RetrieveMetadataChangesResponse"));
    let tables = body["EntityMetadata"].as_array().unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0]["LogicalName"], SEED);
    assert_eq!(tables[0].get("EntitySetName"), None);
    let attributes = tables[0]["Attributes"].as_array().unwrap();
    assert_eq!(attributes.len(), 1);
    let name = &attributes[0];
    assert_eq!(
        name["@odata.type"],
        "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    );
    assert_eq!(name["MaxLength"], 100);
    assert_eq!(name.get("MinValue"), None);

    // Without the column criterion every column of the table comes back, typed.
    let mut all = query.clone();
    all["AttributeQuery"]
        .as_object_mut()
        .unwrap()
        .remove("Criteria");
    let encoded: String = form_urlencoded::byte_serialize(all.to_string().as_bytes()).collect();
    let body = app
        .get_json(&format!("RetrieveMetadataChanges(Query=@p1)?@p1={encoded}"))
        .await;
    let attributes = body["EntityMetadata"][0]["Attributes"].as_array().unwrap();
    assert_eq!(attributes.len(), 37);
    let provider = attributes
        .iter()
        .find(|a| a["LogicalName"] == "msdyn_smsprovider")
        .unwrap();
    assert_eq!(
        provider["@odata.type"],
        "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    );

    refused(
        &app,
        "RetrieveMetadataChanges(Query=@p1,ClientVersionStamp=@p2)?@p1={}&@p2='1'",
        StatusCode::BAD_REQUEST,
        "0x80060888",
        "ClientVersionStamp",
    )
    .await;
}

#[tokio::test]
async fn the_message_catalog_lists_what_each_table_supports() {
    let app = spawn_app().await;
    let body = app
        .get_json("sdkmessages?$select=name&$filter=name eq 'SetState'&$expand=sdkmessageid_sdkmessagefilter($select=primaryobjecttypecode)")
        .await;
    let rows = values(&body);
    assert_eq!(rows.len(), 1);
    let tables: Vec<&str> = rows[0]["sdkmessageid_sdkmessagefilter"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["primaryobjecttypecode"].as_str().unwrap())
        .collect();
    assert_eq!(tables, [SEED]);
    let id = rows[0]["sdkmessageid"].as_str().unwrap().to_string();
    let one = app.get_json(&format!("sdkmessages({id})")).await;
    assert_eq!(one["name"], "SetState");

    // Read-only tables answer Retrieve and RetrieveMultiple only.
    let filters = app
        .get_json("sdkmessagefilters?$filter=primaryobjecttypecode eq 'teammembership'&$expand=sdkmessageid($select=name)")
        .await;
    assert_eq!(message_names(&filters), ["Retrieve", "RetrieveMultiple"]);
    // A bulk message applies to the tables of its single message.
    let bulk = app
        .get_json("sdkmessagefilters?$filter=sdkmessageid/name eq 'CreateMultiple'&$select=primaryobjecttypecode")
        .await;
    let tables = strings(&bulk, "primaryobjecttypecode");
    assert!(tables.contains(&SEED), "{tables:?}");
    assert!(!tables.contains(&"teammembership"), "{tables:?}");
    let bound = app
        .get_json("sdkmessagefilters?$filter=sdkmessageid/name eq 'RetrieveUserPrivileges'&$select=primaryobjecttypecode")
        .await;
    assert_eq!(strings(&bound, "primaryobjecttypecode"), ["systemuser"]);
    let unbound = app
        .get_json("sdkmessages?$filter=name eq 'WhoAmI'&$select=name")
        .await;
    assert_eq!(strings(&unbound, "name"), ["WhoAmI"]);
}

#[tokio::test]
async fn wrong_names_get_dataverse_codes() {
    let app = spawn_app().await;
    for (path, message) in [
        (
            format!("{SEED_PATH}?$select=LogicalName,Nope"),
            "Could not find a property named 'Nope' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.",
        ),
        (
            "EntityDefinitions?$filter=logicalname eq 'x'".to_string(),
            "Could not find a property named 'logicalname' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.",
        ),
        (
            format!("{SEED_PATH}/Attributes?$select=MaxLength"),
            "Could not find a property named 'MaxLength' on type 'Microsoft.Dynamics.CRM.AttributeMetadata'.",
        ),
        (
            "sdkmessagefilters?$select=nope".to_string(),
            "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.sdkmessagefilter'.",
        ),
        (
            format!("{SEED_PATH}?$expand=Privileges"),
            "Could not find a property named 'Privileges' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.",
        ),
    ] {
        refused(&app, &path, StatusCode::BAD_REQUEST, "0x80060888", message).await;
    }
    for path in [
        format!("{SEED_PATH}?$filter=LogicalName eq 'x'"),
        "EntityDefinitions?$top=1".to_string(),
        "EntityDefinitions?$filter=LogicalName eq".to_string(),
    ] {
        refused(&app, &path, StatusCode::BAD_REQUEST, "0x80060888", "").await;
    }
    let segment = format!("{SEED_PATH}/Nope");
    refused(&app, &segment, StatusCode::NOT_FOUND, "0x8006088a", "Nope").await;
}
