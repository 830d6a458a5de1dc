//! Unit tests of the `EntityDefinitions` requests.

use super::*;

const ROOT: &str = "https://org.example/api/data/v9.2/";

fn catalog() -> Catalog {
    Catalog::builtin().expect("the built-in pages import")
}

/// Parses and answers one request, the way the edge will.
fn get(path: &str, query: &[(&str, &str)]) -> Result<Value, SchemaError> {
    let segments: Vec<String> = path.split('/').map(str::to_string).collect();
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_definitions_path(&segments, &query)?.respond(&catalog(), ROOT)
}

fn ok(path: &str, query: &[(&str, &str)]) -> Value {
    get(path, query).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn attribute_id(attribute: &str) -> String {
    let catalog = catalog();
    let ctx = catalog.entity(SEED).unwrap();
    attribute_metadata_id(ctx, ctx.attribute(attribute).unwrap()).to_string()
}

const SEED: &str = "msdyn_smsengagementctx";
const SEED_PATH: &str = "EntityDefinitions(LogicalName='msdyn_smsengagementctx')";

fn english(text: &str) -> Value {
    json!({
        "LocalizedLabels": [{"Label": text, "LanguageCode": 1033}],
        "UserLocalizedLabel": {"Label": text, "LanguageCode": 1033},
    })
}

#[test]
fn the_contract_example_selects_and_expands_attributes() {
    let body = ok(
        SEED_PATH,
        &[
            (
                "$select",
                "LogicalName,EntitySetName,PrimaryIdAttribute,OwnershipType",
            ),
            (
                "$expand",
                "Attributes($select=LogicalName,AttributeType,RequiredLevel)",
            ),
        ],
    );
    assert_eq!(
        body["@odata.context"],
        format!("{ROOT}$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute,OwnershipType,Attributes(LogicalName,AttributeType,RequiredLevel))/$entity")
    );
    assert_eq!(
        keys(&body),
        [
            "@odata.context",
            "LogicalName",
            "EntitySetName",
            "PrimaryIdAttribute",
            "OwnershipType",
            "MetadataId",
            "Attributes"
        ]
    );
    assert_eq!(body["LogicalName"], SEED);
    assert_eq!(body["EntitySetName"], "msdyn_smsengagementctxes");
    assert_eq!(body["PrimaryIdAttribute"], "msdyn_smsengagementctxid");
    assert_eq!(body["OwnershipType"], "UserOwned");
    let catalog = catalog();
    assert_eq!(
        body["MetadataId"],
        entity_metadata_id(catalog.entity(SEED).unwrap()).to_string()
    );
    let attributes = body["Attributes"].as_array().unwrap();
    assert_eq!(attributes.len(), 37);
    let name = attributes
        .iter()
        .find(|a| a["LogicalName"] == "msdyn_name")
        .unwrap();
    assert_eq!(
        name,
        &json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "LogicalName": "msdyn_name",
            "AttributeType": "String",
            "RequiredLevel": {
                "Value": "ApplicationRequired",
                "CanBeChanged": true,
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "MetadataId": attribute_id("msdyn_name"),
        })
    );
    let id = attributes
        .iter()
        .find(|a| a["LogicalName"] == "msdyn_smsengagementctxid")
        .unwrap();
    assert_eq!(
        id["@odata.type"],
        "#Microsoft.Dynamics.CRM.UniqueIdentifierAttributeMetadata"
    );
    assert_eq!(id["RequiredLevel"]["CanBeChanged"], false);
}

#[test]
fn a_table_without_select_has_every_property_and_labels() {
    let body = ok(SEED_PATH, &[]);
    assert_eq!(
        body["@odata.context"],
        format!("{ROOT}$metadata#EntityDefinitions/$entity")
    );
    // Every documented EntityMetadata property, the key last; what smsctx does not know is null.
    let names = keys(&body);
    assert_eq!(names.len(), 1 + super::entity::ENTITY_PROPERTIES.len());
    assert_eq!(names.last(), Some(&"MetadataId"));
    for (property, value) in [
        ("IsCustomEntity", json!(true)),
        ("IsActivity", json!(false)),
        ("IsIntersect", json!(false)),
        ("IsPrivate", json!(false)),
        ("IsStateModelAware", json!(true)),
        ("IsBPFEntity", json!(false)),
        ("CollectionSchemaName", json!("msdyn_smsengagementctxes")),
        ("PrimaryImageAttribute", Value::Null),
        ("ObjectTypeCode", Value::Null),
        ("EntityColor", Value::Null),
    ] {
        assert_eq!(body[property], value, "{property}");
    }
    let privileges: Vec<&str> = body["Privileges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap())
        .collect();
    assert!(privileges.contains(&"prvAppendTomsdyn_smsengagementctx"));
    assert_eq!(privileges.len(), 8);
    let team = ok(
        "EntityDefinitions(LogicalName='team')",
        &[("$select", "ObjectTypeCode,IsCustomEntity")],
    );
    assert_eq!(team["ObjectTypeCode"], 9);
    assert_eq!(team["IsCustomEntity"], false);
    assert_eq!(body["PrimaryNameAttribute"], "msdyn_name");
    assert_eq!(body["DisplayName"], english("SMS Engagement Context"));
    assert_eq!(
        body["DisplayCollectionName"],
        english("SMS Engagement Contexts")
    );
    assert_eq!(
        body["Description"],
        english("Stores context values for SMS")
    );
}

#[test]
fn a_metadata_id_key_addresses_the_same_table() {
    let by_name = ok(SEED_PATH, &[("$select", "LogicalName")]);
    let id = by_name["MetadataId"].as_str().unwrap().to_string();
    let by_id = ok(
        &format!("EntityDefinitions({id})"),
        &[("$select", "LogicalName")],
    );
    assert_eq!(by_id, by_name);
    let attribute = ok(
        &format!(
            "EntityDefinitions({id})/Attributes({})",
            attribute_id("msdyn_name")
        ),
        &[("$select", "LogicalName")],
    );
    assert_eq!(attribute["LogicalName"], "msdyn_name");
}

#[test]
fn every_table_is_listed() {
    let body = ok(
        "EntityDefinitions",
        &[("$select", "LogicalName,EntitySetName")],
    );
    assert_eq!(
        body["@odata.context"],
        format!("{ROOT}$metadata#EntityDefinitions(LogicalName,EntitySetName)")
    );
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["LogicalName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "businessunit",
            "organization",
            "systemuser",
            "team",
            "role",
            "roleprivileges",
            "systemuserroles",
            "teamroles",
            "teammembership",
            "principalobjectaccess",
            "msdyn_ocliveworkitem",
            SEED,
            "msdyn_transcript",
            "annotation",
            "savedquery",
            "userquery",
            "asyncoperation",
            "audit"
        ]
    );
}

#[test]
fn one_string_attribute_in_full() {
    let body = ok(
        &format!("{SEED_PATH}/Attributes(LogicalName='msdyn_name')"),
        &[],
    );
    assert_eq!(
        body,
        json!({
            "@odata.context": format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/$entity"),
            "@odata.type": "#Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "LogicalName": "msdyn_name",
            "SchemaName": "msdyn_name",
            "EntityLogicalName": SEED,
            "AttributeType": "String",
            "AttributeTypeName": {"Value": "StringType"},
            "AttributeOf": null,
            "DisplayName": english("Name"),
            "Description": english("The name of the custom entity."),
            "RequiredLevel": {
                "Value": "ApplicationRequired",
                "CanBeChanged": true,
                "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings",
            },
            "IsPrimaryId": false,
            "IsPrimaryName": true,
            "IsValidForCreate": true,
            "IsValidForUpdate": true,
            "IsValidForRead": true,
            "IsAuditEnabled": {"Value": false, "CanBeChanged": false, "ManagedPropertyLogicalName": "canmodifyauditsettings"},
            "MaxLength": 100,
            "Format": "Text",
            "FormatName": {"Value": "Text"},
            "MetadataId": attribute_id("msdyn_name"),
        })
    );
}

/// The named properties of one attribute, fetched alone.
fn attribute(name: &str) -> Value {
    ok(
        &format!("{SEED_PATH}/Attributes(LogicalName='{name}')"),
        &[],
    )
}

fn pick(value: &Value, names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| (n.to_string(), value[*n].clone()))
            .collect(),
    )
}

#[test]
fn each_column_type_has_its_metadata_type_and_facets() {
    let created = attribute("createdon");
    assert_eq!(
        pick(
            &created,
            &["@odata.type", "AttributeType", "Format", "DateTimeBehavior"]
        ),
        json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            "AttributeType": "DateTime",
            "Format": "DateAndTime",
            "DateTimeBehavior": {"Value": "UserLocal"},
        })
    );
    assert_eq!(attribute("overriddencreatedon")["Format"], "DateOnly");
    let tz = attribute("utcconversiontimezonecode");
    assert_eq!(
        pick(
            &tz,
            &["@odata.type", "AttributeTypeName", "MinValue", "MaxValue"]
        ),
        json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
            "AttributeTypeName": {"Value": "IntegerType"},
            "MinValue": -1,
            "MaxValue": 2147483647,
        })
    );
    let version = attribute("versionnumber");
    assert_eq!(
        version["@odata.type"],
        "#Microsoft.Dynamics.CRM.BigIntAttributeMetadata"
    );
    assert_eq!(version["MaxValue"], i64::MAX);
    let owner = attribute("ownerid");
    assert_eq!(
        pick(
            &owner,
            &[
                "@odata.type",
                "AttributeType",
                "AttributeTypeName",
                "Targets"
            ]
        ),
        json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.LookupAttributeMetadata",
            "AttributeType": "Owner",
            "AttributeTypeName": {"Value": "OwnerType"},
            "Targets": ["systemuser", "team"],
        })
    );
    assert_eq!(
        attribute("msdyn_liveworkitemid")["Targets"],
        json!(["msdyn_ocliveworkitem"])
    );
    let shadow = attribute("owneridname");
    assert_eq!(shadow["AttributeOf"], "ownerid");
    assert_eq!(shadow["IsValidForCreate"], false);
    assert_eq!(
        attribute("owneridtype")["@odata.type"],
        "#Microsoft.Dynamics.CRM.EntityNameAttributeMetadata"
    );
    assert_eq!(
        attribute("statuscode")["@odata.type"],
        "#Microsoft.Dynamics.CRM.StatusAttributeMetadata"
    );
    assert!(attribute("statuscode").get("OptionSet").is_none());
}

#[test]
fn the_picklist_cast_expands_its_options() {
    let body = ok(
        &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"),
        &[("$select", "LogicalName"), ("$expand", "OptionSet")],
    );
    assert_eq!(
        body["@odata.context"],
        format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata(LogicalName,OptionSet())")
    );
    let value = body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1);
    let provider = &value[0];
    assert_eq!(
        keys(provider),
        ["LogicalName", "MetadataId", "OptionSet"],
        "no @odata.type: the cast names the type"
    );
    let option_set = &provider["OptionSet"];
    assert_eq!(
        option_set["Name"],
        "msdyn_smsengagementctx_msdyn_smsprovider"
    );
    assert_eq!(option_set["IsGlobal"], false);
    assert_eq!(option_set["OptionSetType"], "Picklist");
    assert_eq!(
        option_set["Options"],
        json!([
            {"Value": 192350000, "Label": english("TeleSign"),
             "Description": {"LocalizedLabels": [], "UserLocalizedLabel": null}, "Color": null},
            {"Value": 192350001, "Label": english("Twilio"),
             "Description": {"LocalizedLabels": [], "UserLocalizedLabel": null}, "Color": null},
        ])
    );
}

#[test]
fn state_and_status_options_carry_their_links() {
    let status = ok(
        &format!(
            "{SEED_PATH}/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata"
        ),
        &[("$select", "LogicalName"), ("$expand", "OptionSet($select=Options)")],
    );
    assert_eq!(
        status["@odata.context"],
        format!("{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes/Microsoft.Dynamics.CRM.StatusAttributeMetadata(LogicalName,OptionSet(Options))/$entity")
    );
    assert_eq!(keys(&status["OptionSet"]), ["Options", "MetadataId"]);
    let options = status["OptionSet"]["Options"].as_array().unwrap();
    let links: Vec<(i64, i64, &str)> = options
        .iter()
        .map(|o| {
            (
                o["Value"].as_i64().unwrap(),
                o["State"].as_i64().unwrap(),
                o["@odata.type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            (1, 0, "#Microsoft.Dynamics.CRM.StatusOptionMetadata"),
            (2, 1, "#Microsoft.Dynamics.CRM.StatusOptionMetadata")
        ]
    );
    let state = ok(
        &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StateAttributeMetadata"),
        &[("$expand", "OptionSet")],
    );
    let options = state["value"][0]["OptionSet"]["Options"]
        .as_array()
        .unwrap();
    assert_eq!(
        pick(
            &options[1],
            &["@odata.type", "Value", "DefaultStatus", "InvariantName"]
        ),
        json!({
            "@odata.type": "#Microsoft.Dynamics.CRM.StateOptionMetadata",
            "Value": 1,
            "DefaultStatus": 2,
            "InvariantName": "Inactive",
        })
    );
    assert_eq!(options[0]["Label"], english("Active"));
}

#[test]
fn casts_filter_the_columns_by_metadata_type() {
    let names = |cast: &str| -> Vec<String> {
        let body = ok(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.{cast}"),
            &[("$select", "LogicalName")],
        );
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["LogicalName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("EnumAttributeMetadata"),
        [
            "msdyn_smsprovider",
            "owneridtype",
            "statecode",
            "statuscode"
        ]
    );
    assert_eq!(names("LookupAttributeMetadata").len(), 9);
    assert_eq!(names("StringAttributeMetadata").len(), 16);
    assert!(names("MoneyAttributeMetadata").is_empty());
    // A derived type's property is selectable after its cast.
    let strings = ok(
        &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata"),
        &[("$select", "LogicalName,MaxLength")],
    );
    assert_eq!(strings["value"][0]["MaxLength"], 100);
    let all = ok(
        &format!("{SEED_PATH}/Attributes"),
        &[("$select", "LogicalName")],
    );
    assert_eq!(
        all["@odata.context"],
        format!(
            "{ROOT}$metadata#EntityDefinitions('msdyn_smsengagementctx')/Attributes(LogicalName)"
        )
    );
    assert_eq!(all["value"].as_array().unwrap().len(), 37);
    assert_eq!(
        all["value"][0]["@odata.type"],
        "#Microsoft.Dynamics.CRM.IntegerAttributeMetadata"
    );
}

fn err(path: &str, query: &[(&str, &str)]) -> SchemaError {
    get(path, query).expect_err(path)
}

fn unknown_property(property: &str, type_name: &str) -> SchemaError {
    SchemaError::UnknownProperty {
        property: property.into(),
        type_name: format!("Microsoft.Dynamics.CRM.{type_name}"),
    }
}

#[test]
fn unknown_names_are_refused_in_dataverse_words() {
    let missing = err("EntityDefinitions(LogicalName='account')", &[]);
    assert_eq!(missing, SchemaError::UnknownEntity("account".into()));
    assert_eq!(
        missing.to_string(),
        "The entity with a name = 'account' with namemapping = 'Logical' was not found in the MetadataCache."
    );
    assert_eq!(
        err(SEED_PATH, &[("$select", "LogicalName,ObjectTypeCod")]),
        unknown_property("ObjectTypeCod", "EntityMetadata")
    );
    assert_eq!(
        err("EntityDefinitions", &[("$filter", "Logicalname eq 'x'")]),
        unknown_property("Logicalname", "EntityMetadata")
    );
    assert_eq!(
        err(&format!("{SEED_PATH}/Keys"), &[("$select", "Name")]),
        unknown_property("Name", "EntityKeyMetadata")
    );
    assert_eq!(
        err(
            &format!("{SEED_PATH}/ManyToManyRelationships"),
            &[("$select", "ReferencedEntity")]
        ),
        unknown_property("ReferencedEntity", "ManyToManyRelationshipMetadata")
    );
    assert_eq!(
        err(SEED_PATH, &[("$expand", "Attributes($select=MaxLength)")]),
        unknown_property("MaxLength", "AttributeMetadata")
    );
    assert_eq!(
        err(
            &format!("{SEED_PATH}/Attributes"),
            &[("$expand", "OptionSet")]
        ),
        unknown_property("OptionSet", "AttributeMetadata")
    );
    assert_eq!(
        err(
            &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata"),
            &[("$expand", "OptionSet")]
        ),
        unknown_property("OptionSet", "StringAttributeMetadata")
    );
    let attribute = err(&format!("{SEED_PATH}/Attributes(LogicalName='nope')"), &[]);
    assert_eq!(
        attribute.to_string(),
        "'msdyn_smsengagementctx' entity doesn't contain attribute with Name = 'nope' and NameMapping = 'Logical'."
    );
    let cast = err(
        &format!("{SEED_PATH}/Attributes/Microsoft.Dynamics.CRM.FooAttributeMetadata"),
        &[],
    );
    assert_eq!(
        cast.to_string(),
        "Resource not found for the segment 'Microsoft.Dynamics.CRM.FooAttributeMetadata'."
    );
    assert_eq!(
        err(
            &format!(
                "{SEED_PATH}/Attributes(LogicalName='msdyn_name')/Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
            ),
            &[]
        ),
        SchemaError::UnknownCast("Microsoft.Dynamics.CRM.PicklistAttributeMetadata".into())
    );
    assert_eq!(
        err(&format!("{SEED_PATH}/Privileges"), &[]),
        SchemaError::UnknownSegment("Privileges".into())
    );
    assert_eq!(
        err("EntityDefinition(LogicalName='x')", &[]),
        SchemaError::UnknownSegment("EntityDefinition".into())
    );
}

#[test]
fn malformed_options_and_keys_are_bad_requests() {
    for (path, query) in [
        (SEED_PATH, ("$filter", "LogicalName eq 'x'")),
        (SEED_PATH, ("$select", "LogicalName,,SchemaName")),
        (SEED_PATH, ("$expand", "Attributes($select=LogicalName")),
        (SEED_PATH, ("$expand", "Attributes($top=1)")),
        (SEED_PATH, ("$top", "1")),
        ("EntityDefinitions", ("$filter", "LogicalName eq")),
        ("EntityDefinitions", ("$select", "Attributes")),
        (
            "EntityDefinitions(LogicalName=msdyn_smsengagementctx)",
            ("x", ""),
        ),
        ("EntityDefinitions('msdyn_smsengagementctx')", ("x", "")),
        ("EntityDefinitions(LogicalName='a'b')", ("x", "")),
    ] {
        let error = err(path, &[query]);
        assert!(
            matches!(error, SchemaError::BadQuery(_)),
            "{path} {query:?}: {error:?}"
        );
    }
    // Parameter aliases and custom options are not system query options.
    ok(SEED_PATH, &[("@p1", "'x'"), ("tag", "1")]);
}

#[test]
fn the_request_is_typed_before_it_meets_the_catalog() {
    let segments: Vec<String> = [
        SEED_PATH,
        "Attributes(LogicalName='msdyn_smsprovider')",
        "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let query = vec![
        ("$select".to_string(), "LogicalName".to_string()),
        (
            "$expand".to_string(),
            "OptionSet($select=Options),GlobalOptionSet".to_string(),
        ),
    ];
    assert_eq!(
        parse_definitions_path(&segments, &query).unwrap(),
        DefinitionsRequest::Attribute {
            entity: MetadataKey::LogicalName(SEED.into()),
            attribute: MetadataKey::LogicalName("msdyn_smsprovider".into()),
            cast: Some(AttributeKind::Picklist),
            query: AttributeQuery {
                select: Some(vec!["LogicalName".into()]),
                filter: None,
                option_set: Some(OptionSetQuery {
                    select: Some(vec!["Options".into()]),
                }),
                global_option_set: Some(OptionSetQuery::default()),
            },
        }
    );
    let body = parse_definitions_path(&segments, &query)
        .unwrap()
        .respond(&catalog(), ROOT)
        .unwrap();
    assert_eq!(body["GlobalOptionSet"], Value::Null);
    assert_eq!(body["OptionSet"]["Options"].as_array().unwrap().len(), 2);
}
