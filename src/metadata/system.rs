//! The names of Dataverse's system columns and tables: the columns every table of a given
//! ownership has, maintained by the server rather than the client. They are named once, here.

pub const CREATED_ON: &str = "createdon";
pub const MODIFIED_ON: &str = "modifiedon";
pub const CREATED_BY: &str = "createdby";
pub const MODIFIED_BY: &str = "modifiedby";
pub const CREATED_ON_BEHALF_BY: &str = "createdonbehalfby";
pub const MODIFIED_ON_BEHALF_BY: &str = "modifiedonbehalfby";
pub const OVERRIDDEN_CREATED_ON: &str = "overriddencreatedon";
pub const VERSION_NUMBER: &str = "versionnumber";
/// The columns every update changes; an update's audit leaves them out.
pub const EVERY_UPDATE: [&str; 4] = [
    VERSION_NUMBER,
    MODIFIED_ON,
    MODIFIED_BY,
    MODIFIED_ON_BEHALF_BY,
];
pub const OWNER_ID: &str = "ownerid";
pub const OWNER_ID_TYPE: &str = "owneridtype";
pub const OWNING_USER: &str = "owninguser";
pub const OWNING_TEAM: &str = "owningteam";
pub const OWNING_BUSINESS_UNIT: &str = "owningbusinessunit";

/// The lookup from a principal (user or team) to its business unit.
pub const BUSINESS_UNIT_ID: &str = "businessunitid";

pub const SYSTEM_USER: &str = "systemuser";
pub const TEAM: &str = "team";
pub const BUSINESS_UNIT: &str = "businessunit";
/// The organisation table and the columns the identity functions read.
pub const ORGANIZATION: &str = "organization";
pub const LANGUAGE_CODE: &str = "languagecode";
/// The organisation's auditing switch (migration 15).
pub const IS_AUDIT_ENABLED: &str = "isauditenabled";

// The audit table (metadata/audit.md): a read-only view of the change log.
pub const AUDIT: &str = "audit";
pub const AUDIT_ID: &str = "auditid";
pub const AUDIT_ACTION: &str = "action";
pub const AUDIT_OPERATION: &str = "operation";

/// The user's name parts and the full name the server derives from them.
pub const FIRST_NAME: &str = "firstname";
pub const LAST_NAME: &str = "lastname";
pub const FULL_NAME: &str = "fullname";

/// The security model's tables and the columns it reads.
pub const ROLE: &str = "role";
pub const ROLE_PRIVILEGES: &str = "roleprivileges";
pub const SYSTEM_USER_ROLES: &str = "systemuserroles";
pub const TEAM_ROLES: &str = "teamroles";
pub const TEAM_MEMBERSHIP: &str = "teammembership";
pub const PRINCIPAL_OBJECT_ACCESS: &str = "principalobjectaccess";
pub const ROLE_ID: &str = "roleid";
pub const TEAM_ID: &str = "teamid";
pub const SYSTEM_USER_ID: &str = "systemuserid";
pub const PRIVILEGE_ID: &str = "privilegeid";
pub const PRIVILEGE_DEPTH_MASK: &str = "privilegedepthmask";
pub const OBJECT_ID: &str = "objectid";
pub const OBJECT_TYPE_CODE: &str = "objecttypecode";
pub const PRINCIPAL_ID: &str = "principalid";
pub const PRINCIPAL_TYPE_CODE: &str = "principaltypecode";
pub const ACCESS_RIGHTS_MASK: &str = "accessrightsmask";
pub const IS_DISABLED: &str = "isdisabled";
pub const AZURE_AD_OBJECT_ID: &str = "azureactivedirectoryobjectid";
pub const PARENT_BUSINESS_UNIT_ID: &str = "parentbusinessunitid";
pub const NAME: &str = "name";
pub const DOMAIN_NAME: &str = "domainname";
