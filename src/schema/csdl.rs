//! The `$metadata` document: OData v4 CSDL XML (EDMX 4.0) for every table of the catalog.
//!
//! The shape follows Dataverse's: one schema `Microsoft.Dynamics.CRM` (alias `mscrm`); the
//! abstract `crmbaseentity` every table derives from; the abstract `principal` (key `ownerid`)
//! that `systemuser` and `team` derive from, so an owner lookup can point at either; per table
//! its key, its EDM properties (lookups as computed `_x_value` Guids), a single-valued
//! navigation property per lookup tied to `_x_value` by a `ReferentialConstraint`, and the
//! collection-valued partners of the lookups that point at it; the complex, enum, function and
//! action definitions of the messages smsctx serves; and the `System` entity container.
//!
//! `annotations = true` (`$metadata?annotations=true`) adds `Org.OData.Core.V1.Description`
//! (table and column descriptions) and, on read-only properties, `Org.OData.Core.V1.Computed`
//! and `Org.OData.Core.V1.Permissions` = `Read`.

mod bulk_delete;
mod identity;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::{
    is_principal, navigations, Navigation, Target, ALIAS, BASE_ENTITY, NAMESPACE, PRINCIPAL,
    PRINCIPAL_KEY,
};
use crate::metadata::{system, Attribute, AttributeType, Catalog, Entity};

const EDMX_NS: &str = "http://docs.oasis-open.org/odata/ns/edmx";
const EDM_NS: &str = "http://docs.oasis-open.org/odata/ns/edm";
const CORE_VOCABULARY: &str =
    "http://docs.oasis-open.org/odata/odata/v4.0/os/vocabularies/Org.OData.Core.V1.xml";
const CAPABILITIES_VOCABULARY: &str =
    "https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Capabilities.V1.xml";

/// The members of the `AccessRights` flags enumeration, as Dataverse defines them.
pub const ACCESS_RIGHTS: &[(&str, u32)] = &[
    ("None", 0),
    ("ReadAccess", 1),
    ("WriteAccess", 2),
    ("AppendAccess", 4),
    ("AppendToAccess", 16),
    ("CreateAccess", 32),
    ("DeleteAccess", 65536),
    ("ShareAccess", 262144),
    ("AssignAccess", 524288),
];

/// The `$metadata` document of the catalog.
pub fn csdl(catalog: &Catalog, annotations: bool) -> String {
    let mut xml = Xml::new();
    xml.event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    xml.open("edmx:Edmx", &[("Version", "4.0"), ("xmlns:edmx", EDMX_NS)]);
    if annotations {
        xml.open("edmx:Reference", &[("Uri", CORE_VOCABULARY)]);
        xml.empty(
            "edmx:Include",
            &[("Namespace", "Org.OData.Core.V1"), ("Alias", "Core")],
        );
        xml.close("edmx:Reference");
        xml.open("edmx:Reference", &[("Uri", CAPABILITIES_VOCABULARY)]);
        xml.empty(
            "edmx:Include",
            &[
                ("Namespace", "Org.OData.Capabilities.V1"),
                ("Alias", "Capabilities"),
            ],
        );
        xml.close("edmx:Reference");
    }
    xml.open("edmx:DataServices", &[]);
    xml.open(
        "Schema",
        &[
            ("Namespace", NAMESPACE),
            ("Alias", ALIAS),
            ("xmlns", EDM_NS),
        ],
    );

    let model = Model::new(catalog);
    xml.empty("EntityType", &[("Name", BASE_ENTITY), ("Abstract", "true")]);
    principal_type(&mut xml, &model);
    for entity in catalog.entities() {
        entity_type(&mut xml, &model, entity, annotations);
    }
    operation_types(&mut xml);
    identity::types(&mut xml);
    bulk_delete::types(&mut xml);
    operations(&mut xml, catalog);
    identity::operations(&mut xml, catalog);
    bulk_delete::operations(&mut xml);
    container(&mut xml, &model, catalog, annotations);

    xml.close("Schema");
    xml.close("edmx:DataServices");
    xml.close("edmx:Edmx");
    xml.finish()
}

/// A collection-valued navigation property: the partner of a lookup, on the lookup's target.
struct Partner<'a> {
    name: &'a str,
    /// The table that has the lookup.
    source: &'a Entity,
    /// The single-valued navigation property it mirrors.
    mirrors: &'a str,
}

/// The navigation properties of every table, computed once.
struct Model<'a> {
    tables: Vec<(&'a Entity, Vec<Navigation<'a>>)>,
}

impl<'a> Model<'a> {
    fn new(catalog: &'a Catalog) -> Model<'a> {
        let tables = catalog
            .entities()
            .iter()
            .map(|e| (e.as_ref(), navigations(catalog, e)))
            .collect();
        Model { tables }
    }

    fn single(&self, entity: &Entity) -> &[Navigation<'a>] {
        self.tables
            .iter()
            .find(|(e, _)| e.logical_name == entity.logical_name)
            .map(|(_, navs)| navs.as_slice())
            .unwrap_or_default()
    }

    /// The partners declared on a type (`principal` or a table), in catalog order.
    fn partners(&self, type_name: &str) -> Vec<Partner<'_>> {
        self.tables
            .iter()
            .flat_map(|(source, navs)| {
                navs.iter()
                    .filter(move |n| n.target.type_name() == type_name)
                    .map(move |n| Partner {
                        name: &n.partner,
                        source,
                        mirrors: &n.name,
                    })
            })
            .collect()
    }
}

fn principal_type(xml: &mut Xml, model: &Model) {
    xml.open(
        "EntityType",
        &[
            ("Name", PRINCIPAL),
            ("BaseType", &qualified(BASE_ENTITY)),
            ("Abstract", "true"),
        ],
    );
    key(xml, PRINCIPAL_KEY);
    xml.empty(
        "Property",
        &[
            ("Name", PRINCIPAL_KEY),
            ("Type", "Edm.Guid"),
            ("Nullable", "false"),
        ],
    );
    partners(xml, model, PRINCIPAL);
    xml.close("EntityType");
}

fn entity_type(xml: &mut Xml, model: &Model, entity: &Entity, annotations: bool) {
    let base = if is_principal(entity) {
        PRINCIPAL
    } else {
        BASE_ENTITY
    };
    xml.open(
        "EntityType",
        &[
            ("Name", &entity.logical_name),
            ("BaseType", &qualified(base)),
        ],
    );
    // A type deriving from `principal` inherits its key (`ownerid`) and may not declare one.
    if !is_principal(entity) {
        key(xml, &entity.primary_id);
    }
    for attribute in entity.attributes.iter().filter(|a| a.is_edm_property()) {
        property(xml, entity, attribute, annotations);
    }
    for nav in model.single(entity) {
        let type_name = qualified(nav.target.type_name());
        xml.open(
            "NavigationProperty",
            &[
                ("Name", &nav.name),
                ("Type", &type_name),
                ("Nullable", "false"),
                ("Partner", &nav.partner),
            ],
        );
        xml.empty(
            "ReferentialConstraint",
            &[
                ("Property", nav.property()),
                ("ReferencedProperty", nav.target.key()),
            ],
        );
        xml.close("NavigationProperty");
    }
    partners(xml, model, &entity.logical_name);
    if annotations && !entity.description.is_empty() {
        description(xml, &entity.description);
    }
    xml.close("EntityType");
}

fn property(xml: &mut Xml, entity: &Entity, attribute: &Attribute, annotations: bool) {
    let name = attribute.property_name();
    let mut facets: Vec<(&str, &str)> = vec![
        ("Name", name),
        ("Type", attribute.attribute_type.edm_type()),
    ];
    match attribute.attribute_type {
        AttributeType::String | AttributeType::Memo => facets.push(("Unicode", "false")),
        AttributeType::DateTime => facets.push(("Precision", "0")),
        _ => {}
    }
    if attribute.logical_name == entity.primary_id {
        facets.push(("Nullable", "false"));
    }
    let read_only = attribute.attribute_type.is_lookup()
        || !(attribute.valid_for_create || attribute.valid_for_update);
    let described = annotations && !attribute.description.is_empty();
    if !(described || annotations && read_only) {
        xml.empty("Property", &facets);
        return;
    }
    xml.open("Property", &facets);
    if described {
        description(xml, &attribute.description);
    }
    if read_only {
        xml.empty(
            "Annotation",
            &[("Term", "Org.OData.Core.V1.Computed"), ("Bool", "true")],
        );
        xml.open("Annotation", &[("Term", "Org.OData.Core.V1.Permissions")]);
        xml.text_element("EnumMember", "Org.OData.Core.V1.PermissionType/Read");
        xml.close("Annotation");
    }
    xml.close("Property");
}

fn description(xml: &mut Xml, text: &str) {
    xml.empty(
        "Annotation",
        &[("Term", "Org.OData.Core.V1.Description"), ("String", text)],
    );
}

/// The collection-valued partners of the lookups that point at `type_name`.
fn partners(xml: &mut Xml, model: &Model, type_name: &str) {
    for partner in model.partners(type_name) {
        let collection = format!("Collection({})", qualified(&partner.source.logical_name));
        xml.empty(
            "NavigationProperty",
            &[
                ("Name", partner.name),
                ("Type", &collection),
                ("Partner", partner.mirrors),
            ],
        );
    }
}

fn key(xml: &mut Xml, property: &str) {
    xml.open("Key", &[]);
    xml.empty("PropertyRef", &[("Name", property)]);
    xml.close("Key");
}

fn qualified(name: &str) -> String {
    format!("{ALIAS}.{name}")
}

/// The complex and enum types of the sharing and state messages.
fn operation_types(xml: &mut Xml) {
    xml.open("EnumType", &[("Name", "AccessRights"), ("IsFlags", "true")]);
    for (name, value) in ACCESS_RIGHTS {
        xml.empty("Member", &[("Name", name), ("Value", &value.to_string())]);
    }
    xml.close("EnumType");

    let access_rights = qualified("AccessRights");
    xml.open("ComplexType", &[("Name", "PrincipalAccess")]);
    xml.empty(
        "Property",
        &[
            ("Name", "AccessMask"),
            ("Type", &access_rights),
            ("Nullable", "false"),
        ],
    );
    xml.empty(
        "NavigationProperty",
        &[
            ("Name", "Principal"),
            ("Type", &qualified(PRINCIPAL)),
            ("Nullable", "false"),
        ],
    );
    xml.close("ComplexType");

    complex(
        xml,
        "IsValidStateTransitionResponse",
        &[("IsValid", "Edm.Boolean", true)],
    );
    complex(
        xml,
        "RetrievePrincipalAccessResponse",
        &[("AccessRights", &access_rights, true)],
    );
    complex(
        xml,
        "smsctx_SendSmsResponse",
        &[
            ("MessageId", "Edm.String", false),
            ("Provider", "Edm.String", true),
        ],
    );
    for name in ["CreateMultipleResponse", "UpsertMultipleResponse"] {
        complex(xml, name, &[("Ids", "Collection(Edm.Guid)", true)]);
    }
    complex(
        xml,
        "RetrieveSharedPrincipalsAndAccessResponse",
        &[(
            "PrincipalAccesses",
            &format!("Collection({})", qualified("PrincipalAccess")),
            false,
        )],
    );
}

/// A complex type of (name, type, non-nullable) properties.
fn complex(xml: &mut Xml, name: &str, properties: &[(&str, &str, bool)]) {
    xml.open("ComplexType", &[("Name", name)]);
    for (property, type_name, required) in properties {
        let mut facets = vec![("Name", *property), ("Type", *type_name)];
        if *required {
            facets.push(("Nullable", "false"));
        }
        xml.empty("Property", &facets);
    }
    xml.close("ComplexType");
}

/// One operation parameter: (name, type, extra facets).
type Parameter<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// The functions and actions smsctx serves. `RetrievePrincipalAccess` is bound to `systemuser`
/// and `team` (one overload each, when the catalog has the table); the others are unbound and
/// get an import in the container.
fn operations(xml: &mut Xml, catalog: &Catalog) {
    let base = qualified(BASE_ENTITY);
    let principal = qualified(PRINCIPAL);
    let principal_access = qualified("PrincipalAccess");
    let unicode = &[("Unicode", "false")][..];
    operation(
        xml,
        "Function",
        "IsValidStateTransition",
        false,
        &[
            ("Entity", &base, &[]),
            ("NewState", "Edm.String", unicode),
            ("NewStatus", "Edm.Int32", &[]),
        ],
        Some(&qualified("IsValidStateTransitionResponse")),
    );
    for binding in [system::SYSTEM_USER, system::TEAM] {
        if catalog.entity(binding).is_none() {
            continue;
        }
        let bound = qualified(binding);
        operation(
            xml,
            "Function",
            "RetrievePrincipalAccess",
            true,
            &[("entity", &bound, &[]), ("Target", &base, &[])],
            Some(&qualified("RetrievePrincipalAccessResponse")),
        );
    }
    operation(
        xml,
        "Function",
        "RetrieveSharedPrincipalsAndAccess",
        false,
        &[("Target", &base, &[])],
        Some(&qualified("RetrieveSharedPrincipalsAndAccessResponse")),
    );
    for name in ["GrantAccess", "ModifyAccess"] {
        operation(
            xml,
            "Action",
            name,
            false,
            &[
                ("Target", &base, &[]),
                ("PrincipalAccess", &principal_access, &[]),
            ],
            None,
        );
    }
    operation(
        xml,
        "Action",
        "RevokeAccess",
        false,
        &[("Target", &base, &[]), ("Revokee", &principal, &[])],
        None,
    );
    // The bulk messages, bound to any entity set (`crate::parse::path::COLLECTION_ACTIONS`).
    let records = format!("Collection({base})");
    for name in crate::parse::path::COLLECTION_ACTIONS {
        let returns = (*name != "UpdateMultiple").then(|| qualified(&format!("{name}Response")));
        operation(
            xml,
            "Action",
            name,
            true,
            &[("entityset", &records, &[]), ("Targets", &records, &[])],
            returns.as_deref(),
        );
    }
    // The SMS channel's bound action: send `Message` to the context's customer.
    if catalog.entity(crate::metadata::sms::CONTEXT).is_some() {
        let bound = qualified(crate::metadata::sms::CONTEXT);
        operation(
            xml,
            "Action",
            "smsctx_SendSms",
            true,
            &[("entity", &bound, &[]), ("Message", "Edm.String", unicode)],
            Some(&qualified("smsctx_SendSmsResponse")),
        );
    }
}

/// The unbound operations, which the container imports: (kind, name).
pub const UNBOUND_OPERATIONS: &[(&str, &str)] = &[
    ("Function", "IsValidStateTransition"),
    ("Function", "RetrieveSharedPrincipalsAndAccess"),
    ("Action", "GrantAccess"),
    ("Action", "ModifyAccess"),
    ("Action", "RevokeAccess"),
];

fn operation(
    xml: &mut Xml,
    kind: &str,
    name: &str,
    bound: bool,
    parameters: &[Parameter<'_>],
    returns: Option<&str>,
) {
    let mut facets = vec![("Name", name)];
    if bound {
        facets.push(("IsBound", "true"));
    }
    xml.open(kind, &facets);
    for (parameter, type_name, extra) in parameters {
        let mut facets = vec![("Name", *parameter), ("Type", *type_name)];
        // A parameter is required unless its facets say otherwise.
        if !extra.iter().any(|(facet, _)| *facet == "Nullable") {
            facets.push(("Nullable", "false"));
        }
        facets.extend_from_slice(extra);
        xml.empty("Parameter", &facets);
    }
    if let Some(returns) = returns {
        xml.empty("ReturnType", &[("Type", returns), ("Nullable", "false")]);
    }
    xml.close(kind);
}

/// The `System` container: one entity set per table, with the bindings of its navigation
/// properties to the sets they lead to, and the imports of the unbound operations.
fn container(xml: &mut Xml, model: &Model, catalog: &Catalog, annotations: bool) {
    xml.open("EntityContainer", &[("Name", "System")]);
    for entity in catalog.entities() {
        let type_name = format!("{NAMESPACE}.{}", entity.logical_name);
        xml.open(
            "EntitySet",
            &[
                ("Name", &entity.entity_set_name),
                ("EntityType", &type_name),
            ],
        );
        for nav in model.single(entity) {
            if let Target::Entity(target) = nav.target {
                binding(xml, &nav.name, &target.entity_set_name);
            }
        }
        let mut partners = model.partners(&entity.logical_name);
        if is_principal(entity) {
            partners.extend(model.partners(PRINCIPAL));
        }
        for partner in partners {
            binding(xml, partner.name, &partner.source.entity_set_name);
        }
        // Dataverse marks the sets of tables that track changes (with annotations only).
        if annotations && catalog.tracking().tracks_changes(&entity.logical_name) {
            xml.open(
                "Annotation",
                &[("Term", "Org.OData.Capabilities.V1.ChangeTracking")],
            );
            xml.open("Record", &[]);
            xml.empty(
                "PropertyValue",
                &[("Property", "Supported"), ("Bool", "true")],
            );
            xml.close("Record");
            xml.close("Annotation");
        }
        xml.close("EntitySet");
    }
    for (kind, name) in UNBOUND_OPERATIONS
        .iter()
        .chain(identity::UNBOUND_OPERATIONS)
        .chain(bulk_delete::UNBOUND_OPERATIONS)
    {
        let qualified_name = format!("{NAMESPACE}.{name}");
        let (element, reference) = if *kind == "Function" {
            ("FunctionImport", "Function")
        } else {
            ("ActionImport", "Action")
        };
        xml.empty(element, &[("Name", name), (reference, &qualified_name)]);
    }
    xml.close("EntityContainer");
}

fn binding(xml: &mut Xml, path: &str, target: &str) {
    xml.empty(
        "NavigationPropertyBinding",
        &[("Path", path), ("Target", target)],
    );
}

/// A thin, infallible layer over quick-xml's writer: writing into a `Vec` cannot fail, and
/// attribute values and text are escaped by quick-xml.
struct Xml {
    writer: Writer<Vec<u8>>,
}

impl Xml {
    fn new() -> Xml {
        Xml {
            writer: Writer::new_with_indent(Vec::new(), b' ', 1),
        }
    }

    fn event(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .expect("writing XML into memory cannot fail");
    }

    fn start<'a>(name: &'a str, attributes: &[(&'a str, &'a str)]) -> BytesStart<'a> {
        BytesStart::new(name).with_attributes(attributes.iter().copied())
    }

    fn open(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.event(Event::Start(Self::start(name, attributes)));
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        self.event(Event::Empty(Self::start(name, attributes)));
    }

    fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        self.event(Event::Text(BytesText::new(text)));
        self.close(name);
    }

    fn finish(self) -> String {
        String::from_utf8(self.writer.into_inner()).expect("quick-xml writes UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use quick_xml::events::Event;
    use quick_xml::Reader;

    use super::*;

    /// One element of the parsed document: enough of a DOM for the checks below.
    #[derive(Debug, Default)]
    struct Node {
        name: String,
        attributes: Vec<(String, String)>,
        children: Vec<Node>,
        text: String,
    }

    impl Node {
        fn attr(&self, name: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }

        fn child_named<'a>(&'a self, element: &'a str, name: &str) -> Option<&'a Node> {
            self.children(element)
                .find(|c| c.attr("Name") == Some(name))
        }
    }

    fn element(start: &quick_xml::events::BytesStart<'_>) -> Node {
        Node {
            name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
            attributes: start
                .attributes()
                .map(|a| {
                    let a = a.expect("well-formed attribute");
                    (
                        String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                        a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .expect("valid escapes")
                            .into_owned(),
                    )
                })
                .collect(),
            ..Node::default()
        }
    }

    /// Parses the document with quick-xml's reader, which checks that it is well-formed
    /// (matching end tags, quoted and unique attributes, valid escapes), and returns the root.
    fn parse(xml: &str) -> Node {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().trim_text(true);
        let mut stack = vec![Node::default()];
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(start) => stack.push(element(&start)),
                Event::Empty(start) => {
                    let node = element(&start);
                    stack.last_mut().unwrap().children.push(node);
                }
                Event::End(_) => {
                    let node = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(node);
                }
                Event::Text(text) => {
                    stack.last_mut().unwrap().text += &text.decode().unwrap();
                }
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(stack.len(), 1, "every element is closed");
        let mut document = stack.pop().unwrap();
        assert_eq!(document.children.len(), 1, "one root element");
        document.children.pop().unwrap()
    }

    fn catalog() -> Catalog {
        Catalog::builtin().expect("the built-in pages import")
    }

    /// The `Schema` element of the document.
    fn schema(annotations: bool) -> Node {
        let root = parse(&csdl(&catalog(), annotations));
        assert_eq!(root.name, "edmx:Edmx");
        assert_eq!(root.attr("Version"), Some("4.0"));
        let mut services = root
            .children
            .into_iter()
            .find(|c| c.name == "edmx:DataServices");
        let services = services.take().expect("edmx:DataServices");
        let schema = services.children.into_iter().next().expect("Schema");
        assert_eq!(schema.attr("Namespace"), Some(NAMESPACE));
        assert_eq!(schema.attr("Alias"), Some(ALIAS));
        schema
    }

    fn unqualified(type_name: &str) -> &str {
        let inner = type_name
            .strip_prefix("Collection(")
            .and_then(|t| t.strip_suffix(')'))
            .unwrap_or(type_name);
        inner
            .strip_prefix("mscrm.")
            .or_else(|| inner.strip_prefix("Microsoft.Dynamics.CRM."))
            .unwrap_or(inner)
    }

    /// The entity types by name, and a lookup of a member (property or navigation property)
    /// that follows `BaseType`.
    struct Types<'a> {
        by_name: HashMap<&'a str, &'a Node>,
    }

    impl<'a> Types<'a> {
        fn new(schema: &'a Node) -> Types<'a> {
            let by_name = schema
                .children("EntityType")
                .map(|t| (t.attr("Name").unwrap(), t))
                .collect();
            Types { by_name }
        }

        fn get(&self, name: &str) -> &'a Node {
            self.by_name
                .get(unqualified(name))
                .unwrap_or_else(|| panic!("entity type {name} is declared"))
        }

        /// The type and its ancestors, nearest first.
        fn lineage(&self, name: &str) -> Vec<&'a Node> {
            let mut out = vec![self.get(name)];
            while let Some(base) = out.last().unwrap().attr("BaseType") {
                out.push(self.get(base));
            }
            out
        }

        fn member(&self, type_name: &str, element: &'a str, member: &str) -> Option<&'a Node> {
            self.lineage(type_name)
                .into_iter()
                .find_map(|t| t.child_named(element, member))
        }
    }

    #[test]
    fn every_edm_property_of_the_seed_table_has_its_type() {
        let schema = schema(false);
        let catalog = catalog();
        let ctx = catalog.entity("msdyn_smsengagementctx").unwrap();
        let types = Types::new(&schema);
        let entity_type = types.get("msdyn_smsengagementctx");
        assert_eq!(entity_type.attr("BaseType"), Some("mscrm.crmbaseentity"));
        let mut expected = 0;
        for attribute in ctx.attributes.iter().filter(|a| a.is_edm_property()) {
            let name = attribute.property_name();
            let property = entity_type
                .child_named("Property", name)
                .unwrap_or_else(|| panic!("property {name}"));
            assert_eq!(
                property.attr("Type"),
                Some(attribute.attribute_type.edm_type()),
                "{name}"
            );
            expected += 1;
        }
        assert_eq!(entity_type.children("Property").count(), expected);
        assert_eq!(expected, 25);
        for hidden in [
            "owneridtype",
            "owneridname",
            "msdyn_liveworkitemidname",
            "ownerid",
        ] {
            assert!(
                entity_type.child_named("Property", hidden).is_none(),
                "{hidden}"
            );
        }
        let name = entity_type.child_named("Property", "msdyn_name").unwrap();
        assert_eq!(name.attr("Unicode"), Some("false"));
    }

    #[test]
    fn keys_follow_the_primary_ids_and_principals_inherit_ownerid() {
        let schema = schema(false);
        let types = Types::new(&schema);
        let key = |name: &str| -> Option<Vec<String>> {
            types.get(name).children("Key").next().map(|k| {
                k.children("PropertyRef")
                    .map(|r| r.attr("Name").unwrap().to_string())
                    .collect()
            })
        };
        assert_eq!(
            key("msdyn_smsengagementctx").unwrap(),
            ["msdyn_smsengagementctxid"]
        );
        assert_eq!(key("msdyn_ocliveworkitem").unwrap(), ["activityid"]);
        assert_eq!(key("businessunit").unwrap(), ["businessunitid"]);
        assert_eq!(key("principal").unwrap(), ["ownerid"]);
        assert_eq!(key("crmbaseentity"), None);
        assert_eq!(types.get("principal").attr("Abstract"), Some("true"));
        assert_eq!(types.get("crmbaseentity").attr("Abstract"), Some("true"));
        for principal in ["systemuser", "team"] {
            assert_eq!(key(principal), None, "{principal} inherits its key");
            assert_eq!(
                types.get(principal).attr("BaseType"),
                Some("mscrm.principal")
            );
        }
        // Every concrete type has exactly one key in its lineage, and its key properties are
        // declared, non-nullable Guids.
        for (name, node) in &types.by_name {
            if node.attr("Abstract") == Some("true") {
                continue;
            }
            let keys: Vec<&Node> = types
                .lineage(name)
                .into_iter()
                .flat_map(|t| t.children("Key"))
                .collect();
            assert_eq!(keys.len(), 1, "{name}");
            for reference in keys[0].children("PropertyRef") {
                let property = types
                    .member(name, "Property", reference.attr("Name").unwrap())
                    .unwrap();
                assert_eq!(property.attr("Type"), Some("Edm.Guid"));
                assert_eq!(property.attr("Nullable"), Some("false"));
            }
        }
    }

    #[test]
    fn navigation_properties_are_constrained_and_partnered() {
        let schema = schema(false);
        let types = Types::new(&schema);
        let mut constrained = 0;
        for (type_name, node) in &types.by_name {
            for nav in node.children("NavigationProperty") {
                let name = nav.attr("Name").unwrap();
                let target = nav.attr("Type").unwrap();
                let partner = nav.attr("Partner").expect("every navigation has a partner");
                let mirror = types
                    .member(target, "NavigationProperty", partner)
                    .unwrap_or_else(|| panic!("{type_name}.{name}: partner {partner}"));
                assert_eq!(mirror.attr("Partner"), Some(name), "{type_name}.{name}");
                if target.starts_with("Collection(") {
                    assert_eq!(nav.children("ReferentialConstraint").count(), 0);
                    continue;
                }
                let constraint = nav
                    .children("ReferentialConstraint")
                    .next()
                    .unwrap_or_else(|| panic!("{type_name}.{name} has a constraint"));
                let property = constraint.attr("Property").unwrap();
                let referenced = constraint.attr("ReferencedProperty").unwrap();
                let dependent = types
                    .member(type_name, "Property", property)
                    .unwrap_or_else(|| panic!("{type_name}.{property} exists"));
                let principal = types
                    .member(target, "Property", referenced)
                    .unwrap_or_else(|| panic!("{target}.{referenced} exists"));
                assert_eq!(dependent.attr("Type"), principal.attr("Type"));
                constrained += 1;
            }
        }
        assert!(constrained >= 9);
        let ctx = types.get("msdyn_smsengagementctx");
        let live = ctx
            .child_named("NavigationProperty", "msdyn_liveworkitemid")
            .unwrap();
        assert_eq!(live.attr("Type"), Some("mscrm.msdyn_ocliveworkitem"));
        assert_eq!(
            live.attr("Partner"),
            Some("msdyn_msdyn_ocliveworkitem_msdyn_smsengagementctx_liveworkitemid")
        );
        let owner = ctx.child_named("NavigationProperty", "ownerid").unwrap();
        assert_eq!(owner.attr("Type"), Some("mscrm.principal"));
        assert_eq!(owner.attr("Partner"), Some("owner_msdyn_smsengagementctx"));
        let constraint = owner.children("ReferentialConstraint").next().unwrap();
        assert_eq!(constraint.attr("Property"), Some("_ownerid_value"));
        assert_eq!(constraint.attr("ReferencedProperty"), Some("ownerid"));
    }

    #[test]
    fn member_names_are_unique_within_each_type_lineage() {
        let schema = schema(false);
        let types = Types::new(&schema);
        for name in types.by_name.keys() {
            let mut seen = std::collections::HashSet::new();
            for node in types.lineage(name) {
                for member in node
                    .children
                    .iter()
                    .filter(|c| c.name == "Property" || c.name == "NavigationProperty")
                {
                    let member = member.attr("Name").unwrap();
                    assert!(seen.insert(member), "{name}: {member} declared twice");
                }
            }
        }
    }

    #[test]
    fn every_type_reference_resolves() {
        let schema = schema(true);
        let mut declared: Vec<&str> = schema
            .children
            .iter()
            .filter(|c| matches!(c.name.as_str(), "EntityType" | "ComplexType" | "EnumType"))
            .map(|c| c.attr("Name").unwrap())
            .collect();
        declared.sort();
        fn walk<'a>(node: &'a Node, out: &mut Vec<(&'a str, &'a str)>) {
            for (key, value) in &node.attributes {
                if matches!(key.as_str(), "Type" | "BaseType" | "EntityType") {
                    out.push((key.as_str(), value.as_str()));
                }
            }
            for child in &node.children {
                walk(child, out);
            }
        }
        let mut references = Vec::new();
        walk(&schema, &mut references);
        for (key, value) in references {
            let name = unqualified(value);
            if name.starts_with("Edm.") {
                continue;
            }
            assert!(declared.binary_search(&name).is_ok(), "{key}={value}");
        }
    }

    #[test]
    fn access_rights_is_a_flags_enum_with_dataverse_values() {
        let schema = schema(false);
        let rights = schema.child_named("EnumType", "AccessRights").unwrap();
        assert_eq!(rights.attr("IsFlags"), Some("true"));
        let members: Vec<(String, String)> = rights
            .children("Member")
            .map(|m| {
                (
                    m.attr("Name").unwrap().into(),
                    m.attr("Value").unwrap().into(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("None", "0"),
            ("ReadAccess", "1"),
            ("WriteAccess", "2"),
            ("AppendAccess", "4"),
            ("AppendToAccess", "16"),
            ("CreateAccess", "32"),
            ("DeleteAccess", "65536"),
            ("ShareAccess", "262144"),
            ("AssignAccess", "524288"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(members, expected);
        let access = schema
            .child_named("ComplexType", "PrincipalAccess")
            .unwrap();
        let mask = access.child_named("Property", "AccessMask").unwrap();
        assert_eq!(mask.attr("Type"), Some("mscrm.AccessRights"));
        let principal = access
            .child_named("NavigationProperty", "Principal")
            .unwrap();
        assert_eq!(principal.attr("Type"), Some("mscrm.principal"));
    }

    /// `(parameter, type)` pairs and the return type of one operation element.
    fn signature(node: &Node) -> (Vec<(String, String)>, Option<String>) {
        let parameters = node
            .children("Parameter")
            .map(|p| {
                (
                    p.attr("Name").unwrap().into(),
                    p.attr("Type").unwrap().into(),
                )
            })
            .collect();
        let returns = node
            .children("ReturnType")
            .next()
            .map(|r| r.attr("Type").unwrap().to_string());
        (parameters, returns)
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn operations_have_the_dataverse_signatures() {
        let schema = schema(false);
        let function = schema
            .child_named("Function", "IsValidStateTransition")
            .unwrap();
        assert_eq!(function.attr("IsBound"), None);
        assert_eq!(
            signature(function),
            (
                pairs(&[
                    ("Entity", "mscrm.crmbaseentity"),
                    ("NewState", "Edm.String"),
                    ("NewStatus", "Edm.Int32"),
                ]),
                Some("mscrm.IsValidStateTransitionResponse".into())
            )
        );
        let response = schema
            .child_named("ComplexType", "IsValidStateTransitionResponse")
            .unwrap();
        let valid = response.child_named("Property", "IsValid").unwrap();
        assert_eq!(valid.attr("Type"), Some("Edm.Boolean"));

        let bound: Vec<&Node> = schema
            .children("Function")
            .filter(|f| f.attr("Name") == Some("RetrievePrincipalAccess"))
            .collect();
        assert_eq!(bound.len(), 2);
        for (overload, binding) in bound.iter().zip(["mscrm.systemuser", "mscrm.team"]) {
            assert_eq!(overload.attr("IsBound"), Some("true"));
            assert_eq!(
                signature(overload),
                (
                    pairs(&[("entity", binding), ("Target", "mscrm.crmbaseentity")]),
                    Some("mscrm.RetrievePrincipalAccessResponse".into())
                )
            );
        }
        let shared = schema
            .child_named("Function", "RetrieveSharedPrincipalsAndAccess")
            .unwrap();
        assert_eq!(
            signature(shared),
            (
                pairs(&[("Target", "mscrm.crmbaseentity")]),
                Some("mscrm.RetrieveSharedPrincipalsAndAccessResponse".into())
            )
        );
        let accesses = schema
            .child_named("ComplexType", "RetrieveSharedPrincipalsAndAccessResponse")
            .unwrap()
            .child_named("Property", "PrincipalAccesses")
            .unwrap();
        assert_eq!(
            accesses.attr("Type"),
            Some("Collection(mscrm.PrincipalAccess)")
        );
        for name in ["GrantAccess", "ModifyAccess"] {
            let action = schema.child_named("Action", name).unwrap();
            assert_eq!(
                signature(action),
                (
                    pairs(&[
                        ("Target", "mscrm.crmbaseentity"),
                        ("PrincipalAccess", "mscrm.PrincipalAccess"),
                    ]),
                    None
                )
            );
        }
        let revoke = schema.child_named("Action", "RevokeAccess").unwrap();
        assert_eq!(
            signature(revoke),
            (
                pairs(&[
                    ("Target", "mscrm.crmbaseentity"),
                    ("Revokee", "mscrm.principal"),
                ]),
                None
            )
        );
        let send = schema.child_named("Action", "smsctx_SendSms").unwrap();
        assert_eq!(send.attr("IsBound"), Some("true"));
        assert_eq!(
            signature(send),
            (
                pairs(&[
                    ("entity", "mscrm.msdyn_smsengagementctx"),
                    ("Message", "Edm.String"),
                ]),
                Some("mscrm.smsctx_SendSmsResponse".to_string())
            )
        );
    }

    #[test]
    fn bulk_delete_and_its_query_expression_types_are_declared() {
        let schema = schema(false);
        let action = schema.child_named("Action", "BulkDelete").unwrap();
        assert_eq!(action.attr("IsBound"), None);
        assert_eq!(
            signature(action),
            (
                pairs(&[
                    ("QuerySet", "Collection(mscrm.QueryExpression)"),
                    ("JobName", "Edm.String"),
                    ("SendEmailNotification", "Edm.Boolean"),
                    ("ToRecipients", "Collection(mscrm.crmbaseentity)"),
                    ("CCRecipients", "Collection(mscrm.crmbaseentity)"),
                    ("RecurrencePattern", "Edm.String"),
                    ("StartDateTime", "Edm.DateTimeOffset"),
                    ("SourceImportId", "Edm.Guid"),
                    ("RunNow", "Edm.Boolean"),
                ]),
                Some("mscrm.BulkDeleteResponse".into())
            )
        );
        // The optional parameters are nullable, the others not, each declared once.
        for parameter in action.children("Parameter") {
            let name = parameter.attr("Name").unwrap();
            let optional = matches!(name, "SourceImportId" | "RunNow");
            let nullable = if optional { "true" } else { "false" };
            assert_eq!(parameter.attr("Nullable"), Some(nullable), "{name}");
            let facets = parameter.attributes.iter().filter(|(k, _)| k == "Nullable");
            assert_eq!(facets.count(), 1, "{name}");
        }
        let response = schema
            .child_named("ComplexType", "BulkDeleteResponse")
            .unwrap();
        let job = response.child_named("Property", "JobId").unwrap();
        assert_eq!(job.attr("Type"), Some("Edm.Guid"));
        let query = schema
            .child_named("ComplexType", "QueryExpression")
            .unwrap();
        assert_eq!(query.attr("BaseType"), Some("mscrm.QueryBase"));
        for (property, type_name) in [
            ("EntityName", "Edm.String"),
            ("Criteria", "mscrm.FilterExpression"),
            ("ColumnSet", "mscrm.ColumnSet"),
            ("LinkEntities", "Collection(mscrm.LinkEntity)"),
        ] {
            let member = query.child_named("Property", property).unwrap();
            assert_eq!(member.attr("Type"), Some(type_name), "{property}");
        }
        let filter = schema
            .child_named("ComplexType", "FilterExpression")
            .unwrap();
        for (property, type_name) in [
            ("FilterOperator", "mscrm.LogicalOperator"),
            ("Conditions", "Collection(mscrm.ConditionExpression)"),
            ("Filters", "Collection(mscrm.FilterExpression)"),
        ] {
            let member = filter.child_named("Property", property).unwrap();
            assert_eq!(member.attr("Type"), Some(type_name), "{property}");
        }
        let condition = schema
            .child_named("ComplexType", "ConditionExpression")
            .unwrap();
        let values = condition.child_named("Property", "Values").unwrap();
        assert_eq!(values.attr("Type"), Some("Collection(mscrm.Object)"));
        // Every operator the QueryExpression reader evaluates is a member, with Dataverse's value.
        let operators = schema.child_named("EnumType", "ConditionOperator").unwrap();
        let member = |name: &str| {
            operators
                .child_named("Member", name)
                .and_then(|m| m.attr("Value"))
                .map(str::to_string)
        };
        for (name, _, value) in crate::query::fetchxml::expression::CONDITION_OPERATORS {
            assert_eq!(member(name), Some(value.to_string()), "{name}");
        }
        assert_eq!(member("Equal").as_deref(), Some("0"));
        assert_eq!(member("BeginsWith").as_deref(), Some("54"));
        let logical = schema.child_named("EnumType", "LogicalOperator").unwrap();
        assert!(logical.child_named("Member", "Or").is_some());
    }

    #[test]
    fn the_container_has_every_entity_set_and_the_unbound_imports() {
        let schema = schema(false);
        let container = schema.child_named("EntityContainer", "System").unwrap();
        let sets: Vec<(String, String)> = container
            .children("EntitySet")
            .map(|s| {
                (
                    s.attr("Name").unwrap().into(),
                    s.attr("EntityType").unwrap().into(),
                )
            })
            .collect();
        let catalog = catalog();
        let expected: Vec<(String, String)> = catalog
            .entities()
            .iter()
            .map(|e| (e.entity_set_name.clone(), e.edm_type_name()))
            .collect();
        assert_eq!(sets, expected);
        let ctx = container
            .child_named("EntitySet", "msdyn_smsengagementctxes")
            .unwrap();
        let binding = ctx
            .children("NavigationPropertyBinding")
            .find(|b| b.attr("Path") == Some("msdyn_liveworkitemid"))
            .unwrap();
        assert_eq!(binding.attr("Target"), Some("msdyn_ocliveworkitems"));
        for (element, name, reference) in [
            ("FunctionImport", "IsValidStateTransition", "Function"),
            (
                "FunctionImport",
                "RetrieveSharedPrincipalsAndAccess",
                "Function",
            ),
            ("ActionImport", "GrantAccess", "Action"),
            ("ActionImport", "ModifyAccess", "Action"),
            ("ActionImport", "RevokeAccess", "Action"),
            ("ActionImport", "BulkDelete", "Action"),
        ] {
            let import = container.child_named(element, name).unwrap();
            assert_eq!(
                import.attr(reference),
                Some(format!("Microsoft.Dynamics.CRM.{name}").as_str())
            );
        }
        assert!(container
            .child_named("FunctionImport", "RetrievePrincipalAccess")
            .is_none());
    }

    #[test]
    fn annotations_describe_and_mark_read_only_properties() {
        let plain = schema(false);
        let annotated = schema(true);
        let terms = |schema: &Node, property: &str| -> Vec<String> {
            Types::new(schema)
                .get("msdyn_smsengagementctx")
                .child_named("Property", property)
                .unwrap()
                .children("Annotation")
                .map(|a| a.attr("Term").unwrap().to_string())
                .collect()
        };
        assert!(terms(&plain, "createdon").is_empty());
        let computed = [
            "Org.OData.Core.V1.Description",
            "Org.OData.Core.V1.Computed",
            "Org.OData.Core.V1.Permissions",
        ];
        assert_eq!(terms(&annotated, "createdon"), computed);
        assert_eq!(terms(&annotated, "_ownerid_value"), computed);
        assert_eq!(terms(&annotated, "_msdyn_liveworkitemid_value"), computed);
        assert_eq!(
            terms(&annotated, "msdyn_name"),
            ["Org.OData.Core.V1.Description"]
        );
        let types = Types::new(&annotated);
        let country = types
            .get("msdyn_smsengagementctx")
            .child_named("Property", "msdyn_countrycode")
            .unwrap();
        let description = country.children("Annotation").next().unwrap();
        // The page's quotes and apostrophe survive escaping.
        assert_eq!(
            description.attr("String"),
            Some(
                "Country code of the customer's (C2) phone number. For instance, US will be \"1\", India will be \"91\""
            )
        );
        let permissions = types
            .get("msdyn_smsengagementctx")
            .child_named("Property", "createdon")
            .unwrap()
            .children("Annotation")
            .nth(2)
            .unwrap();
        assert_eq!(
            permissions.children("EnumMember").next().unwrap().text,
            "Org.OData.Core.V1.PermissionType/Read"
        );
        let table = types
            .get("msdyn_smsengagementctx")
            .children("Annotation")
            .next()
            .unwrap();
        assert_eq!(table.attr("String"), Some("Stores context values for SMS"));
    }

    #[test]
    fn the_seed_entity_type_snapshot() {
        let document = csdl(&catalog(), false);
        let start = document
            .find("<EntityType Name=\"msdyn_smsengagementctx\"")
            .unwrap();
        let line_start = document[..start].rfind('\n').map_or(0, |i| i + 1);
        let indent = start - line_start;
        let end = start + document[start..].find("</EntityType>").unwrap();
        let element: Vec<&str> = document[line_start..end + "</EntityType>".len()]
            .lines()
            .map(|line| &line[indent..])
            .collect();
        insta::assert_snapshot!(element.join("\n"));
    }
}
