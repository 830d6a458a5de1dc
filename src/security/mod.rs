//! The security model: who may do what with which record, as Dataverse decides it.
//!
//! This module is the pure core of the layer every request passes through between binding and
//! execution: it takes facts (the caller's [`SecurityContext`], the [`BusinessUnitTree`], a
//! record's owner as [`RecordFacts`], its [`Share`]s) and answers with a decision ([`check`] and
//! its siblings, [`access_rights`]) or a row scope for queries ([`read_scope`]). Gathering the
//! facts (reading users, teams, roles and shares from the store) and mapping a [`Denied`] onto an
//! HTTP response belong to the layers around it.
//!
//! A guided tour:
//! - [`rights`]: `AccessRights`, Dataverse's flags, and their JSON text;
//! - [`privilege`]: privileges (`prvReadmsdyn_smsengagementctx`) and depths (Basic … Global);
//! - [`role`]: roles, and the built-in ones as data;
//! - [`principal`]: the caller's effective privileges, teams and business unit, and the unit tree;
//! - [`decision`]: the checks, the read scope, impersonation;
//! - [`denied`]: denials with Dataverse's codes and messages;
//! - [`jwt`]: bearer token validation (Microsoft Entra ID style) and minting for local use.
//!
//! **Architecture invariant:** nothing here does I/O, knows HTTP or writes SQL.

pub mod decision;
pub mod denied;
pub mod jwt;
pub mod principal;
pub mod privilege;
pub mod rights;
pub mod role;

pub use decision::{
    access_rights, check, check_append, check_assign, check_create, check_privilege, impersonate,
    read_scope, shared_rights, AppendTarget, RecordFacts, RowScope, Share,
};
pub use denied::Denied;
pub use principal::{BusinessUnitTree, EffectivePrivileges, Grant, Membership, SecurityContext};
pub use privilege::{
    object_type_code, privilege_id, privilege_table_name, Depth, Privilege,
    ACT_ON_BEHALF_OF_ANOTHER_USER,
};
pub use rights::{AccessRights, UnknownAccessRight};
pub use role::{builtin_role, builtin_roles, Role};
