//! The facts about a caller that an access decision needs: who it is, its business unit, its
//! teams, and the privileges its roles give it, gathered into a [`SecurityContext`]; and the
//! business unit hierarchy, as a [`BusinessUnitTree`].
//!
//! **Where a depth is measured from.** A privilege held through a role assigned to the user is
//! measured from the user's business unit. A privilege held through a role of an owner team the
//! user belongs to is measured from the team's business unit: Local on a team role reaches the
//! rows of the team's unit, which is how Dataverse lets users work with records of another
//! business unit (a team of that unit with a role). So a context keeps, per table privilege, one
//! [`Grant`] per business unit it is anchored at, at the deepest depth any role gives there; the
//! effective depth of a privilege ([`SecurityContext::depth`]) is the deepest of its grants.
//!
//! **Basic through a team role.** Dataverse roles have a "member's privilege inheritance"
//! setting: *Team privileges only* (a Basic team privilege reaches only the team's records) or
//! *Direct User (Basic) access level and Team privileges* (the default for new roles, which also
//! gives the member the privilege over the member's own records). smsctx models the default: Basic
//! reaches the rows owned by the user or by any of the user's teams, wherever the privilege came
//! from.
//!
//! **Modernized business units** (a role assigned to a user from another business unit) are not
//! modelled: a user's own roles are measured from the user's business unit.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::privilege::{Depth, Privilege};
use super::role::Role;

/// The business unit hierarchy: each unit's parent (the root has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusinessUnitTree {
    parents: HashMap<Uuid, Option<Uuid>>,
}

impl BusinessUnitTree {
    pub fn new() -> BusinessUnitTree {
        BusinessUnitTree::default()
    }

    /// A tree from `(unit, parent)` links.
    pub fn from_links(links: impl IntoIterator<Item = (Uuid, Option<Uuid>)>) -> BusinessUnitTree {
        BusinessUnitTree {
            parents: links.into_iter().collect(),
        }
    }

    /// Adds a unit, or moves it under another parent.
    pub fn insert(&mut self, unit: Uuid, parent: Option<Uuid>) {
        self.parents.insert(unit, parent);
    }

    pub fn contains(&self, unit: Uuid) -> bool {
        self.parents.contains_key(&unit)
    }

    pub fn parent(&self, unit: Uuid) -> Option<Uuid> {
        self.parents.get(&unit).copied().flatten()
    }

    pub fn len(&self) -> usize {
        self.parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// Whether `unit` is `ancestor` or lies anywhere below it. A unit the tree does not know has
    /// no ancestors; a cycle in the links (which the store must never produce) ends the walk.
    pub fn is_same_or_child(&self, ancestor: Uuid, unit: Uuid) -> bool {
        let mut current = Some(unit);
        for _ in 0..=self.parents.len() {
            match current {
                Some(u) if u == ancestor => return true,
                Some(u) => current = self.parent(u),
                None => return false,
            }
        }
        false
    }

    /// `root` and every unit below it, `root` first, then in breadth-first order (siblings
    /// sorted by id, so the order is stable).
    pub fn subtree(&self, root: Uuid) -> Vec<Uuid> {
        let mut children: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (unit, parent) in &self.parents {
            if let Some(parent) = parent {
                children.entry(*parent).or_default().push(*unit);
            }
        }
        for list in children.values_mut() {
            list.sort();
        }
        let mut seen = HashSet::from([root]);
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            if let Some(list) = children.get(&out[i]) {
                for child in list {
                    if seen.insert(*child) {
                        out.push(*child);
                    }
                }
            }
            i += 1;
        }
        out
    }
}

/// A privilege held at a depth, measured from a business unit (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub depth: Depth,
    pub business_unit: Uuid,
}

/// The table privileges a principal holds: per table, per privilege, its grants (at most one per
/// business unit, never at [`Depth::None`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectivePrivileges {
    tables: BTreeMap<String, BTreeMap<Privilege, Vec<Grant>>>,
}

impl EffectivePrivileges {
    pub fn new() -> EffectivePrivileges {
        EffectivePrivileges::default()
    }

    /// Adds a grant, keeping the deeper one where the same business unit already has one.
    pub fn add(&mut self, entity: &str, privilege: Privilege, grant: Grant) {
        if grant.depth == Depth::None {
            return;
        }
        let grants = self
            .tables
            .entry(entity.to_string())
            .or_default()
            .entry(privilege)
            .or_default();
        match grants
            .iter_mut()
            .find(|g| g.business_unit == grant.business_unit)
        {
            Some(existing) => existing.depth = existing.depth.max(grant.depth),
            None => {
                grants.push(grant);
                grants.sort();
            }
        }
    }

    /// Adds every privilege of a role, measured from `business_unit`.
    pub fn add_role(&mut self, role: &Role, business_unit: Uuid) {
        for (entity, privileges) in &role.privileges {
            for (privilege, depth) in privileges {
                let grant = Grant {
                    depth: *depth,
                    business_unit,
                };
                self.add(entity, *privilege, grant);
            }
        }
    }

    /// The grants of one privilege (empty if it is not held).
    pub fn grants(&self, entity: &str, privilege: Privilege) -> &[Grant] {
        self.tables
            .get(entity)
            .and_then(|t| t.get(&privilege))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The deepest depth a privilege is held at.
    pub fn depth(&self, entity: &str, privilege: Privilege) -> Depth {
        self.grants(entity, privilege)
            .iter()
            .map(|g| g.depth)
            .max()
            .unwrap_or(Depth::None)
    }

    /// How many distinct table privileges are held (Dataverse's `privilegeCount` counts each
    /// privilege once, whatever its depth).
    pub fn count(&self) -> usize {
        self.tables.values().map(BTreeMap::len).sum()
    }

    /// Every held privilege with its grants.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Privilege, &[Grant])> {
        self.tables.iter().flat_map(|(entity, privileges)| {
            privileges
                .iter()
                .map(move |(p, grants)| (entity.as_str(), *p, grants.as_slice()))
        })
    }

    /// Keeps only what `keep` returns for each grant (its new depth; `None` drops it).
    fn retain_map(&mut self, mut keep: impl FnMut(&str, Privilege, Grant) -> Depth) {
        for (entity, privileges) in self.tables.iter_mut() {
            for (privilege, grants) in privileges.iter_mut() {
                for grant in grants.iter_mut() {
                    grant.depth = keep(entity, *privilege, *grant);
                }
                grants.retain(|g| g.depth != Depth::None);
            }
            privileges.retain(|_, grants| !grants.is_empty());
        }
        self.tables.retain(|_, privileges| !privileges.is_empty());
    }
}

/// An owner team the user belongs to, with the roles assigned to the team.
#[derive(Debug, Clone, Copy)]
pub struct Membership<'r> {
    pub team_id: Uuid,
    pub business_unit_id: Uuid,
    pub roles: &'r [Role],
}

/// Everything an access decision needs to know about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityContext {
    pub user_id: Uuid,
    pub business_unit_id: Uuid,
    /// The teams the user is a member of (their records are the user's at Basic depth, and what
    /// is shared with them is shared with the user).
    pub team_ids: Vec<Uuid>,
    pub privileges: EffectivePrivileges,
    /// `prvActOnBehalfOfAnotherUser`, through any role.
    pub can_act_on_behalf: bool,
    /// How many distinct roles the user holds, directly or through teams (Dataverse's
    /// `roleCount`).
    pub role_count: usize,
    /// Whether the user holds the System Administrator role, directly or through a team: what
    /// schema changes (alternate keys) require.
    pub is_system_administrator: bool,
    /// The real caller, when this context is an impersonated user's (see
    /// [`super::impersonate`]).
    pub on_behalf_of: Option<Uuid>,
}

impl SecurityContext {
    /// A context from the user's own roles and its team memberships.
    pub fn build(
        user_id: Uuid,
        business_unit_id: Uuid,
        roles: &[Role],
        teams: &[Membership<'_>],
    ) -> SecurityContext {
        let mut privileges = EffectivePrivileges::new();
        let mut role_ids = HashSet::new();
        let mut can_act_on_behalf = false;
        let is_system_administrator = roles
            .iter()
            .chain(teams.iter().flat_map(|t| t.roles.iter()))
            .any(Role::is_system_administrator);
        for role in roles {
            privileges.add_role(role, business_unit_id);
            role_ids.insert(role.id);
            can_act_on_behalf |= role.act_on_behalf_of_another_user;
        }
        let mut team_ids = Vec::with_capacity(teams.len());
        for team in teams {
            team_ids.push(team.team_id);
            for role in team.roles {
                privileges.add_role(role, team.business_unit_id);
                role_ids.insert(role.id);
                can_act_on_behalf |= role.act_on_behalf_of_another_user;
            }
        }
        team_ids.sort();
        team_ids.dedup();
        SecurityContext {
            user_id,
            business_unit_id,
            team_ids,
            privileges,
            can_act_on_behalf,
            role_count: role_ids.len(),
            is_system_administrator,
            on_behalf_of: None,
        }
    }

    /// The deepest depth the caller holds a privilege at. The audit table has no role
    /// privileges of its own: reading it is `prvReadAuditSummary`, which only the System
    /// Administrator role holds, and nobody writes it.
    pub fn depth(&self, entity: &str, privilege: Privilege) -> Depth {
        if entity == crate::metadata::system::AUDIT {
            return if privilege == Privilege::Read && self.is_system_administrator {
                Depth::Global
            } else {
                Depth::None
            };
        }
        self.privileges.depth(entity, privilege)
    }

    /// Dataverse's `privilegeCount`: distinct privileges held, the impersonation one included.
    pub fn privilege_count(&self) -> usize {
        self.privileges.count() + usize::from(self.can_act_on_behalf)
    }

    /// Whether a principal is the user or one of the user's teams.
    pub fn is_self_or_team(&self, principal: Uuid) -> bool {
        principal == self.user_id || self.team_ids.binary_search(&principal).is_ok()
    }

    /// The user and its teams: the principals whose records and shares are the user's.
    pub fn principals(&self) -> Vec<Uuid> {
        let mut all = Vec::with_capacity(self.team_ids.len() + 1);
        all.push(self.user_id);
        all.extend(&self.team_ids);
        all
    }

    /// Caps every privilege at the depth `cap` holds it at (see [`super::impersonate`]).
    pub(crate) fn cap_privileges_by(&mut self, cap: &SecurityContext) {
        self.privileges
            .retain_map(|entity, privilege, grant| grant.depth.min(cap.depth(entity, privilege)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::role::SMS_ENGAGEMENT_CTX;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// root(1) ─┬─ sales(2) ── north(4)
    ///          └─ support(3)
    fn tree() -> BusinessUnitTree {
        BusinessUnitTree::from_links([
            (id(1), None),
            (id(2), Some(id(1))),
            (id(3), Some(id(1))),
            (id(4), Some(id(2))),
        ])
    }

    #[test]
    fn same_or_child_follows_parent_links() {
        let t = tree();
        assert!(t.is_same_or_child(id(1), id(4)));
        assert!(t.is_same_or_child(id(2), id(4)));
        assert!(t.is_same_or_child(id(4), id(4)));
        assert!(!t.is_same_or_child(id(4), id(2)));
        assert!(!t.is_same_or_child(id(3), id(4)));
        assert!(!t.is_same_or_child(id(2), id(99)));
        assert!(t.is_same_or_child(id(99), id(99)));
    }

    #[test]
    fn a_cycle_does_not_hang() {
        let t = BusinessUnitTree::from_links([(id(1), Some(id(2))), (id(2), Some(id(1)))]);
        assert!(!t.is_same_or_child(id(3), id(1)));
        assert_eq!(t.subtree(id(1)), vec![id(1), id(2)]);
    }

    #[test]
    fn subtree_lists_root_then_descendants() {
        let t = tree();
        assert_eq!(t.subtree(id(1)), vec![id(1), id(2), id(3), id(4)]);
        assert_eq!(t.subtree(id(2)), vec![id(2), id(4)]);
        assert_eq!(t.subtree(id(3)), vec![id(3)]);
    }

    #[test]
    fn insert_moves_a_unit() {
        let mut t = tree();
        t.insert(id(4), Some(id(3)));
        assert!(t.is_same_or_child(id(3), id(4)));
        assert!(!t.is_same_or_child(id(2), id(4)));
    }

    #[test]
    fn effective_privileges_keep_the_deepest_grant_per_business_unit() {
        let mut p = EffectivePrivileges::new();
        let g = |depth, bu| Grant {
            depth,
            business_unit: id(bu),
        };
        p.add("t", Privilege::Read, g(Depth::Basic, 1));
        p.add("t", Privilege::Read, g(Depth::Local, 1));
        p.add("t", Privilege::Read, g(Depth::Basic, 1));
        p.add("t", Privilege::Read, g(Depth::Deep, 2));
        p.add("t", Privilege::Write, g(Depth::None, 2));
        assert_eq!(
            p.grants("t", Privilege::Read),
            &[g(Depth::Local, 1), g(Depth::Deep, 2)]
        );
        assert_eq!(p.depth("t", Privilege::Read), Depth::Deep);
        assert_eq!(p.depth("t", Privilege::Write), Depth::None);
        assert_eq!(p.count(), 1);
    }

    #[test]
    fn team_roles_are_measured_from_the_team_business_unit() {
        let mut role = Role::new(id(50), "r", id(3));
        role.set(SMS_ENGAGEMENT_CTX, Privilege::Read, Depth::Local);
        let roles = [role];
        let ctx = SecurityContext::build(
            id(10),
            id(2),
            &[],
            &[Membership {
                team_id: id(20),
                business_unit_id: id(3),
                roles: &roles,
            }],
        );
        assert_eq!(
            ctx.privileges.grants(SMS_ENGAGEMENT_CTX, Privilege::Read),
            &[Grant {
                depth: Depth::Local,
                business_unit: id(3)
            }]
        );
        assert_eq!(ctx.team_ids, vec![id(20)]);
        assert_eq!(ctx.role_count, 1);
        assert!(ctx.is_self_or_team(id(20)));
        assert!(ctx.is_self_or_team(id(10)));
        assert!(!ctx.is_self_or_team(id(3)));
    }

    #[test]
    fn role_count_counts_a_role_held_twice_once() {
        let admin = crate::security::role::builtin_role("System Administrator", id(1)).unwrap();
        let roles = [admin.clone()];
        let ctx = SecurityContext::build(
            id(10),
            id(1),
            std::slice::from_ref(&admin),
            &[Membership {
                team_id: id(20),
                business_unit_id: id(1),
                roles: &roles,
            }],
        );
        assert_eq!(ctx.role_count, 1);
        assert!(ctx.can_act_on_behalf);
        assert_eq!(
            ctx.privilege_count(),
            crate::security::role::SECURED_TABLES.len() * 8 + 1
        );
    }
}
