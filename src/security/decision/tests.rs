//! The decision, tested on one small organisation:
//!
//! ```text
//! root ─┬─ sales ── north
//!       └─ support
//! ```
//! Alice (the caller in most tests) and Bob work in sales, Carol in north, Dave in support. Alice
//! is a member of the sales team and of the support team; the other support team is not hers.

use uuid::Uuid;

use super::*;
use crate::security::role::{
    builtin_role, Role, BASIC_USER, LIVE_WORK_ITEM, OMNICHANNEL_AGENT, OMNICHANNEL_SUPERVISOR,
    SMS_ENGAGEMENT_CTX as CTX, SYSTEM_ADMINISTRATOR,
};
use crate::security::Membership;
use crate::security::Privilege::{Append, AppendTo, Assign, Create, Delete, Read, Write};

const ROOT: Uuid = Uuid::from_u128(0x100);
const SALES: Uuid = Uuid::from_u128(0x200);
const NORTH: Uuid = Uuid::from_u128(0x210);
const SUPPORT: Uuid = Uuid::from_u128(0x300);

const ALICE: Uuid = Uuid::from_u128(0xa11ce);
const BOB: Uuid = Uuid::from_u128(0xb0b);
const CAROL: Uuid = Uuid::from_u128(0xca201);
const DAVE: Uuid = Uuid::from_u128(0xda4e);

const SALES_TEAM: Uuid = Uuid::from_u128(0x7ea1);
const SUPPORT_TEAM: Uuid = Uuid::from_u128(0x7ea2);
const OTHER_SUPPORT_TEAM: Uuid = Uuid::from_u128(0x7ea3);

fn tree() -> BusinessUnitTree {
    BusinessUnitTree::from_links([
        (ROOT, None),
        (SALES, Some(ROOT)),
        (NORTH, Some(SALES)),
        (SUPPORT, Some(ROOT)),
    ])
}

fn user_record(n: u128, owner: Uuid, unit: Uuid) -> RecordFacts {
    RecordFacts {
        id: Uuid::from_u128(n),
        owner_id: owner,
        owner_is_team: false,
        owning_business_unit: unit,
    }
}

fn team_record(n: u128, team: Uuid, unit: Uuid) -> RecordFacts {
    RecordFacts {
        owner_is_team: true,
        ..user_record(n, team, unit)
    }
}

fn alices() -> RecordFacts {
    user_record(1, ALICE, SALES)
}
fn bobs() -> RecordFacts {
    user_record(2, BOB, SALES)
}
fn carols() -> RecordFacts {
    user_record(3, CAROL, NORTH)
}
fn daves() -> RecordFacts {
    user_record(4, DAVE, SUPPORT)
}
fn sales_teams() -> RecordFacts {
    team_record(5, SALES_TEAM, SALES)
}
fn other_support_teams() -> RecordFacts {
    team_record(6, OTHER_SUPPORT_TEAM, SUPPORT)
}
fn roots() -> RecordFacts {
    user_record(7, Uuid::from_u128(0x1007), ROOT)
}

fn all_records() -> Vec<RecordFacts> {
    vec![
        alices(),
        bobs(),
        carols(),
        daves(),
        sales_teams(),
        other_support_teams(),
        roots(),
    ]
}

/// A role giving every context privilege at one depth.
fn role_at(depth: Depth) -> Role {
    let mut role = Role::new(Uuid::from_u128(0x5000 + depth as u128), "test", ROOT);
    role.grant(CTX, &Privilege::ALL, depth);
    role
}

/// Alice in sales with her own roles, a member of the sales team (no roles) and of the support
/// team (no roles).
fn alice_with(roles: &[Role]) -> SecurityContext {
    SecurityContext::build(
        ALICE,
        SALES,
        roles,
        &[
            Membership {
                team_id: SALES_TEAM,
                business_unit_id: SALES,
                roles: &[],
            },
            Membership {
                team_id: SUPPORT_TEAM,
                business_unit_id: SUPPORT,
                roles: &[],
            },
        ],
    )
}

fn builtin(name: &str) -> Role {
    builtin_role(name, SALES).unwrap()
}

fn can(ctx: &SecurityContext, privilege: Privilege, record: &RecordFacts) -> bool {
    check(ctx, &tree(), CTX, privilege, record, &[]).is_ok()
}

/// Which of [`all_records`] a context may read, by record number.
fn readable(ctx: &SecurityContext) -> Vec<u128> {
    all_records()
        .iter()
        .filter(|r| can(ctx, Read, r))
        .map(|r| r.id.as_u128())
        .collect()
}

#[test]
fn basic_reaches_the_users_and_its_teams_rows_only() {
    let ctx = alice_with(&[role_at(Depth::Basic)]);
    assert_eq!(readable(&ctx), [1, 5]);
}

#[test]
fn local_reaches_the_users_business_unit() {
    let ctx = alice_with(&[role_at(Depth::Local)]);
    assert_eq!(readable(&ctx), [1, 2, 5]);
}

#[test]
fn deep_reaches_child_units_but_not_the_parent_or_siblings() {
    let ctx = alice_with(&[role_at(Depth::Deep)]);
    assert_eq!(readable(&ctx), [1, 2, 3, 5]);
}

#[test]
fn global_reaches_every_row() {
    let ctx = alice_with(&[role_at(Depth::Global)]);
    assert_eq!(readable(&ctx), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_user_in_a_child_unit_does_not_reach_the_parent_with_deep() {
    let carol = SecurityContext::build(CAROL, NORTH, &[role_at(Depth::Deep)], &[]);
    assert_eq!(readable(&carol), [3]);
}

#[test]
fn team_roles_are_measured_from_the_teams_business_unit() {
    let mut support_reader = Role::new(Uuid::from_u128(0x6001), "support reader", SUPPORT);
    support_reader.set(CTX, Read, Depth::Local);
    let roles = [support_reader];
    let ctx = SecurityContext::build(
        ALICE,
        SALES,
        &[],
        &[Membership {
            team_id: SUPPORT_TEAM,
            business_unit_id: SUPPORT,
            roles: &roles,
        }],
    );
    // Support's rows, Alice's own (Basic is included in Local), not sales' other rows.
    assert_eq!(readable(&ctx), [1, 4, 6]);
    assert!(!can(&ctx, Write, &daves()));
}

#[test]
fn a_basic_team_role_reaches_the_teams_rows_and_the_members_own() {
    let mut basic = Role::new(Uuid::from_u128(0x6002), "basic", SALES);
    basic.set(CTX, Read, Depth::Basic);
    let roles = [basic];
    let ctx = SecurityContext::build(
        ALICE,
        SALES,
        &[],
        &[Membership {
            team_id: SALES_TEAM,
            business_unit_id: SALES,
            roles: &roles,
        }],
    );
    assert_eq!(readable(&ctx), [1, 5]);
}

#[test]
fn a_direct_share_gives_exactly_the_shared_rights() {
    let ctx = alice_with(&[builtin(BASIC_USER)]);
    let shares = [Share {
        principal_id: ALICE,
        is_team: false,
        rights: AccessRights::READ,
    }];
    let t = tree();
    assert!(check(&ctx, &t, CTX, Read, &daves(), &shares).is_ok());
    assert!(check(&ctx, &t, CTX, Write, &daves(), &shares).is_err());
    assert_eq!(
        access_rights(&ctx, &t, CTX, &daves(), &shares),
        AccessRights::READ
    );
}

#[test]
fn a_share_with_one_of_the_users_teams_is_the_users() {
    let ctx = alice_with(&[builtin(BASIC_USER)]);
    let t = tree();
    let to_team = |team| {
        [Share {
            principal_id: team,
            is_team: true,
            rights: AccessRights::READ | AccessRights::WRITE,
        }]
    };
    assert!(check(&ctx, &t, CTX, Write, &daves(), &to_team(SUPPORT_TEAM)).is_ok());
    assert!(check(&ctx, &t, CTX, Write, &daves(), &to_team(OTHER_SUPPORT_TEAM)).is_err());
    // Shared with another user: not Alice's.
    let to_bob = [Share {
        principal_id: BOB,
        is_team: false,
        rights: AccessRights::READ,
    }];
    assert!(check(&ctx, &t, CTX, Read, &daves(), &to_bob).is_err());
}

#[test]
fn sharing_gives_nothing_without_the_privilege() {
    let agent = alice_with(&[builtin(OMNICHANNEL_AGENT)]);
    let t = tree();
    let shares = [Share {
        principal_id: ALICE,
        is_team: false,
        rights: AccessRights::READ | AccessRights::DELETE,
    }];
    assert_eq!(
        access_rights(&agent, &t, CTX, &daves(), &shares),
        AccessRights::READ
    );
    let denied = check(&agent, &t, CTX, Delete, &daves(), &shares).unwrap_err();
    assert_eq!(denied.code(), "0x80040220");
    let nobody = alice_with(&[]);
    assert_eq!(
        access_rights(&nobody, &t, CTX, &daves(), &shares),
        AccessRights::empty()
    );
}

#[test]
fn access_rights_combine_depths_per_privilege() {
    let supervisor = alice_with(&[builtin(OMNICHANNEL_SUPERVISOR)]);
    let t = tree();
    let rights = |r: &RecordFacts| access_rights(&supervisor, &t, CTX, r, &[]).to_string();
    assert_eq!(
        rights(&bobs()),
        "ReadAccess, WriteAccess, ShareAccess, AssignAccess"
    );
    assert_eq!(rights(&carols()), "ShareAccess, AssignAccess");
    assert_eq!(rights(&daves()), "None");
    let admin = alice_with(&[builtin(SYSTEM_ADMINISTRATOR)]);
    assert_eq!(
        access_rights(&admin, &t, CTX, &daves(), &[]).to_string(),
        "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, DeleteAccess, ShareAccess, AssignAccess"
    );
}

#[test]
fn create_is_checked_against_the_intended_owner() {
    let t = tree();
    let basic = alice_with(&[builtin(BASIC_USER)]);
    assert!(check_create(&basic, &t, CTX, &alices()).is_ok());
    assert!(check_create(&basic, &t, CTX, &sales_teams()).is_ok());
    let denied = check_create(&basic, &t, CTX, &bobs()).unwrap_err();
    assert_eq!(denied.code(), "0x80048306");
    assert!(denied.message().ends_with("AccessRights: CreateAccess"));

    let local = alice_with(&[role_at(Depth::Local)]);
    assert!(check_create(&local, &t, CTX, &bobs()).is_ok());
    assert!(check_create(&local, &t, CTX, &carols()).is_err());
    let deep = alice_with(&[role_at(Depth::Deep)]);
    assert!(check_create(&deep, &t, CTX, &carols()).is_ok());
    assert!(check_create(&deep, &t, CTX, &daves()).is_err());
}

#[test]
fn create_for_another_owner_needs_the_assign_privilege() {
    let t = tree();
    let agent = alice_with(&[builtin(OMNICHANNEL_AGENT)]);
    assert!(check_create(&agent, &t, CTX, &alices()).is_ok());
    let denied = check_create(&agent, &t, CTX, &sales_teams()).unwrap_err();
    assert!(matches!(
        denied,
        Denied::MissingPrivilege {
            privilege: Assign,
            ..
        }
    ));
    let nobody = alice_with(&[]);
    assert!(matches!(
        check_create(&nobody, &t, CTX, &alices()).unwrap_err(),
        Denied::MissingPrivilege {
            privilege: Create,
            ..
        }
    ));
}

#[test]
fn assign_needs_assign_on_the_record() {
    let t = tree();
    let basic = alice_with(&[builtin(BASIC_USER)]);
    assert!(check_assign(&basic, &t, CTX, &alices(), &[]).is_ok());
    let denied = check_assign(&basic, &t, CTX, &bobs(), &[]).unwrap_err();
    assert!(denied.message().ends_with("AccessRights: AssignAccess"));
    let shared = [Share {
        principal_id: ALICE,
        is_team: false,
        rights: AccessRights::ASSIGN,
    }];
    assert!(check_assign(&basic, &t, CTX, &bobs(), &shared).is_ok());

    let supervisor = alice_with(&[builtin(OMNICHANNEL_SUPERVISOR)]);
    assert!(check_assign(&supervisor, &t, CTX, &carols(), &[]).is_ok());
    assert!(check_assign(&supervisor, &t, CTX, &daves(), &[]).is_err());

    let agent = alice_with(&[builtin(OMNICHANNEL_AGENT)]);
    assert_eq!(
        check_assign(&agent, &t, CTX, &alices(), &[])
            .unwrap_err()
            .code(),
        "0x80040220"
    );
}

#[test]
fn a_lookup_needs_append_on_the_record_and_append_to_on_the_target() {
    let t = tree();
    let conversation_in_sales = user_record(100, BOB, SALES);
    let conversation_in_support = user_record(101, DAVE, SUPPORT);
    let target = |record| AppendTarget {
        entity: LIVE_WORK_ITEM,
        record,
        shares: &[],
    };

    let agent = alice_with(&[builtin(OMNICHANNEL_AGENT)]);
    assert!(check_append(
        &agent,
        &t,
        CTX,
        &alices(),
        &[],
        target(&conversation_in_sales)
    )
    .is_ok());
    let denied = check_append(
        &agent,
        &t,
        CTX,
        &alices(),
        &[],
        target(&conversation_in_support),
    )
    .unwrap_err();
    assert_eq!(denied.code(), "0x80048306");
    assert!(denied.message().ends_with("AccessRights: AppendToAccess"));
    // Append on a context the agent does not own.
    let denied = check_append(
        &agent,
        &t,
        CTX,
        &bobs(),
        &[],
        target(&conversation_in_sales),
    )
    .unwrap_err();
    assert!(denied.message().ends_with("AccessRights: AppendAccess"));

    let basic = alice_with(&[builtin(BASIC_USER)]);
    let denied = check_append(
        &basic,
        &t,
        CTX,
        &alices(),
        &[],
        target(&conversation_in_sales),
    )
    .unwrap_err();
    assert!(matches!(
        &denied,
        Denied::MissingPrivilege { privilege: AppendTo, entity, .. } if entity == LIVE_WORK_ITEM
    ));

    let supervisor = alice_with(&[builtin(OMNICHANNEL_SUPERVISOR)]);
    let denied = check_append(
        &supervisor,
        &t,
        CTX,
        &alices(),
        &[],
        target(&conversation_in_sales),
    )
    .unwrap_err();
    assert!(matches!(
        &denied,
        Denied::MissingPrivilege { privilege: Append, entity, .. } if entity == CTX
    ));
}

#[test]
fn the_missing_privilege_message_is_dataverses() {
    let agent = alice_with(&[builtin(OMNICHANNEL_AGENT)]);
    let denied = check(&agent, &tree(), CTX, Delete, &alices(), &[]).unwrap_err();
    assert_eq!(denied.code(), "0x80040220");
    assert_eq!(denied.http_status(), 403);
    let prv_id = crate::security::privilege_id("prvDeletemsdyn_smsengagementctx");
    let otc = crate::security::object_type_code(CTX);
    // The agent role: 5 context privileges, Read on 4 system tables (users, teams, business
    // units, the organization), Read and AppendTo on conversations, Read on system views and
    // the 8 personal view privileges, Read on system jobs, and Read on transcripts and notes.
    assert_eq!(
        denied.message(),
        format!(
            "Principal user (Id=00000000-0000-0000-0000-0000000a11ce, type=8, roleCount=1, \
             privilegeCount=23, accessMode=0), is missing prvDeletemsdyn_smsengagementctx \
             privilege (Id={prv_id}) on OTC={otc} for entity 'msdyn_smsengagementctx'. \
             context.Caller=00000000-0000-0000-0000-0000000a11ce"
        )
    );
}

#[test]
fn the_access_check_message_is_dataverses() {
    let basic = alice_with(&[builtin(BASIC_USER)]);
    let otc = crate::security::object_type_code(CTX);
    let denied = check(&basic, &tree(), CTX, Write, &bobs(), &[]).unwrap_err();
    assert_eq!(denied.code(), "0x80048306");
    assert_eq!(
        denied.message(),
        format!(
            "SecLib::AccessCheckEx failed. Returned hr = -2147187962, \
             ObjectID: 00000000-0000-0000-0000-000000000002, \
             OwnerId: 00000000-0000-0000-0000-000000000b0b, OwnerIdType: 8 and \
             CallingUser: 00000000-0000-0000-0000-0000000a11ce. ObjectTypeCode: {otc}, \
             objectBusinessUnitId: 00000000-0000-0000-0000-000000000200, AccessRights: WriteAccess"
        )
    );
    let denied = check(&basic, &tree(), CTX, Read, &other_support_teams(), &[]).unwrap_err();
    assert!(denied.message().contains("OwnerIdType: 9 and"));
}

#[test]
fn read_scope_describes_the_readable_rows() {
    let t = tree();
    let principals = vec![ALICE, SALES_TEAM, SUPPORT_TEAM];
    let mut sorted = principals.clone();
    sorted.sort();
    let predicate = |units: Vec<Uuid>| RowScope::Predicate {
        owner_in: sorted.clone(),
        business_units_in: units,
        shared_with: sorted.clone(),
    };
    assert_eq!(read_scope(&alice_with(&[]), &t, CTX), RowScope::Nothing);
    assert_eq!(
        read_scope(&alice_with(&[builtin(SYSTEM_ADMINISTRATOR)]), &t, CTX),
        RowScope::All
    );
    assert_eq!(
        read_scope(&alice_with(&[role_at(Depth::Basic)]), &t, CTX),
        predicate(vec![])
    );
    assert_eq!(
        read_scope(&alice_with(&[role_at(Depth::Local)]), &t, CTX),
        predicate(vec![SALES])
    );
    assert_eq!(
        read_scope(&alice_with(&[role_at(Depth::Deep)]), &t, CTX),
        predicate(vec![SALES, NORTH])
    );
    // A Read privilege on another table is not one on this one.
    assert_eq!(
        read_scope(&alice_with(&[builtin(BASIC_USER)]), &t, LIVE_WORK_ITEM),
        RowScope::Nothing
    );
}

/// The read scope and the single-record decision must agree on every record, with and without
/// shares, for every kind of caller: the store's filtered queries show exactly what Retrieve
/// allows.
#[test]
fn read_scope_agrees_with_access_rights() {
    let t = tree();
    let mut team_local = Role::new(Uuid::from_u128(0x6003), "team local", SUPPORT);
    team_local.set(CTX, Read, Depth::Local);
    let team_roles = [team_local];
    let with_team_role = SecurityContext::build(
        ALICE,
        SALES,
        &[],
        &[Membership {
            team_id: SUPPORT_TEAM,
            business_unit_id: SUPPORT,
            roles: &team_roles,
        }],
    );
    let contexts = [
        alice_with(&[]),
        alice_with(&[role_at(Depth::Basic)]),
        alice_with(&[role_at(Depth::Local)]),
        alice_with(&[role_at(Depth::Deep)]),
        alice_with(&[role_at(Depth::Global)]),
        alice_with(&[builtin(OMNICHANNEL_AGENT)]),
        alice_with(&[builtin(OMNICHANNEL_SUPERVISOR)]),
        SecurityContext::build(CAROL, NORTH, &[role_at(Depth::Deep)], &[]),
        with_team_role,
    ];
    let share_sets: Vec<Vec<Share>> = vec![
        vec![],
        vec![Share {
            principal_id: ALICE,
            is_team: false,
            rights: AccessRights::READ,
        }],
        vec![Share {
            principal_id: SUPPORT_TEAM,
            is_team: true,
            rights: AccessRights::READ | AccessRights::WRITE,
        }],
        vec![Share {
            principal_id: ALICE,
            is_team: false,
            rights: AccessRights::WRITE,
        }],
        vec![Share {
            principal_id: BOB,
            is_team: false,
            rights: AccessRights::READ,
        }],
    ];
    for ctx in &contexts {
        let scope = read_scope(ctx, &t, CTX);
        for record in all_records() {
            for shares in &share_sets {
                let allowed =
                    access_rights(ctx, &t, CTX, &record, shares).contains(AccessRights::READ);
                assert_eq!(
                    scope.admits(&record, shares),
                    allowed,
                    "{scope:?} on {record:?} with {shares:?}"
                );
                assert_eq!(check(ctx, &t, CTX, Read, &record, shares).is_ok(), allowed);
            }
        }
    }
}

#[test]
fn impersonation_needs_the_privilege() {
    let real = alice_with(&[builtin(BASIC_USER)]);
    let target = SecurityContext::build(BOB, SALES, &[builtin(BASIC_USER)], &[]);
    let denied = impersonate(&real, target).unwrap_err();
    assert_eq!(denied.code(), "0x8004A110");
    assert_eq!(
        denied.message(),
        "User does not have the privilege to act on behalf another user."
    );
}

#[test]
fn impersonation_runs_as_the_target_with_the_intersection_of_privileges() {
    let t = tree();
    let admin = alice_with(&[builtin(SYSTEM_ADMINISTRATOR)]);
    let bob = SecurityContext::build(BOB, SALES, &[builtin(BASIC_USER)], &[]);
    let effective = impersonate(&admin, bob.clone()).unwrap();
    assert_eq!(effective.user_id, BOB);
    assert_eq!(effective.on_behalf_of, Some(ALICE));
    assert_eq!(effective.privileges, bob.privileges);
    assert!(check(&effective, &t, CTX, Write, &bobs(), &[]).is_ok());
    assert!(check(&effective, &t, CTX, Write, &alices(), &[]).is_err());
    assert!(!effective.can_act_on_behalf);

    // A delegate whose own depth is lower caps the target's.
    let mut delegate = Role::new(Uuid::from_u128(0x6004), "delegate", ROOT);
    delegate.set(CTX, Read, Depth::Local);
    delegate.act_on_behalf_of_another_user = true;
    let real = SecurityContext::build(DAVE, SUPPORT, &[delegate], &[]);
    let carol = SecurityContext::build(CAROL, NORTH, &[role_at(Depth::Global)], &[]);
    let effective = impersonate(&real, carol).unwrap();
    assert_eq!(effective.depth(CTX, Read), Depth::Local);
    assert_eq!(effective.depth(CTX, Write), Depth::None);
    // Local from Carol's unit (north), not from Dave's.
    assert!(check(&effective, &t, CTX, Read, &carols(), &[]).is_ok());
    assert!(check(&effective, &t, CTX, Read, &daves(), &[]).is_err());
    assert!(matches!(
        check(&effective, &t, CTX, Write, &carols(), &[]).unwrap_err(),
        Denied::MissingPrivilege {
            privilege: Write,
            ..
        }
    ));
}

#[test]
fn shared_rights_ignore_other_principals() {
    let ctx = alice_with(&[]);
    let shares = [
        Share {
            principal_id: ALICE,
            is_team: false,
            rights: AccessRights::READ,
        },
        Share {
            principal_id: SALES_TEAM,
            is_team: true,
            rights: AccessRights::SHARE,
        },
        Share {
            principal_id: BOB,
            is_team: false,
            rights: AccessRights::DELETE,
        },
        // A team id marked as a user does not match the team.
        Share {
            principal_id: SUPPORT_TEAM,
            is_team: false,
            rights: AccessRights::WRITE,
        },
    ];
    assert_eq!(
        shared_rights(&ctx, &shares),
        AccessRights::READ | AccessRights::SHARE
    );
}
