//! Denials, with the message Dataverse answers them with (their codes and statuses, 403 but
//! for the two role faults below, are chosen in `edge/error.rs`).
//!
//! The texts follow what Dataverse returns, as seen in public reports of real errors:
//! - missing privilege, `0x80040220` (PrivilegeDenied): `Principal user (Id=…, type=8,
//!   roleCount=1, privilegeCount=36, accessMode=0), is missing prvReadmsft_dailyoccupancy
//!   privilege (Id=…) on OTC=10058 for entity 'msft_dailyoccupancy'. context.Caller=…`
//!   (microsoft/powerapps-tools issue 438; rappen/FetchXMLBuilder issue 770 has the same text,
//!   newer builds add ` (LocalizedName='…')` after the entity, which smsctx leaves out);
//! - row outside the privilege's depth and not shared, `0x80048306`: `SecLib::AccessCheckEx
//!   failed. Returned hr = -2147187962, ObjectID: …, OwnerId: …, OwnerIdType: 8 and CallingUser:
//!   …. ObjectTypeCode: 1084, objectBusinessUnitId: …, AccessRights: WriteAccess`
//!   (HAS-CRM/IssueTracker issue 34; -2147187962 is 0x80048306 as a signed 32-bit number);
//! - impersonation without `prvActOnBehalfOfAnotherUser`, `0x8004A110`
//!   (CannotActOnBehalfOfAnotherUser): `User does not have the privilege to act on behalf
//!   another user.` (Dataverse's published web service error codes);
//! - a change to the System Administrator role, `0x80041d31` (CannotModifySysAdmin) and
//!   `0x80041d2e` (CannotDeleteSysAdmin), and a role of another business unit,
//!   `0x80041409` (UserInWrongBusiness) / `0x8004140d` (TeamInWrongBusiness), with the texts
//!   of the same published list; these two are faults, not privilege checks: HTTP 400.
//!
//! `OwnerIdType` is the owner's object type code: 8 for a user, 9 for a team.

use std::fmt;

use uuid::Uuid;

use super::privilege::{object_type_code, privilege_id, Privilege};
use super::rights::AccessRights;

/// Why an operation is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The caller holds the privilege at no depth.
    MissingPrivilege {
        user_id: Uuid,
        role_count: usize,
        privilege_count: usize,
        privilege: Privilege,
        entity: String,
    },
    /// The caller holds the privilege, but the row is outside its depth and not shared with it.
    NoAccess {
        object_id: Uuid,
        owner_id: Uuid,
        owner_is_team: bool,
        calling_user: Uuid,
        entity: String,
        owning_business_unit: Uuid,
        rights: AccessRights,
    },
    /// Impersonation by a caller without `prvActOnBehalfOfAnotherUser`.
    CannotActOnBehalfOfAnotherUser { user_id: Uuid },
    /// A write to the System Administrator role of a business unit, or to its privileges:
    /// that role always holds every privilege, whoever asks.
    SystemAdministratorRoleReadOnly { role_id: Uuid, delete: bool },
    /// A role assigned to a user or team of another business unit than the role's.
    RoleOfAnotherBusinessUnit {
        team: bool,
        role_id: Uuid,
        role_business_unit: Uuid,
        principal_id: Uuid,
        principal_business_unit: Uuid,
    },
    /// A schema change (an alternate key's creation or removal) by a caller without the
    /// System Administrator role.
    NotSystemAdministrator {
        user_id: Uuid,
        /// What only an administrator may do (`create or delete alternate keys`).
        change: &'static str,
    },
    /// A read of the audit history (`prvReadAuditSummary`, held with the System Administrator
    /// role) by a caller without it.
    MissingAuditPrivilege { user_id: Uuid },
}

impl Denied {
    /// The error body's `message`.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
impl Denied {
    /// The code the HTTP edge answers with, chosen in [`crate::edge::error::denied_code`]; here
    /// for the tests of the decisions.
    pub fn code(&self) -> &'static str {
        crate::edge::error::denied_code(self)
    }

    /// The HTTP status the edge answers with: every denial is 403 Forbidden.
    pub fn http_status(&self) -> u16 {
        crate::edge::error::ApiError::from(self.clone())
            .status
            .as_u16()
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::MissingPrivilege {
                user_id,
                role_count,
                privilege_count,
                privilege,
                entity,
            } => {
                let name = privilege.dataverse_name(entity);
                write!(
                    f,
                    "Principal user (Id={user_id}, type=8, roleCount={role_count}, \
                     privilegeCount={privilege_count}, accessMode=0), is missing {name} privilege \
                     (Id={}) on OTC={} for entity '{entity}'. context.Caller={user_id}",
                    privilege_id(&name),
                    object_type_code(entity),
                )
            }
            Denied::NoAccess {
                object_id,
                owner_id,
                owner_is_team,
                calling_user,
                entity,
                owning_business_unit,
                rights,
            } => write!(
                f,
                "SecLib::AccessCheckEx failed. Returned hr = -2147187962, ObjectID: {object_id}, \
                 OwnerId: {owner_id}, OwnerIdType: {} and CallingUser: {calling_user}. \
                 ObjectTypeCode: {}, objectBusinessUnitId: {owning_business_unit}, \
                 AccessRights: {rights}",
                if *owner_is_team { 9 } else { 8 },
                object_type_code(entity),
            ),
            Denied::CannotActOnBehalfOfAnotherUser { .. } => {
                f.write_str("User does not have the privilege to act on behalf another user.")
            }
            Denied::SystemAdministratorRoleReadOnly { delete: true, .. } => {
                f.write_str("The System Administrator Role cannot be deleted.")
            }
            Denied::SystemAdministratorRoleReadOnly { delete: false, .. } => {
                f.write_str("The System Administrator Role cannot be modified.")
            }
            Denied::RoleOfAnotherBusinessUnit {
                team,
                role_id,
                role_business_unit,
                principal_id,
                principal_business_unit,
            } => write!(
                f,
                "Cannot associate security role because the security role's Business Unit is \
                 not the same as the {}'s Business Unit. Details: userid={principal_id}, \
                 userBU={principal_business_unit}, roleId={role_id}, roleBU={role_business_unit}",
                if *team { "team" } else { "user" }
            ),
            Denied::NotSystemAdministrator { user_id, change } => write!(
                f,
                "Principal user (Id={user_id}, type=8) is missing the System Administrator role: \
                 only a System Administrator may {change}."
            ),
            Denied::MissingAuditPrivilege { user_id } => write!(
                f,
                "Principal user (Id={user_id}, type=8) is missing prvReadAuditSummary privilege \
                 (Id={}).",
                privilege_id(AUDIT_SUMMARY)
            ),
        }
    }
}

/// The privilege that reads the audit history.
pub const AUDIT_SUMMARY: &str = "prvReadAuditSummary";

impl std::error::Error for Denied {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hr_in_the_access_check_message_is_the_code_as_a_signed_number() {
        assert_eq!(0x80048306_u32 as i32, -2147187962);
    }

    #[test]
    fn all_denials_are_403() {
        let d = Denied::CannotActOnBehalfOfAnotherUser {
            user_id: Uuid::nil(),
        };
        assert_eq!(d.http_status(), 403);
        assert_eq!(d.code(), "0x8004A110");
        assert_eq!(
            d.message(),
            "User does not have the privilege to act on behalf another user."
        );
    }
}
