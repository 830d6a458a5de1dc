//! Schema discovery over HTTP: `$metadata` and `EntityDefinitions`.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn metadata_is_a_csdl_document_of_every_table() {
    let app = spawn_app().await;
    let response = app.get("$metadata").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["Content-Type"], "application/xml");
    let xml = response.text().await.unwrap();
    assert!(xml.starts_with("<?xml"), "{}", &xml[..80.min(xml.len())]);
    for needle in [
        r#"<EntityType Name="msdyn_smsengagementctx""#,
        r#"<PropertyRef Name="msdyn_smsengagementctxid"/>"#,
        r#"<Property Name="_msdyn_liveworkitemid_value" Type="Edm.Guid""#,
        r#"<NavigationProperty Name="msdyn_liveworkitemid" Type="mscrm.msdyn_ocliveworkitem""#,
        r#"<EntitySet Name="msdyn_smsengagementctxes""#,
        r#"<Function Name="IsValidStateTransition""#,
    ] {
        assert!(xml.contains(needle), "missing {needle}");
    }
    let annotated = app
        .get("$metadata?annotations=true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(annotated.contains("Org.OData.Core.V1.Computed"));
    assert!(!xml.contains("Org.OData.Core.V1.Computed"));
}

/// BulkDelete is declared as Dataverse declares it, so a client that builds its calls from
/// `$metadata` finds the action, its `QuerySet` of `QueryExpression`s and its response (the
/// document's XSD validity: `scripts/validate-csdl.sh`; a real client calling it:
/// `scripts/odata-client-check.py`).
#[tokio::test]
async fn metadata_declares_bulk_delete_and_its_query_expression() {
    let app = spawn_app().await;
    let xml = app
        .get("$metadata")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        r#"<Action Name="BulkDelete">"#,
        r#"<Parameter Name="QuerySet" Type="Collection(mscrm.QueryExpression)" Nullable="false"/>"#,
        r#"<ReturnType Type="mscrm.BulkDeleteResponse" Nullable="false"/>"#,
        r#"<ActionImport Name="BulkDelete" Action="Microsoft.Dynamics.CRM.BulkDelete"/>"#,
        r#"<ComplexType Name="QueryExpression" BaseType="mscrm.QueryBase">"#,
        r#"<Property Name="Criteria" Type="mscrm.FilterExpression"/>"#,
        r#"<Property Name="Operator" Type="mscrm.ConditionOperator" Nullable="false"/>"#,
        r#"<Member Name="BeginsWith" Value="54"/>"#,
        r#"<ComplexType Name="BulkDeleteResponse">"#,
    ] {
        assert!(xml.contains(needle), "missing {needle}");
    }
    // Every type the action names is declared in the document.
    for declared in [
        r#"<ComplexType Name="QueryBase" Abstract="true"/>"#,
        r#"<ComplexType Name="FilterExpression">"#,
        r#"<ComplexType Name="ConditionExpression">"#,
        r#"<ComplexType Name="Object">"#,
        r#"<ComplexType Name="ColumnSet">"#,
        r#"<ComplexType Name="LinkEntity">"#,
        r#"<EnumType Name="LogicalOperator">"#,
        r#"<EnumType Name="ConditionOperator">"#,
    ] {
        assert_eq!(xml.matches(declared).count(), 1, "{declared}");
    }
}

#[tokio::test]
async fn entity_definitions_describe_the_table_and_its_options() {
    let app = spawn_app().await;
    let body = app
        .get_json("EntityDefinitions(LogicalName='msdyn_smsengagementctx')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,OwnershipType&$expand=Attributes($select=LogicalName,AttributeType,RequiredLevel)")
        .await;
    assert_eq!(body["EntitySetName"], "msdyn_smsengagementctxes");
    assert_eq!(body["OwnershipType"], "UserOwned");
    let attributes = body["Attributes"].as_array().unwrap();
    assert_eq!(attributes.len(), 37);
    let name = attributes
        .iter()
        .find(|a| a["LogicalName"] == "msdyn_name")
        .unwrap();
    assert_eq!(name["RequiredLevel"]["Value"], "ApplicationRequired");
    assert_eq!(
        name["@odata.type"],
        "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    );

    let picklists: Value = app
        .get_json("EntityDefinitions(LogicalName='msdyn_smsengagementctx')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet")
        .await;
    let provider = &picklists["value"][0];
    assert_eq!(provider["LogicalName"], "msdyn_smsprovider");
    let options = provider["OptionSet"]["Options"].as_array().unwrap();
    assert_eq!(options[0]["Value"], 192350000);
    assert_eq!(
        options[0]["Label"]["UserLocalizedLabel"]["Label"],
        "TeleSign"
    );

    let one = app
        .get_json("EntityDefinitions(LogicalName='msdyn_smsengagementctx')/Attributes(LogicalName='msdyn_name')")
        .await;
    assert_eq!(one["LogicalName"], "msdyn_name");
    let missing = app
        .get("EntityDefinitions(LogicalName='nope')")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));
}
