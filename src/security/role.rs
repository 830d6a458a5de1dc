//! Security roles, and the built-in ones as data.
//!
//! A [`Role`] is a named set of table privileges, each at a depth, plus the miscellaneous
//! impersonation privilege. Roles belong to a business unit (Dataverse keeps a copy of every role
//! in every unit); [`builtin_roles`] builds the four built-in roles for one unit. Apart from
//! System Administrator they are ordinary data that an administrator may change.
//!
//! What the built-in roles grant besides the SMS engagement context privileges the issue names,
//! and why:
//!
//! | role | table | privileges |
//! |---|---|---|
//! | System Administrator | every table in [`SECURED_TABLES`] | all eight at Global, plus `prvActOnBehalfOfAnotherUser` |
//! | Basic User | `systemuser`, `team`, `businessunit`, `organization` | Read at Global |
//! | Omnichannel agent | `systemuser`, `team`, `businessunit`, `organization` | Read at Global |
//! | Omnichannel agent | `msdyn_ocliveworkitem` | Read and AppendTo at Local |
//! | Omnichannel supervisor | `systemuser`, `team`, `businessunit`, `organization` | Read at Global |
//! | Omnichannel supervisor | `msdyn_ocliveworkitem` | Read at Local |
//! | every role but System Administrator | `savedquery` (system views) | Read at Global |
//! | every role but System Administrator | `userquery` (personal views) | all eight at Basic |
//! | every role but System Administrator | `asyncoperation` (system jobs) | Read at Basic |
//! | every role but System Administrator | `msdyn_transcript`, `annotation` | Read at Global (rows: those of readable conversations) |
//!
//! Read at Global on users, teams and business units is what Dataverse's own roles give (the
//! published privilege tables of Dynamics CRM list prvReadUser, prvReadTeam and
//! prvReadBusinessUnit at Organization depth for every non-administrator role), so the owner,
//! `createdby` and business unit lookups of a readable context always resolve; the same holds
//! for prvReadOrganization, so every user may read the one `organizations` row. The conversation
//! table (`msdyn_ocliveworkitem`) is an Omnichannel table: Basic User has nothing on it (so a
//! Basic User who sets `msdyn_liveworkitemid` is refused for want of
//! `prvAppendTomsdyn_ocliveworkitem`, as in Dataverse), an agent may read and link to the
//! conversations of its business unit, and a supervisor (who has no Append on contexts, so cannot
//! link anyway) may read them.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::privilege::{name_based_id, Depth, Privilege};
use crate::metadata::system::{
    BUSINESS_UNIT, ORGANIZATION, PRINCIPAL_OBJECT_ACCESS, ROLE_PRIVILEGES, SYSTEM_USER,
    SYSTEM_USER_ROLES, TEAM, TEAM_MEMBERSHIP, TEAM_ROLES,
};
use crate::metadata::views::{SAVED_QUERY, USER_QUERY};

/// The SMS engagement context table.
pub const SMS_ENGAGEMENT_CTX: &str = crate::metadata::sms::CONTEXT;
/// The conversation table the context's `msdyn_liveworkitemid` points at.
pub const LIVE_WORK_ITEM: &str = crate::metadata::sms::CONVERSATION;
/// The security role table.
pub const ROLE: &str = crate::metadata::system::ROLE;

/// Every table the security model governs: the built-in System Administrator role has every
/// privilege on each. A table added to smsctx must be added here.
/// The security model's own tables (role privileges, assignments, memberships, shares) are
/// among them: only System Administrator reads them directly; everyone else changes them
/// through the `$ref` associations and the sharing messages.
pub const SECURED_TABLES: &[&str] = &[
    BUSINESS_UNIT,
    SYSTEM_USER,
    TEAM,
    ROLE,
    LIVE_WORK_ITEM,
    SMS_ENGAGEMENT_CTX,
    ROLE_PRIVILEGES,
    SYSTEM_USER_ROLES,
    TEAM_ROLES,
    TEAM_MEMBERSHIP,
    PRINCIPAL_OBJECT_ACCESS,
    crate::metadata::sms::CHANNEL,
    SAVED_QUERY,
    USER_QUERY,
    ORGANIZATION,
    crate::metadata::jobs::ASYNC_OPERATION,
    crate::metadata::transcripts::TRANSCRIPT,
    crate::metadata::transcripts::ANNOTATION,
];

pub const SYSTEM_ADMINISTRATOR: &str = "System Administrator";
pub const BASIC_USER: &str = "Basic User";
pub const OMNICHANNEL_AGENT: &str = "Omnichannel agent";
pub const OMNICHANNEL_SUPERVISOR: &str = "Omnichannel supervisor";

/// The names of the built-in roles, in the order [`builtin_roles`] returns them.
pub const BUILTIN_ROLE_NAMES: [&str; 4] = [
    SYSTEM_ADMINISTRATOR,
    BASIC_USER,
    OMNICHANNEL_AGENT,
    OMNICHANNEL_SUPERVISOR,
];

/// Table privileges by table logical name, each at a depth.
pub type TablePrivileges = BTreeMap<String, BTreeMap<Privilege, Depth>>;

/// A security role of one business unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: Uuid,
    pub name: String,
    pub business_unit: Uuid,
    /// Per table logical name, the depth of each privilege the role grants; a privilege absent
    /// or at [`Depth::None`] is not granted.
    pub privileges: TablePrivileges,
    /// `prvActOnBehalfOfAnotherUser`.
    pub act_on_behalf_of_another_user: bool,
}

impl Role {
    /// An empty role.
    pub fn new(id: Uuid, name: impl Into<String>, business_unit: Uuid) -> Role {
        Role {
            id,
            name: name.into(),
            business_unit,
            privileges: BTreeMap::new(),
            act_on_behalf_of_another_user: false,
        }
    }

    /// Grants a privilege at a depth (replacing the depth it had); `Depth::None` revokes it.
    pub fn set(&mut self, entity: &str, privilege: Privilege, depth: Depth) -> &mut Role {
        let table = self.privileges.entry(entity.to_string()).or_default();
        if depth == Depth::None {
            table.remove(&privilege);
            if table.is_empty() {
                self.privileges.remove(entity);
            }
        } else {
            table.insert(privilege, depth);
        }
        self
    }

    /// Grants several privileges at one depth.
    pub fn grant(&mut self, entity: &str, privileges: &[Privilege], depth: Depth) -> &mut Role {
        for p in privileges {
            self.set(entity, *p, depth);
        }
        self
    }

    /// The depth at which the role grants a privilege.
    pub fn depth(&self, entity: &str, privilege: Privilege) -> Depth {
        self.privileges
            .get(entity)
            .and_then(|t| t.get(&privilege))
            .copied()
            .unwrap_or(Depth::None)
    }

    /// Whether this is the built-in System Administrator role (which cannot be changed).
    pub fn is_system_administrator(&self) -> bool {
        self.name == SYSTEM_ADMINISTRATOR
    }
}

/// The stable id of a built-in role in a business unit, so seeding twice finds the same rows.
pub fn builtin_role_id(name: &str, business_unit: Uuid) -> Uuid {
    name_based_id(ROLE, &format!("{name}@{business_unit}"))
}

/// Whether `id` is the System Administrator role of `business_unit` (read-only: it always
/// holds every privilege).
pub fn is_system_administrator_role(id: Uuid, business_unit: Uuid) -> bool {
    id == builtin_role_id(SYSTEM_ADMINISTRATOR, business_unit)
}

/// Whether `id` is the id one of the built-in roles of `business_unit` has (or will have once
/// seeded): a client may not create a role under such an id.
pub fn is_builtin_role_id(id: Uuid, business_unit: Uuid) -> bool {
    BUILTIN_ROLE_NAMES
        .iter()
        .any(|name| id == builtin_role_id(name, business_unit))
}

/// One built-in role, by its exact name, for a business unit.
pub fn builtin_role(name: &str, business_unit: Uuid) -> Option<Role> {
    use Privilege::*;
    let mut role = Role::new(builtin_role_id(name, business_unit), name, business_unit);
    // Every role also reads the system views and keeps its own personal views, as in
    // Dataverse's roles (prvReadQuery at Organization, the userquery privileges at User depth).
    let lookups_resolve = |role: &mut Role| {
        for table in [SYSTEM_USER, TEAM, BUSINESS_UNIT, ORGANIZATION, SAVED_QUERY] {
            role.set(table, Read, Depth::Global);
        }
        role.grant(USER_QUERY, &Privilege::ALL, Depth::Basic);
        // Every user follows the system jobs they started (prvReadAsyncOperation); only the
        // server writes them.
        role.set(crate::metadata::jobs::ASYNC_OPERATION, Read, Depth::Basic);
        // Transcripts and their notes have no row scope of their own: a row is readable when
        // its conversation is (`metadata::transcripts::PARENTED`), so Read at Global here
        // shows exactly the transcripts of the conversations the role reads.
        for table in [
            crate::metadata::transcripts::TRANSCRIPT,
            crate::metadata::transcripts::ANNOTATION,
        ] {
            role.set(table, Read, Depth::Global);
        }
    };
    match name {
        SYSTEM_ADMINISTRATOR => {
            for table in SECURED_TABLES {
                role.grant(table, &Privilege::ALL, Depth::Global);
            }
            role.act_on_behalf_of_another_user = true;
        }
        BASIC_USER => {
            role.grant(SMS_ENGAGEMENT_CTX, &Privilege::ALL, Depth::Basic);
            lookups_resolve(&mut role);
        }
        OMNICHANNEL_AGENT => {
            role.grant(
                SMS_ENGAGEMENT_CTX,
                &[Create, Read, Write, Append, AppendTo],
                Depth::Basic,
            );
            role.grant(LIVE_WORK_ITEM, &[Read, AppendTo], Depth::Local);
            lookups_resolve(&mut role);
        }
        OMNICHANNEL_SUPERVISOR => {
            role.grant(SMS_ENGAGEMENT_CTX, &[Read, Write], Depth::Local);
            role.grant(SMS_ENGAGEMENT_CTX, &[Assign, Share], Depth::Deep);
            role.set(LIVE_WORK_ITEM, Read, Depth::Local);
            lookups_resolve(&mut role);
        }
        _ => return None,
    }
    Some(role)
}

/// The four built-in roles for a business unit.
pub fn builtin_roles(business_unit: Uuid) -> Vec<Role> {
    BUILTIN_ROLE_NAMES
        .iter()
        .filter_map(|name| builtin_role(name, business_unit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bu() -> Uuid {
        Uuid::from_u128(1)
    }

    #[test]
    fn the_four_builtin_roles_exist_by_their_exact_names() {
        let names: Vec<String> = builtin_roles(bu()).into_iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "System Administrator",
                "Basic User",
                "Omnichannel agent",
                "Omnichannel supervisor"
            ]
        );
        assert!(builtin_role("System administrator", bu()).is_none());
    }

    #[test]
    fn system_administrator_has_everything_on_every_table_of_the_catalog() {
        let admin = builtin_role(SYSTEM_ADMINISTRATOR, bu()).unwrap();
        assert!(admin.act_on_behalf_of_another_user);
        let catalog = crate::metadata::Catalog::builtin().unwrap();
        // The audit table's only privilege is prvReadAuditSummary (`SecurityContext::depth`).
        for entity in catalog
            .entities()
            .iter()
            .filter(|e| e.logical_name != crate::metadata::system::AUDIT)
        {
            for p in Privilege::ALL {
                assert_eq!(
                    admin.depth(&entity.logical_name, p),
                    Depth::Global,
                    "{} on {}",
                    p.name(),
                    entity.logical_name
                );
            }
        }
    }

    #[test]
    fn basic_user_has_every_context_privilege_at_basic() {
        let role = builtin_role(BASIC_USER, bu()).unwrap();
        for p in Privilege::ALL {
            assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, p), Depth::Basic);
        }
        assert!(!role.act_on_behalf_of_another_user);
        assert_eq!(role.depth(SYSTEM_USER, Privilege::Read), Depth::Global);
        assert_eq!(role.depth(LIVE_WORK_ITEM, Privilege::AppendTo), Depth::None);
    }

    #[test]
    fn omnichannel_agent_lacks_delete_assign_and_share() {
        let role = builtin_role(OMNICHANNEL_AGENT, bu()).unwrap();
        use Privilege::*;
        for p in [Create, Read, Write, Append, AppendTo] {
            assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, p), Depth::Basic);
        }
        for p in [Delete, Assign, Share] {
            assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, p), Depth::None);
        }
        assert_eq!(role.depth(LIVE_WORK_ITEM, AppendTo), Depth::Local);
    }

    #[test]
    fn omnichannel_supervisor_reads_and_writes_locally_assigns_and_shares_deep() {
        let role = builtin_role(OMNICHANNEL_SUPERVISOR, bu()).unwrap();
        use Privilege::*;
        assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, Read), Depth::Local);
        assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, Write), Depth::Local);
        assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, Assign), Depth::Deep);
        assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, Share), Depth::Deep);
        for p in [Create, Delete, Append, AppendTo] {
            assert_eq!(role.depth(SMS_ENGAGEMENT_CTX, p), Depth::None);
        }
    }

    #[test]
    fn builtin_role_ids_are_stable_per_business_unit() {
        let a = builtin_role(BASIC_USER, bu()).unwrap();
        let b = builtin_role(BASIC_USER, bu()).unwrap();
        let c = builtin_role(BASIC_USER, Uuid::from_u128(2)).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn setting_none_revokes() {
        let mut role = Role::new(Uuid::from_u128(9), "r", bu());
        role.set(SMS_ENGAGEMENT_CTX, Privilege::Read, Depth::Local);
        role.set(SMS_ENGAGEMENT_CTX, Privilege::Read, Depth::None);
        assert!(role.privileges.is_empty());
    }
}
