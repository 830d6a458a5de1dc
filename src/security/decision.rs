//! The access decision: what a [`SecurityContext`] may do with one record, and which rows it may
//! read.
//!
//! Dataverse decides in two steps ("How access to a record is determined", Power Platform admin
//! docs): the *privilege check* (does any role give the privilege at all? if not:
//! `0x80040220`), then the *access check* on the record: the privilege's depth reaches it, or it
//! is shared with the user or one of the user's teams with that right (if not: `0x80048306`).
//! Sharing never gives more than the roles allow on the table: "if a user does not have Read
//! privileges on accounts and you share an account with that user, the user will be unable to see
//! that account" (Power Apps developer docs, "Sharing and assigning"). So a shared right counts
//! only where the privilege is held at some depth.
//!
//! Operation by operation (the HTTP layer calls these; none of them does I/O):
//! - Retrieve, Update (and SetState), Delete, Share and its siblings: [`check`] with Read, Write,
//!   Delete or Share on the stored record.
//! - Create: [`check_create`] against the record as it will be, with its intended owner: the
//!   Create depth must reach that owner (Basic: the caller or one of its teams; Local: an owner
//!   whose business unit is the caller's; Deep: below it; Global: anyone). Giving the new record
//!   another owner than the caller (`ownerid@odata.bind`) also needs the Assign privilege, as the
//!   record is the caller's until it is assigned.
//! - Assign (`ownerid@odata.bind` on Update): [`check_assign`], Assign on the stored record. The
//!   other columns of the same PATCH need Write as usual.
//! - Setting a lookup: [`check_append`], Append on the record being written and AppendTo on the
//!   record the lookup points at.
//! - RetrieveMultiple and everything that reads rows in bulk: [`read_scope`], a description of
//!   the readable rows that the store adds to its WHERE clause. Dataverse refuses a query on a
//!   table the caller has no Read privilege on with `0x80040220` (the public reports above come
//!   from queries), so callers run [`check_privilege`] first; [`RowScope::Nothing`] is the
//!   safe answer if they do not.
//! - RetrievePrincipalAccess: [`access_rights`].
//!
//! For business-owned tables (`systemuser`, `team`, `businessunit`) a record has no owner; callers
//! pass the record's own id as `owner_id` (so Basic reaches a user's own systemuser row and the
//! user's teams) and the unit it belongs to as `owning_business_unit`.

use uuid::Uuid;

use super::denied::Denied;
use super::principal::{BusinessUnitTree, Grant, SecurityContext};
use super::privilege::{Depth, Privilege};
use super::rights::AccessRights;

/// What a decision needs to know about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFacts {
    /// The record's primary id (printed in denials).
    pub id: Uuid,
    /// `ownerid`: a systemuser or a team.
    pub owner_id: Uuid,
    pub owner_is_team: bool,
    /// `owningbusinessunit`: the owner's business unit.
    pub owning_business_unit: Uuid,
}

/// A record shared with a principal (a row of Dataverse's PrincipalObjectAccess).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub principal_id: Uuid,
    pub is_team: bool,
    pub rights: AccessRights,
}

/// Whether one grant reaches a record.
fn grant_reaches(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    grant: Grant,
    record: &RecordFacts,
) -> bool {
    let owned = if record.owner_is_team {
        ctx.team_ids.binary_search(&record.owner_id).is_ok()
    } else {
        record.owner_id == ctx.user_id
    };
    match grant.depth {
        Depth::None => false,
        Depth::Basic => owned,
        Depth::Local => owned || record.owning_business_unit == grant.business_unit,
        Depth::Deep => {
            owned || tree.is_same_or_child(grant.business_unit, record.owning_business_unit)
        }
        Depth::Global => true,
    }
}

/// Whether the caller's roles give a privilege on a record (sharing aside).
fn role_reaches(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    privilege: Privilege,
    record: &RecordFacts,
) -> bool {
    ctx.privileges
        .grants(entity, privilege)
        .iter()
        .any(|g| grant_reaches(ctx, tree, *g, record))
}

/// The rights shared with the user directly or with any of the user's teams, unmasked.
pub fn shared_rights(ctx: &SecurityContext, shares: &[Share]) -> AccessRights {
    shares
        .iter()
        .filter(|s| {
            if s.is_team {
                ctx.team_ids.binary_search(&s.principal_id).is_ok()
            } else {
                s.principal_id == ctx.user_id
            }
        })
        .fold(AccessRights::empty(), |acc, s| acc | s.rights)
}

/// Everything the caller may do with a record: the rights its roles' depths reach, plus the
/// rights shared with it or its teams for which it holds the privilege at some depth. This is
/// RetrievePrincipalAccess's answer; it never contains `CreateAccess`.
pub fn access_rights(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    record: &RecordFacts,
    shares: &[Share],
) -> AccessRights {
    let shared = shared_rights(ctx, shares);
    Privilege::ON_RECORDS
        .into_iter()
        .filter(|p| {
            let held = ctx.depth(entity, *p) > Depth::None;
            held && (shared.contains(p.right()) || role_reaches(ctx, tree, entity, *p, record))
        })
        .fold(AccessRights::empty(), |acc, p| acc | p.right())
}

/// The privilege check alone: does the caller hold the privilege at any depth?
pub fn check_privilege(
    ctx: &SecurityContext,
    entity: &str,
    privilege: Privilege,
) -> Result<(), Denied> {
    if ctx.depth(entity, privilege) > Depth::None {
        return Ok(());
    }
    if entity == crate::metadata::system::AUDIT && privilege == Privilege::Read {
        return Err(Denied::MissingAuditPrivilege {
            user_id: ctx.user_id,
        });
    }
    Err(Denied::MissingPrivilege {
        user_id: ctx.user_id,
        role_count: ctx.role_count,
        privilege_count: ctx.privilege_count(),
        privilege,
        entity: entity.to_string(),
    })
}

/// The privilege check, then the access check on one record. For [`Privilege::Create`] the
/// record is the one about to be created and shares do not apply.
pub fn check(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    privilege: Privilege,
    record: &RecordFacts,
    shares: &[Share],
) -> Result<(), Denied> {
    check_privilege(ctx, entity, privilege)?;
    if role_reaches(ctx, tree, entity, privilege, record) {
        return Ok(());
    }
    if privilege != Privilege::Create && shared_rights(ctx, shares).contains(privilege.right()) {
        return Ok(());
    }
    Err(Denied::NoAccess {
        object_id: record.id,
        owner_id: record.owner_id,
        owner_is_team: record.owner_is_team,
        calling_user: ctx.user_id,
        entity: entity.to_string(),
        owning_business_unit: record.owning_business_unit,
        rights: privilege.right(),
    })
}

/// Create, checked against the record as it will be stored (its intended owner and that owner's
/// business unit). An owner other than the caller also needs the Assign privilege.
pub fn check_create(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    record: &RecordFacts,
) -> Result<(), Denied> {
    check(ctx, tree, entity, Privilege::Create, record, &[])?;
    let owned_by_caller = !record.owner_is_team && record.owner_id == ctx.user_id;
    if !owned_by_caller {
        check_privilege(ctx, entity, Privilege::Assign)?;
    }
    Ok(())
}

/// Assign: the Assign right on the stored record.
pub fn check_assign(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    record: &RecordFacts,
    shares: &[Share],
) -> Result<(), Denied> {
    check(ctx, tree, entity, Privilege::Assign, record, shares)
}

/// The record a lookup points at, for [`check_append`].
#[derive(Debug, Clone, Copy)]
pub struct AppendTarget<'a> {
    pub entity: &'a str,
    pub record: &'a RecordFacts,
    pub shares: &'a [Share],
}

/// Setting a lookup on `record` (of `entity`) to `target`: Append on the record, then AppendTo
/// on the target.
pub fn check_append(
    ctx: &SecurityContext,
    tree: &BusinessUnitTree,
    entity: &str,
    record: &RecordFacts,
    shares: &[Share],
    target: AppendTarget<'_>,
) -> Result<(), Denied> {
    check(ctx, tree, entity, Privilege::Append, record, shares)?;
    check(
        ctx,
        tree,
        target.entity,
        Privilege::AppendTo,
        target.record,
        target.shares,
    )
}

/// Which rows of a table a caller may read, free of SQL, for the store to add to its WHERE clause
/// as `ownerid IN (owner_in) OR owningbusinessunit IN (business_units_in) OR <primary id> IN
/// (SELECT object id FROM shares WHERE principal IN (shared_with) AND rights include
/// ReadAccess)`, leaving out the disjuncts whose list is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowScope {
    /// Every row (Global Read).
    All,
    Predicate {
        /// Rows owned by these principals (the user and its teams).
        owner_in: Vec<Uuid>,
        /// Rows whose owning business unit is one of these.
        business_units_in: Vec<Uuid>,
        /// Rows shared with ReadAccess with one of these principals (the user and its teams).
        shared_with: Vec<Uuid>,
    },
    /// No row (no Read privilege at all).
    Nothing,
}

impl RowScope {
    /// The predicate evaluated on one record in memory: what the store's SQL must agree with.
    pub fn admits(&self, record: &RecordFacts, shares: &[Share]) -> bool {
        match self {
            RowScope::All => true,
            RowScope::Nothing => false,
            RowScope::Predicate {
                owner_in,
                business_units_in,
                shared_with,
            } => {
                owner_in.contains(&record.owner_id)
                    || business_units_in.contains(&record.owning_business_unit)
                    || shares.iter().any(|s| {
                        s.rights.contains(AccessRights::READ)
                            && shared_with.contains(&s.principal_id)
                    })
            }
        }
    }
}

/// The rows of `entity` the caller may read (see [`RowScope`]).
pub fn read_scope(ctx: &SecurityContext, tree: &BusinessUnitTree, entity: &str) -> RowScope {
    // The audit table has no grants: prvReadAuditSummary reads all of it.
    if entity == crate::metadata::system::AUDIT {
        return match ctx.depth(entity, Privilege::Read) {
            Depth::None => RowScope::Nothing,
            _ => RowScope::All,
        };
    }
    let grants = ctx.privileges.grants(entity, Privilege::Read);
    if grants.is_empty() {
        return RowScope::Nothing;
    }
    if grants.iter().any(|g| g.depth == Depth::Global) {
        return RowScope::All;
    }
    let mut business_units_in = Vec::new();
    for grant in grants {
        match grant.depth {
            Depth::Local => business_units_in.push(grant.business_unit),
            Depth::Deep => business_units_in.extend(tree.subtree(grant.business_unit)),
            Depth::None | Depth::Basic | Depth::Global => {}
        }
    }
    business_units_in.sort();
    business_units_in.dedup();
    let mut principals = ctx.principals();
    principals.sort();
    principals.dedup();
    RowScope::Predicate {
        owner_in: principals.clone(),
        business_units_in,
        shared_with: principals,
    }
}

/// The context a request runs in when `real` impersonates `target` (`CallerObjectId` or
/// `MSCRMCallerID`). `real` needs `prvActOnBehalfOfAnotherUser`.
///
/// Dataverse: "the actual set of privileges that is used to modify data is the intersection of
/// the privileges that the Delegate role user possesses with that of the user who is being
/// impersonated" ("Impersonate another user using the Web API"). smsctx models the intersection
/// depth by depth: the result is the target (its identity, business unit, teams, shares and the
/// business units its grants are measured from), with every privilege capped at the depth the
/// real caller holds it at, and dropped where the real caller lacks it. The real caller's depth is
/// compared as a level, not as the set of rows it reaches from the real caller's own business
/// unit. The impersonation privilege itself is kept only if both hold it.
pub fn impersonate(
    real: &SecurityContext,
    target: SecurityContext,
) -> Result<SecurityContext, Denied> {
    if !real.can_act_on_behalf {
        return Err(Denied::CannotActOnBehalfOfAnotherUser {
            user_id: real.user_id,
        });
    }
    let mut effective = target;
    effective.cap_privileges_by(real);
    effective.on_behalf_of = Some(real.user_id);
    Ok(effective)
}

#[cfg(test)]
mod tests;
