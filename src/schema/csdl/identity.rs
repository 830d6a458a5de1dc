//! The `$metadata` declarations of the identity and organisation functions: WhoAmI,
//! RetrieveVersion, RetrieveCurrentOrganization and RetrieveTotalRecordCount (unbound, imported
//! by the container), RetrieveUserPrivileges (bound to `systemuser`), and the complex and enum
//! types of their responses, as Dataverse's Web API reference defines them.

use super::{complex, operation, qualified, Xml};
use crate::metadata::{system, Catalog};

/// The unbound functions of this module, which the container imports: (kind, name).
pub const UNBOUND_OPERATIONS: &[(&str, &str)] = &[
    ("Function", "WhoAmI"),
    ("Function", "RetrieveVersion"),
    ("Function", "RetrieveCurrentOrganization"),
    ("Function", "RetrieveTotalRecordCount"),
];

/// The enum types, with Dataverse's member values.
const ENUMS: &[(&str, &[(&str, u32)])] = &[
    (
        "EndpointAccessType",
        &[("Default", 0), ("Internet", 1), ("Intranet", 2)],
    ),
    (
        "EndpointType",
        &[
            ("OrganizationService", 0),
            ("OrganizationDataService", 1),
            ("WebApplication", 2),
        ],
    ),
    ("OrganizationState", &[("Enabled", 0), ("Disabled", 1)]),
    (
        "PrivilegeDepth",
        &[("Basic", 0), ("Local", 1), ("Deep", 2), ("Global", 3)],
    ),
];

/// The enum and complex types of the responses.
pub(super) fn types(xml: &mut Xml) {
    for (name, members) in ENUMS {
        xml.open("EnumType", &[("Name", name)]);
        for (member, value) in *members {
            xml.empty("Member", &[("Name", member), ("Value", &value.to_string())]);
        }
        xml.close("EnumType");
    }
    complex(
        xml,
        "WhoAmIResponse",
        &[
            ("BusinessUnitId", "Edm.Guid", true),
            ("UserId", "Edm.Guid", true),
            ("OrganizationId", "Edm.Guid", true),
        ],
    );
    complex(
        xml,
        "RetrieveVersionResponse",
        &[("Version", "Edm.String", false)],
    );
    complex(
        xml,
        "EndpointCollection",
        &[
            ("Count", "Edm.Int32", true),
            ("IsReadOnly", "Edm.Boolean", true),
            (
                "Keys",
                &format!("Collection({})", qualified("EndpointType")),
                false,
            ),
            ("Values", "Collection(Edm.String)", false),
        ],
    );
    complex(
        xml,
        "OrganizationDetail",
        &[
            ("OrganizationId", "Edm.Guid", true),
            ("FriendlyName", "Edm.String", false),
            ("OrganizationVersion", "Edm.String", false),
            ("EnvironmentId", "Edm.String", false),
            ("DatacenterId", "Edm.Guid", false),
            ("Geo", "Edm.String", false),
            ("TenantId", "Edm.String", false),
            ("UrlName", "Edm.String", false),
            ("UniqueName", "Edm.String", false),
            ("Endpoints", &qualified("EndpointCollection"), false),
            ("State", &qualified("OrganizationState"), true),
        ],
    );
    complex(
        xml,
        "RetrieveCurrentOrganizationResponse",
        &[("Detail", &qualified("OrganizationDetail"), false)],
    );
    complex(
        xml,
        "EntityRecordCountCollection",
        &[
            ("Count", "Edm.Int32", true),
            ("IsReadOnly", "Edm.Boolean", true),
            ("Keys", "Collection(Edm.String)", false),
            ("Values", "Collection(Edm.Int64)", false),
        ],
    );
    complex(
        xml,
        "RetrieveTotalRecordCountResponse",
        &[(
            "EntityRecordCountCollection",
            &qualified("EntityRecordCountCollection"),
            false,
        )],
    );
    complex(
        xml,
        "RolePrivilege",
        &[
            ("Depth", &qualified("PrivilegeDepth"), true),
            ("PrivilegeId", "Edm.Guid", true),
            ("BusinessUnitId", "Edm.Guid", true),
            ("PrivilegeName", "Edm.String", false),
        ],
    );
    complex(
        xml,
        "RetrieveUserPrivilegesResponse",
        &[(
            "RolePrivileges",
            &format!("Collection({})", qualified("RolePrivilege")),
            false,
        )],
    );
}

/// The functions (RetrieveUserPrivileges when the catalog has `systemuser`).
pub(super) fn operations(xml: &mut Xml, catalog: &Catalog) {
    for name in ["WhoAmI", "RetrieveVersion"] {
        let returns = qualified(&format!("{name}Response"));
        operation(xml, "Function", name, false, &[], Some(&returns));
    }
    operation(
        xml,
        "Function",
        "RetrieveCurrentOrganization",
        false,
        &[("AccessType", &qualified("EndpointAccessType"), &[])],
        Some(&qualified("RetrieveCurrentOrganizationResponse")),
    );
    operation(
        xml,
        "Function",
        "RetrieveTotalRecordCount",
        false,
        &[("EntityNames", "Collection(Edm.String)", &[])],
        Some(&qualified("RetrieveTotalRecordCountResponse")),
    );
    if catalog.entity(system::SYSTEM_USER).is_some() {
        operation(
            xml,
            "Function",
            "RetrieveUserPrivileges",
            true,
            &[("entity", &qualified(system::SYSTEM_USER), &[])],
            Some(&qualified("RetrieveUserPrivilegesResponse")),
        );
    }
}
