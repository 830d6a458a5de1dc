//! The messages of the security model itself, on a [`Guard`]: sharing (GrantAccess,
//! ModifyAccess, RevokeAccess), the two read-outs (RetrievePrincipalAccess,
//! RetrieveSharedPrincipalsAndAccess) and the `$ref` associations (roles, team members).
//!
//! Each checks its own privilege through the guard (Share on the record; Write on the user or
//! team whose roles or members change) and then writes the security tables directly, which no
//! one but an administrator may write through the generic messages.

use std::sync::Arc;

use uuid::Uuid;

use super::{facts, Guard, Relationship, UserFacts};
use crate::metadata::system::{BUSINESS_UNIT_ID, SYSTEM_USER, TEAM};
use crate::metadata::Entity;
use crate::security::{
    access_rights, AccessRights, Denied, Membership, Privilege, SecurityContext, Share,
};
use crate::store::{Access, Record, StoreError};

/// Why a security message failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("{entity} With Id = {id} Does Not Exist")]
    NotFound { entity: String, id: Uuid },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a sharing message changes the rights already shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareChange {
    /// GrantAccess: adds rights to those shared.
    Grant,
    /// ModifyAccess: replaces them.
    Modify,
    /// RevokeAccess: removes the share.
    Revoke,
}

/// A user or a team, as a sharing message names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalRef {
    pub id: Uuid,
    pub is_team: bool,
}

impl Guard<'_> {
    fn not_found(entity: &Entity, id: Uuid) -> MessageError {
        MessageError::NotFound {
            entity: entity.logical_name.clone(),
            id,
        }
    }

    /// The stored row of a principal, read as the caller (Read on users and teams).
    async fn principal_row(&self, principal: PrincipalRef) -> Result<Record, MessageError> {
        let table = if principal.is_team { TEAM } else { SYSTEM_USER };
        let entity = Arc::clone(self.directory.table(table)?);
        self.get_for(&entity, principal.id, false, Privilege::Read)
            .await?
            .ok_or_else(|| Self::not_found(&entity, principal.id))
    }

    /// GrantAccess, ModifyAccess and RevokeAccess on one record.
    pub async fn share(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
        principal: PrincipalRef,
        rights: AccessRights,
        change: ShareChange,
    ) -> Result<(), MessageError> {
        let record = self
            .get_for(entity, id, false, Privilege::Share)
            .await?
            .ok_or_else(|| Self::not_found(entity, id))?;
        self.principal_row(principal).await?;
        let current = self
            .directory
            .shares(self.inner, id)
            .await?
            .into_iter()
            .find(|s| s.principal_id == principal.id)
            .map_or(AccessRights::empty(), |s| s.rights);
        let wanted = match change {
            ShareChange::Grant => current | rights,
            ShareChange::Modify => rights,
            ShareChange::Revoke => AccessRights::empty(),
        };
        // Only rights on records can be shared (CreateAccess is not one).
        let wanted = wanted & !AccessRights::CREATE;
        let share = Share {
            principal_id: principal.id,
            is_team: principal.is_team,
            rights: wanted,
        };
        Ok(self
            .directory
            .set_share(self.inner, &record.entity, id, share)
            .await?)
    }

    /// The security context of any user or team, for RetrievePrincipalAccess.
    pub(super) async fn context_of(
        &self,
        principal: PrincipalRef,
    ) -> Result<SecurityContext, MessageError> {
        let row = self.principal_row(principal).await?;
        let unit = row.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default();
        if !principal.is_team {
            let user = UserFacts {
                id: principal.id,
                business_unit_id: unit,
                disabled: false,
            };
            return Ok(self
                .directory
                .principal(self.inner, &user, self.store.is_some())
                .await?
                .context);
        }
        let role_ids: Vec<Uuid> = self.directory.team_roles(self.inner, principal.id).await?;
        let roles = self
            .directory
            .roles(self.inner, &role_ids, self.store.is_some())
            .await?;
        let membership = [Membership {
            team_id: principal.id,
            business_unit_id: unit,
            roles: &roles,
        }];
        Ok(SecurityContext::build(principal.id, unit, &[], &membership))
    }

    /// RetrievePrincipalAccess: what `principal` may do with the record (the caller must be
    /// able to read it).
    pub async fn principal_access(
        &self,
        principal: PrincipalRef,
        entity: &Arc<Entity>,
        id: Uuid,
    ) -> Result<AccessRights, MessageError> {
        let record = self
            .get_for(entity, id, false, Privilege::Read)
            .await?
            .ok_or_else(|| Self::not_found(entity, id))?;
        let context = self.context_of(principal).await?;
        let shares = self.directory.shares(self.inner, id).await?;
        Ok(access_rights(
            &context,
            &self.principal.tree,
            &entity.logical_name,
            &facts(&record),
            &shares,
        ))
    }

    /// RetrieveSharedPrincipalsAndAccess: the shares of a record the caller can read.
    pub async fn shared_principals(
        &self,
        entity: &Arc<Entity>,
        id: Uuid,
    ) -> Result<Vec<Share>, MessageError> {
        self.get_for(entity, id, false, Privilege::Read)
            .await?
            .ok_or_else(|| Self::not_found(entity, id))?;
        let mut shares = self.directory.shares(self.inner, id).await?;
        shares.retain(|s| !s.rights.is_empty());
        Ok(shares)
    }

    /// `$ref` POST (`add`) or DELETE on a relationship, from the record `left_entity(left)`.
    pub async fn associate(
        &self,
        relationship: Relationship,
        from: &Arc<Entity>,
        from_id: Uuid,
        to: &Arc<Entity>,
        to_id: Uuid,
        add: bool,
    ) -> Result<(), MessageError> {
        let (_, (left_table, _), _) = relationship.tables();
        let (left, right, left_entity, right_entity) = if from.logical_name == left_table {
            (from_id, to_id, from, to)
        } else {
            (to_id, from_id, to, from)
        };
        // The principal whose roles or members change is written; the other side is read.
        let (written, written_id, read, read_id) = match relationship {
            Relationship::TeamMembership => (right_entity, right, left_entity, left),
            _ => (left_entity, left, right_entity, right),
        };
        let principal = self
            .get_for(written, written_id, false, Privilege::Write)
            .await?
            .ok_or_else(|| Self::not_found(written, written_id))?;
        let role = self
            .get_for(read, read_id, false, Privilege::Read)
            .await?
            .ok_or_else(|| Self::not_found(read, read_id))?;
        let assigns_role = matches!(
            relationship,
            Relationship::UserRoles | Relationship::TeamRoles
        );
        if add && assigns_role {
            same_business_unit(&role, &principal, relationship == Relationship::TeamRoles)?;
        }
        if add {
            self.directory
                .associate(self.inner, relationship, left, right)
                .await?;
        } else {
            self.directory
                .disassociate(self.inner, relationship, left, right)
                .await?;
        }
        Ok(())
    }
}

/// A role is assigned only to users and teams of its own business unit.
fn same_business_unit(role: &Record, principal: &Record, team: bool) -> Result<(), MessageError> {
    let unit = |r: &Record| r.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default();
    let (role_business_unit, principal_business_unit) = (unit(role), unit(principal));
    if role_business_unit == principal_business_unit {
        return Ok(());
    }
    Err(MessageError::Store(StoreError::Denied(Box::new(
        Denied::RoleOfAnotherBusinessUnit {
            team,
            role_id: role.id().unwrap_or_default(),
            role_business_unit,
            principal_id: principal.id().unwrap_or_default(),
            principal_business_unit,
        },
    ))))
}
