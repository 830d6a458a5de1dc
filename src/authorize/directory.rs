//! The security facts as stored: users, business units, roles and their privileges, role
//! assignments, team membership and shares, read and written through the [`Access`] trait like
//! any table (the tables are catalog entities; see `metadata/role.md` and its siblings).
//!
//! Nothing here decides anything: [`Directory::principal`] gathers what
//! [`crate::security::SecurityContext::build`] needs, and the writes keep one row per pair with a
//! stable id (so associating twice finds the same row).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::metadata::system::*;
use crate::metadata::{Catalog, Entity};
use crate::query::{CmpOp, Expr, Literal, PropertyRef};
use crate::security::privilege::name_based_id;
use crate::security::role::{builtin_roles, SECURED_TABLES};
use crate::security::{
    privilege_id, AccessRights, BusinessUnitTree, Depth, Membership, Privilege, Role,
    SecurityContext, Share, ACT_ON_BEHALF_OF_ANOTHER_USER,
};
use crate::store::sql::{Context, Plan};
use crate::store::{Access, Query, Record, StoreError, Value, WriteOp};

/// Who a request runs as, with everything the decisions need.
#[derive(Debug, Clone)]
pub struct Principal {
    pub context: SecurityContext,
    pub tree: Arc<BusinessUnitTree>,
}

/// A systemuser as authentication sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFacts {
    pub id: Uuid,
    pub business_unit_id: Uuid,
    pub disabled: bool,
}

/// The many-to-many relationships of the security model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    /// `systemuserroles_association`: a user holds a role.
    UserRoles,
    /// `teamroles_association`: a team holds a role.
    TeamRoles,
    /// `teammembership_association`: a user is a member of a team.
    TeamMembership,
}

impl Relationship {
    pub const ALL: [Relationship; 3] = [
        Relationship::UserRoles,
        Relationship::TeamRoles,
        Relationship::TeamMembership,
    ];

    /// The navigation property name of the Web API.
    pub fn name(self) -> &'static str {
        match self {
            Relationship::UserRoles => "systemuserroles_association",
            Relationship::TeamRoles => "teamroles_association",
            Relationship::TeamMembership => "teammembership_association",
        }
    }

    /// The intersect table, then its two sides as (table, column).
    pub fn tables(
        self,
    ) -> (
        &'static str,
        (&'static str, &'static str),
        (&'static str, &'static str),
    ) {
        match self {
            Relationship::UserRoles => (
                SYSTEM_USER_ROLES,
                (SYSTEM_USER, SYSTEM_USER_ID),
                (ROLE, ROLE_ID),
            ),
            Relationship::TeamRoles => (TEAM_ROLES, (TEAM, TEAM_ID), (ROLE, ROLE_ID)),
            Relationship::TeamMembership => (
                TEAM_MEMBERSHIP,
                (SYSTEM_USER, SYSTEM_USER_ID),
                (TEAM, TEAM_ID),
            ),
        }
    }

    pub fn by_name(name: &str) -> Option<Relationship> {
        Relationship::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Reads and writes the security facts.
///
/// Role definitions (a role and its privileges) are cached per node, each with the role row's
/// `versionnumber` when it was read; every use reads the role row again (one read by key) and
/// reloads the role when the version moved. Every change to a role's privileges bumps the role
/// row in the same transaction ([`Directory::touch_roles`]), and privileges are read after the
/// role row, so a cached definition is never older than the version it is filed under: the
/// cache is correct across nodes. Nothing read inside a `$batch` transaction is cached.
pub struct Directory {
    catalog: Arc<Catalog>,
    /// Privilege ids back to (table, privilege); the impersonation privilege maps to `None`.
    privileges: HashMap<Uuid, Option<(String, Privilege)>>,
    roles: std::sync::Mutex<HashMap<Uuid, (i64, Role)>>,
}

fn missing(table: &str) -> StoreError {
    StoreError::UnknownTable(table.to_string())
}

impl Directory {
    pub fn new(catalog: Arc<Catalog>) -> Directory {
        let mut privileges = HashMap::new();
        for table in SECURED_TABLES {
            for p in Privilege::ALL {
                privileges.insert(
                    privilege_id(&p.dataverse_name(table)),
                    Some((table.to_string(), p)),
                );
            }
        }
        privileges.insert(privilege_id(ACT_ON_BEHALF_OF_ANOTHER_USER), None);
        Directory {
            catalog,
            privileges,
            roles: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn table(&self, name: &str) -> Result<&Arc<Entity>, StoreError> {
        self.catalog.entity(name).ok_or_else(|| missing(name))
    }

    /// The rows of `table` whose `column` is one of `values`.
    async fn rows_where(
        &self,
        db: &dyn Access,
        table: &str,
        column: &str,
        values: &[Uuid],
    ) -> Result<Vec<Record>, StoreError> {
        let entity = self.table(table)?;
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let index = entity.position(column).ok_or_else(|| missing(column))?;
        let prop = PropertyRef {
            index,
            name: column.to_string(),
        };
        let filter = Expr::or(
            values
                .iter()
                .map(|v| Expr::Compare {
                    prop: prop.clone(),
                    op: CmpOp::Eq,
                    value: Literal::Guid(*v),
                })
                .collect(),
        );
        self.query(db, entity, Some(filter)).await
    }

    async fn query(
        &self,
        db: &dyn Access,
        entity: &Arc<Entity>,
        filter: Option<Expr>,
    ) -> Result<Vec<Record>, StoreError> {
        db.query(Query {
            plan: Plan {
                entity: Arc::clone(entity),
                filter,
                order: Vec::new(),
                limit: None,
                after: None,
                scope: None,
                related: None,
            },
            context: Context {
                now: 0,
                user_id: Uuid::nil(),
                business_unit_id: Uuid::nil(),
            },
            with_names: false,
        })
        .await
    }

    pub async fn user(&self, db: &dyn Access, id: Uuid) -> Result<Option<UserFacts>, StoreError> {
        let users = self.table(SYSTEM_USER)?;
        Ok(db.get(users, id, false).await?.map(|r| user_facts(&r)))
    }

    /// The user whose `azureactivedirectoryobjectid` is `object_id`.
    pub async fn user_by_object_id(
        &self,
        db: &dyn Access,
        object_id: Uuid,
    ) -> Result<Option<UserFacts>, StoreError> {
        let rows = self
            .rows_where(db, SYSTEM_USER, AZURE_AD_OBJECT_ID, &[object_id])
            .await?;
        Ok(rows.first().map(user_facts))
    }

    pub async fn tree(&self, db: &dyn Access) -> Result<BusinessUnitTree, StoreError> {
        let units = self.table(BUSINESS_UNIT)?;
        let rows = self.query(db, units, None).await?;
        Ok(BusinessUnitTree::from_links(rows.iter().filter_map(|r| {
            Some((r.id()?, r.get(PARENT_BUSINESS_UNIT_ID).as_guid()))
        })))
    }

    /// Roles by id, with their privileges; `cacheable` when `db` is the store itself (not a
    /// transaction), so that definitions may come from and go to the cache.
    pub async fn roles(
        &self,
        db: &dyn Access,
        ids: &[Uuid],
        cacheable: bool,
    ) -> Result<Vec<Role>, StoreError> {
        let table = self.table(ROLE)?;
        let mut found = Vec::with_capacity(ids.len());
        let mut missing: Vec<(i64, Record)> = Vec::new();
        for id in ids {
            let Some(row) = db.get(table, *id, false).await? else {
                continue;
            };
            let version = row.version().unwrap_or_default();
            let cached = cacheable
                .then(|| {
                    let cache = self.roles.lock().unwrap_or_else(|e| e.into_inner());
                    cache
                        .get(id)
                        .filter(|(v, _)| *v == version)
                        .map(|(_, role)| role.clone())
                })
                .flatten();
            match cached {
                Some(role) => found.push(role),
                None => missing.push((version, row)),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let versions: HashMap<Uuid, i64> = missing
            .iter()
            .filter_map(|(v, r)| Some((r.id()?, *v)))
            .collect();
        let loaded = self.load_roles(db, missing.iter().map(|(_, r)| r)).await?;
        if cacheable {
            let mut cache = self.roles.lock().unwrap_or_else(|e| e.into_inner());
            for role in &loaded {
                if let Some(version) = versions.get(&role.id) {
                    cache.insert(role.id, (*version, role.clone()));
                }
            }
        }
        found.extend(loaded);
        Ok(found)
    }

    /// Bumps the version of roles whose privileges changed (in the caller's transaction).
    pub async fn touch_roles(&self, db: &dyn Access, ids: &[Uuid]) -> Result<(), StoreError> {
        let table = self.table(ROLE)?;
        let Some(position) = table.position(MODIFIED_ON) else {
            return Err(missing(MODIFIED_ON));
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for id in ids {
            let op = WriteOp::Update {
                entity: Arc::clone(table),
                id: *id,
                changes: vec![(position, Value::DateTime(now))],
                expect: crate::store::Expect::Any,
            };
            match db.write(op).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Roles with their privileges, from their rows.
    async fn load_roles(
        &self,
        db: &dyn Access,
        rows: impl Iterator<Item = &Record>,
    ) -> Result<Vec<Role>, StoreError> {
        let mut roles: BTreeMap<Uuid, Role> = rows
            .filter_map(|r| {
                let id = r.id()?;
                let name = r.get(NAME).as_text().unwrap_or_default().to_string();
                let unit = r.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default();
                Some((id, Role::new(id, name, unit)))
            })
            .collect();
        let ids: Vec<Uuid> = roles.keys().copied().collect();
        for row in self.rows_where(db, ROLE_PRIVILEGES, ROLE_ID, &ids).await? {
            let (Some(role_id), Some(privilege)) =
                (row.get(ROLE_ID).as_guid(), row.get(PRIVILEGE_ID).as_guid())
            else {
                continue;
            };
            let depth = Depth::from_mask(
                row.get(PRIVILEGE_DEPTH_MASK)
                    .as_int()
                    .and_then(|m| u8::try_from(m).ok())
                    .unwrap_or(0),
            );
            let Some(role) = roles.get_mut(&role_id) else {
                continue;
            };
            match self.privileges.get(&privilege) {
                Some(Some((table, p))) => {
                    role.set(table, *p, depth);
                }
                Some(None) => role.act_on_behalf_of_another_user = depth > Depth::None,
                None => {}
            }
        }
        Ok(roles.into_values().collect())
    }

    /// The other side of every row of `relationship` whose `side` column is `id`.
    async fn linked(
        &self,
        db: &dyn Access,
        relationship: Relationship,
        ids: &[Uuid],
        from_left: bool,
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        let (table, (_, left), (_, right)) = relationship.tables();
        let (from, to) = if from_left {
            (left, right)
        } else {
            (right, left)
        };
        let rows = self.rows_where(db, table, from, ids).await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get(from).as_guid()?, r.get(to).as_guid()?)))
            .collect())
    }

    /// The roles a team holds.
    pub async fn team_roles(&self, db: &dyn Access, team: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .linked(db, Relationship::TeamRoles, &[team], true)
            .await?
            .into_iter()
            .map(|(_, role)| role)
            .collect())
    }

    /// The security context of a user: its roles, its teams and their roles, and the unit tree.
    pub async fn principal(
        &self,
        db: &dyn Access,
        user: &UserFacts,
        cacheable: bool,
    ) -> Result<Principal, StoreError> {
        let own_roles: Vec<Uuid> = self
            .linked(db, Relationship::UserRoles, &[user.id], true)
            .await?
            .into_iter()
            .map(|(_, role)| role)
            .collect();
        let team_ids: Vec<Uuid> = self
            .linked(db, Relationship::TeamMembership, &[user.id], true)
            .await?
            .into_iter()
            .map(|(_, team)| team)
            .collect();
        let teams = self.rows_where(db, TEAM, TEAM_ID, &team_ids).await?;
        let team_roles = self
            .linked(db, Relationship::TeamRoles, &team_ids, true)
            .await?;
        let mut all_roles = own_roles.clone();
        all_roles.extend(team_roles.iter().map(|(_, role)| *role));
        all_roles.sort();
        all_roles.dedup();
        let roles = self.roles(db, &all_roles, cacheable).await?;
        let by_id: HashMap<Uuid, &Role> = roles.iter().map(|r| (r.id, r)).collect();
        let direct: Vec<Role> = own_roles
            .iter()
            .filter_map(|id| by_id.get(id).map(|r| (*r).clone()))
            .collect();
        let team_role_sets: Vec<(Uuid, Uuid, Vec<Role>)> = teams
            .iter()
            .filter_map(|t| {
                let id = t.id()?;
                let unit = t.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default();
                let held = team_roles
                    .iter()
                    .filter(|(team, _)| *team == id)
                    .filter_map(|(_, role)| by_id.get(role).map(|r| (*r).clone()))
                    .collect();
                Some((id, unit, held))
            })
            .collect();
        let memberships: Vec<Membership<'_>> = team_role_sets
            .iter()
            .map(|(team_id, unit, roles)| Membership {
                team_id: *team_id,
                business_unit_id: *unit,
                roles,
            })
            .collect();
        let context = SecurityContext::build(user.id, user.business_unit_id, &direct, &memberships);
        let tree = Arc::new(self.tree(db).await?);
        Ok(Principal { context, tree })
    }

    /// The shares of one record.
    pub async fn shares(&self, db: &dyn Access, object_id: Uuid) -> Result<Vec<Share>, StoreError> {
        let rows = self
            .rows_where(db, PRINCIPAL_OBJECT_ACCESS, OBJECT_ID, &[object_id])
            .await?;
        Ok(rows.iter().filter_map(share_of).collect())
    }

    /// Removes every share of a record (after the record is deleted).
    pub async fn remove_shares(&self, db: &dyn Access, object_id: Uuid) -> Result<(), StoreError> {
        let table = self.table(PRINCIPAL_OBJECT_ACCESS)?;
        let rows = self
            .rows_where(db, PRINCIPAL_OBJECT_ACCESS, OBJECT_ID, &[object_id])
            .await?;
        for id in rows.iter().filter_map(Record::id) {
            let op = WriteOp::Delete {
                entity: Arc::clone(table),
                id,
                expect: crate::store::Expect::Any,
            };
            match db.write(op).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Seeds the built-in roles of a business unit (idempotent: stable ids).
    pub async fn seed_roles(&self, db: &dyn Access, business_unit: Uuid) -> Result<(), StoreError> {
        for role in builtin_roles(business_unit) {
            self.write_role(db, &role).await?;
        }
        Ok(())
    }

    /// Inserts a role and its privileges where they do not exist yet: the privileges first, so
    /// that whoever sees the role row sees them, and a role that existed is bumped when it
    /// gained privileges (see the role cache).
    pub async fn write_role(&self, db: &dyn Access, role: &Role) -> Result<(), StoreError> {
        let mut added = false;
        let mut privileges: Vec<(String, u8)> = role
            .privileges
            .iter()
            .flat_map(|(table, ps)| {
                ps.iter()
                    .map(move |(p, d)| (p.dataverse_name(table), d.mask()))
            })
            .collect();
        if role.act_on_behalf_of_another_user {
            privileges.push((
                ACT_ON_BEHALF_OF_ANOTHER_USER.to_string(),
                Depth::Global.mask(),
            ));
        }
        let table = self.table(ROLE_PRIVILEGES)?;
        for (name, mask) in privileges {
            let privilege = privilege_id(&name);
            let mut record = Record::empty(Arc::clone(table));
            record.set(
                &table.primary_id,
                Value::Guid(name_based_id(
                    ROLE_PRIVILEGES,
                    &format!("{}:{privilege}", role.id),
                )),
            );
            record.set(ROLE_ID, Value::Guid(role.id));
            record.set(PRIVILEGE_ID, Value::Guid(privilege));
            record.set(PRIVILEGE_DEPTH_MASK, Value::Int(mask.into()));
            match db.write(WriteOp::Insert(record)).await {
                Ok(_) => added = true,
                Err(StoreError::Duplicate) => {}
                Err(e) => return Err(e),
            }
        }
        let roles = self.table(ROLE)?;
        let mut record = Record::empty(Arc::clone(roles));
        record.set(ROLE_ID, Value::Guid(role.id));
        record.set(NAME, Value::Text(role.name.clone()));
        record.set(BUSINESS_UNIT_ID, Value::Guid(role.business_unit));
        match db.write(WriteOp::Insert(record)).await {
            Ok(_) => Ok(()),
            Err(StoreError::Duplicate) if added => self.touch_roles(db, &[role.id]).await,
            Err(StoreError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn pair_id(relationship: Relationship, left: Uuid, right: Uuid) -> Uuid {
        name_based_id(relationship.name(), &format!("{left}:{right}"))
    }

    /// Adds a row to a relationship (no-op when it is there).
    pub async fn associate(
        &self,
        db: &dyn Access,
        relationship: Relationship,
        left: Uuid,
        right: Uuid,
    ) -> Result<(), StoreError> {
        let (table, (_, left_column), (_, right_column)) = relationship.tables();
        let entity = self.table(table)?;
        let mut record = Record::empty(Arc::clone(entity));
        let id_position = entity.primary_id_position();
        record.values[id_position] = Value::Guid(Self::pair_id(relationship, left, right));
        record.set(left_column, Value::Guid(left));
        record.set(right_column, Value::Guid(right));
        ignore_duplicate(db.write(WriteOp::Insert(record)).await)
    }

    /// Removes a row of a relationship (no-op when it is not there).
    pub async fn disassociate(
        &self,
        db: &dyn Access,
        relationship: Relationship,
        left: Uuid,
        right: Uuid,
    ) -> Result<(), StoreError> {
        let (table, _, _) = relationship.tables();
        let entity = self.table(table)?;
        let op = WriteOp::Delete {
            entity: Arc::clone(entity),
            id: Self::pair_id(relationship, left, right),
            expect: crate::store::Expect::Any,
        };
        match db.write(op).await {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn share_id(object_id: Uuid, principal: Uuid) -> Uuid {
        name_based_id(PRINCIPAL_OBJECT_ACCESS, &format!("{object_id}:{principal}"))
    }

    /// Sets the rights a record is shared with a principal (empty rights remove the share).
    pub async fn set_share(
        &self,
        db: &dyn Access,
        entity: &Entity,
        object_id: Uuid,
        share: Share,
    ) -> Result<(), StoreError> {
        let table = self.table(PRINCIPAL_OBJECT_ACCESS)?;
        let id = Self::share_id(object_id, share.principal_id);
        let mask = Value::Int(i64::from(share.rights.bits()));
        if share.rights.is_empty() {
            let op = WriteOp::Delete {
                entity: Arc::clone(table),
                id,
                expect: crate::store::Expect::Any,
            };
            return match db.write(op).await {
                Ok(_) | Err(StoreError::NotFound) => Ok(()),
                Err(e) => Err(e),
            };
        }
        if db.get(table, id, false).await?.is_some() {
            let position = table
                .position(ACCESS_RIGHTS_MASK)
                .ok_or_else(|| missing(ACCESS_RIGHTS_MASK))?;
            db.write(WriteOp::Update {
                entity: Arc::clone(table),
                id,
                changes: vec![(position, mask)],
                expect: crate::store::Expect::Any,
            })
            .await?;
            return Ok(());
        }
        let mut record = Record::empty(Arc::clone(table));
        record.values[table.primary_id_position()] = Value::Guid(id);
        record.set(OBJECT_ID, Value::Guid(object_id));
        record.set(OBJECT_TYPE_CODE, Value::Text(entity.logical_name.clone()));
        record.set(PRINCIPAL_ID, Value::Guid(share.principal_id));
        record.set(
            PRINCIPAL_TYPE_CODE,
            Value::Text(if share.is_team { TEAM } else { SYSTEM_USER }.to_string()),
        );
        record.set(ACCESS_RIGHTS_MASK, mask);
        match db.write(WriteOp::Insert(record)).await {
            Ok(_) => Ok(()),
            // Shared concurrently: set the mask on the row that won.
            Err(StoreError::Duplicate) => {
                let position = table
                    .position(ACCESS_RIGHTS_MASK)
                    .ok_or_else(|| missing(ACCESS_RIGHTS_MASK))?;
                db.write(WriteOp::Update {
                    entity: Arc::clone(table),
                    id,
                    changes: vec![(position, Value::Int(i64::from(share.rights.bits())))],
                    expect: crate::store::Expect::Any,
                })
                .await
                .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

fn user_facts(record: &Record) -> UserFacts {
    UserFacts {
        id: record.id().unwrap_or_default(),
        business_unit_id: record.get(BUSINESS_UNIT_ID).as_guid().unwrap_or_default(),
        disabled: matches!(record.get(IS_DISABLED), Value::Bool(true)),
    }
}

fn share_of(record: &Record) -> Option<Share> {
    let rights = record
        .get(ACCESS_RIGHTS_MASK)
        .as_int()
        .and_then(|m| u32::try_from(m).ok())
        .map(AccessRights::from_bits_truncate)?;
    Some(Share {
        principal_id: record.get(PRINCIPAL_ID).as_guid()?,
        is_team: record.get(PRINCIPAL_TYPE_CODE).as_text() == Some(TEAM),
        rights,
    })
}

fn ignore_duplicate<T>(result: Result<T, StoreError>) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::Duplicate) => Ok(()),
        Err(e) => Err(e),
    }
}
