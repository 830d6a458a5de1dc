//! Privileges (what a role lets a principal do with a table) and their depths (on which rows).
//!
//! A table privilege is named `prv{Create,Read,Write,Delete,Append,AppendTo,Assign,Share}{table}`
//! (`prvReadmsdyn_smsengagementctx`; the system tables keep historic names: `prvReadUser`,
//! `prvReadTeam`, `prvReadBusinessUnit`, `prvReadRole`); each is held at a depth: Basic (the principal's own rows and
//! its teams' rows), Local (rows of its business unit), Deep (its business unit and the units
//! below it) or Global (every row). Besides table privileges there is one miscellaneous privilege
//! smsctx models, `prvActOnBehalfOfAnotherUser` (impersonation).
//!
//! Dataverse gives every privilege a Guid and every table an object type code; both appear in its
//! error messages. The system tables' codes are Dataverse's own (systemuser 8, team 9,
//! businessunit 10, role 1036, as in the published privilege references); a custom table's code differs between organisations (always
//! 10000 or more), so smsctx derives a stable one from the table name. Privilege ids are derived
//! from the privilege name the same way: stable, but not the ids of any real organisation.

use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::metadata::system::{BUSINESS_UNIT, ORGANIZATION, ROLE, SYSTEM_USER, TEAM};

use super::rights::AccessRights;

/// A table privilege, without its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Privilege {
    Create,
    Read,
    Write,
    Delete,
    Append,
    AppendTo,
    Assign,
    Share,
}

impl Privilege {
    /// Every table privilege, in the order Dataverse's role editor lists them.
    pub const ALL: [Privilege; 8] = [
        Privilege::Create,
        Privilege::Read,
        Privilege::Write,
        Privilege::Delete,
        Privilege::Append,
        Privilege::AppendTo,
        Privilege::Assign,
        Privilege::Share,
    ];

    /// The privileges that are access rights on an existing record (all but Create).
    pub const ON_RECORDS: [Privilege; 7] = [
        Privilege::Read,
        Privilege::Write,
        Privilege::Delete,
        Privilege::Append,
        Privilege::AppendTo,
        Privilege::Assign,
        Privilege::Share,
    ];

    /// The name part between `prv` and the table (`AppendTo`).
    pub fn name(self) -> &'static str {
        match self {
            Privilege::Create => "Create",
            Privilege::Read => "Read",
            Privilege::Write => "Write",
            Privilege::Delete => "Delete",
            Privilege::Append => "Append",
            Privilege::AppendTo => "AppendTo",
            Privilege::Assign => "Assign",
            Privilege::Share => "Share",
        }
    }

    pub fn parse(name: &str) -> Option<Privilege> {
        Privilege::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Dataverse's privilege name for a table: `prvReadmsdyn_smsengagementctx`, `prvReadUser`
    /// (see [`privilege_table_name`]).
    pub fn dataverse_name(self, entity: &str) -> String {
        format!("prv{}{}", self.name(), privilege_table_name(entity))
    }

    /// Splits a Dataverse privilege name (`prvAppendTomsdyn_smsengagementctx`, `prvReadUser`)
    /// into the privilege and the table's logical name. The longest privilege name is tried
    /// first, so `AppendTo` wins over `Append`.
    pub fn parse_dataverse_name(name: &str) -> Option<(Privilege, &str)> {
        let rest = name.strip_prefix("prv")?;
        let mut candidates = Privilege::ALL;
        candidates.sort_by_key(|p| std::cmp::Reverse(p.name().len()));
        candidates.into_iter().find_map(|p| {
            let table = rest.strip_prefix(p.name())?;
            let entity = SYSTEM_PRIVILEGE_NAMES
                .iter()
                .find(|(_, n)| *n == table)
                .map_or(table, |(entity, _)| *entity);
            (!entity.is_empty()).then_some((p, entity))
        })
    }

    /// The access right this privilege grants on a record.
    pub fn right(self) -> AccessRights {
        match self {
            Privilege::Create => AccessRights::CREATE,
            Privilege::Read => AccessRights::READ,
            Privilege::Write => AccessRights::WRITE,
            Privilege::Delete => AccessRights::DELETE,
            Privilege::Append => AccessRights::APPEND,
            Privilege::AppendTo => AccessRights::APPEND_TO,
            Privilege::Assign => AccessRights::ASSIGN,
            Privilege::Share => AccessRights::SHARE,
        }
    }
}

/// How far a privilege reaches. Ordered: `None < Basic < Local < Deep < Global`, and each depth
/// includes the rows of the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Depth {
    #[default]
    None,
    /// The principal's own rows and its teams' rows ("User" in the role editor).
    Basic,
    /// Rows of the business unit ("Business Unit").
    Local,
    /// Rows of the business unit and every unit below it ("Parent: Child Business Units").
    Deep,
    /// Every row ("Organization").
    Global,
}

impl Depth {
    pub const ALL: [Depth; 5] = [
        Depth::None,
        Depth::Basic,
        Depth::Local,
        Depth::Deep,
        Depth::Global,
    ];

    /// The SDK's `PrivilegeDepth` member name (`None` for no privilege).
    pub fn name(self) -> &'static str {
        match self {
            Depth::None => "None",
            Depth::Basic => "Basic",
            Depth::Local => "Local",
            Depth::Deep => "Deep",
            Depth::Global => "Global",
        }
    }

    pub fn parse(name: &str) -> Option<Depth> {
        Depth::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Dataverse's `roleprivileges.privilegedepthmask` value (Basic 1, Local 2, Deep 4, Global 8;
    /// 0 for none): how a role's privileges are stored.
    pub fn mask(self) -> u8 {
        match self {
            Depth::None => 0,
            Depth::Basic => 1,
            Depth::Local => 2,
            Depth::Deep => 4,
            Depth::Global => 8,
        }
    }

    /// The inverse of [`Depth::mask`]; a mask with several bits is read as its deepest bit.
    pub fn from_mask(mask: u8) -> Depth {
        match mask {
            m if m & 8 != 0 => Depth::Global,
            m if m & 4 != 0 => Depth::Deep,
            m if m & 2 != 0 => Depth::Local,
            m if m & 1 != 0 => Depth::Basic,
            _ => Depth::None,
        }
    }
}

/// The system tables whose privileges keep Dataverse's historic names (`prvReadUser`, not
/// `prvReadsystemuser`), as listed in the published privilege references.
const SYSTEM_PRIVILEGE_NAMES: &[(&str, &str)] = &[
    (SYSTEM_USER, "User"),
    (TEAM, "Team"),
    (BUSINESS_UNIT, "BusinessUnit"),
    (ROLE, "Role"),
    (ORGANIZATION, "Organization"),
    (crate::metadata::views::SAVED_QUERY, "Query"),
    (crate::metadata::views::USER_QUERY, "UserQuery"),
    (crate::metadata::jobs::ASYNC_OPERATION, "AsyncOperation"),
    (crate::metadata::transcripts::ANNOTATION, "Note"),
];

/// How a table is named inside its privileges' names: the historic name for the system tables
/// above, the table's name otherwise (Dataverse uses the schema name, which for the custom tables
/// smsctx serves is the logical name).
pub fn privilege_table_name(entity: &str) -> &str {
    SYSTEM_PRIVILEGE_NAMES
        .iter()
        .find(|(e, _)| *e == entity)
        .map_or(entity, |(_, name)| *name)
}

/// The impersonation privilege.
pub const ACT_ON_BEHALF_OF_ANOTHER_USER: &str = "prvActOnBehalfOfAnotherUser";

/// A stable Guid for a privilege name (a name-based, SHA-1 Guid under smsctx's own namespace).
pub fn privilege_id(dataverse_name: &str) -> Uuid {
    name_based_id("privilege", dataverse_name)
}

/// A stable name-based Guid: SHA-1 of `kind:name` under a fixed namespace, version 5 layout.
pub(crate) fn name_based_id(kind: &str, name: &str) -> Uuid {
    // The namespace is smsctx's own; it only has to keep these ids apart from other v5 ids.
    const NAMESPACE: Uuid = Uuid::from_u128(0x5d0c_51e6_9a3c_4b0e_8f11_7c7f_2a55_0e01);
    let mut hasher = Sha1::new();
    hasher.update(NAMESPACE.as_bytes());
    hasher.update(kind.as_bytes());
    hasher.update(b":");
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The object type code Dataverse error messages print for a table (see the module doc).
pub fn object_type_code(entity: &str) -> u32 {
    match entity {
        SYSTEM_USER => 8,
        TEAM => 9,
        BUSINESS_UNIT => 10,
        ROLE => 1036,
        crate::metadata::views::SAVED_QUERY => 1039,
        crate::metadata::views::USER_QUERY => 4230,
        crate::metadata::jobs::ASYNC_OPERATION => 4700,
        crate::metadata::transcripts::ANNOTATION => 5,
        _ => {
            // FNV-1a: stable across builds and platforms, unlike std's hasher.
            let hash = entity.bytes().fold(0x811c_9dc5_u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            10_000 + hash % 10_000
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataverse_names_round_trip() {
        for p in Privilege::ALL {
            let name = p.dataverse_name("msdyn_smsengagementctx");
            assert_eq!(
                Privilege::parse_dataverse_name(&name),
                Some((p, "msdyn_smsengagementctx"))
            );
        }
        assert_eq!(
            Privilege::Read.dataverse_name("msdyn_smsengagementctx"),
            "prvReadmsdyn_smsengagementctx"
        );
        assert_eq!(
            Privilege::parse_dataverse_name("prvAppendToTeam"),
            Some((Privilege::AppendTo, "team"))
        );
        assert_eq!(Privilege::Read.dataverse_name("systemuser"), "prvReadUser");
        assert_eq!(
            Privilege::Write.dataverse_name("businessunit"),
            "prvWriteBusinessUnit"
        );
        for entity in ["systemuser", "team", "businessunit", "role"] {
            let name = Privilege::Share.dataverse_name(entity);
            assert_eq!(
                Privilege::parse_dataverse_name(&name),
                Some((Privilege::Share, entity))
            );
        }
        assert_eq!(Privilege::parse_dataverse_name("prvRead"), None);
        assert_eq!(Privilege::parse_dataverse_name("Readteam"), None);
    }

    #[test]
    fn depths_are_ordered() {
        assert!(Depth::None < Depth::Basic);
        assert!(Depth::Basic < Depth::Local);
        assert!(Depth::Local < Depth::Deep);
        assert!(Depth::Deep < Depth::Global);
        for d in Depth::ALL {
            assert_eq!(Depth::from_mask(d.mask()), d);
            assert_eq!(Depth::parse(d.name()), Some(d));
        }
    }

    #[test]
    fn privileges_map_to_their_access_rights() {
        assert_eq!(Privilege::AppendTo.right(), AccessRights::APPEND_TO);
        assert_eq!(Privilege::Create.right(), AccessRights::CREATE);
        assert!(!Privilege::ON_RECORDS.contains(&Privilege::Create));
    }

    #[test]
    fn ids_and_codes_are_stable() {
        let a = privilege_id("prvReadmsdyn_smsengagementctx");
        assert_eq!(a, privilege_id("prvReadmsdyn_smsengagementctx"));
        assert_ne!(a, privilege_id("prvWritemsdyn_smsengagementctx"));
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(object_type_code("systemuser"), 8);
        assert_eq!(object_type_code("team"), 9);
        assert_eq!(object_type_code("businessunit"), 10);
        let code = object_type_code("msdyn_smsengagementctx");
        assert!((10_000..20_000).contains(&code));
        assert_eq!(code, object_type_code("msdyn_smsengagementctx"));
    }
}
