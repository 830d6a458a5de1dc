-- smsctx schema, version 3: the security model's tables (roles and their privileges, role
-- assignments, team membership, shares) and the index the row scope of RetrieveMultiple uses.

CREATE TABLE role (
    roleid             uuid PRIMARY KEY,
    businessunitid     uuid,
    name               text COLLATE "C",
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX role_businessunit ON role (businessunitid);

CREATE TABLE roleprivileges (
    roleprivilegeid    uuid PRIMARY KEY,
    privilegedepthmask bigint,
    privilegeid        uuid,
    roleid             uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX roleprivileges_role ON roleprivileges (roleid);

CREATE TABLE systemuserroles (
    systemuserroleid uuid PRIMARY KEY,
    roleid           uuid,
    systemuserid     uuid,
    versionnumber    bigint NOT NULL
);
CREATE UNIQUE INDEX systemuserroles_pair ON systemuserroles (systemuserid, roleid);

CREATE TABLE teamroles (
    teamroleid    uuid PRIMARY KEY,
    roleid        uuid,
    teamid        uuid,
    versionnumber bigint NOT NULL
);
CREATE UNIQUE INDEX teamroles_pair ON teamroles (teamid, roleid);

CREATE TABLE teammembership (
    teammembershipid uuid PRIMARY KEY,
    systemuserid     uuid,
    teamid           uuid,
    versionnumber    bigint NOT NULL
);
CREATE UNIQUE INDEX teammembership_pair ON teammembership (systemuserid, teamid);
CREATE INDEX teammembership_team ON teammembership (teamid);

CREATE TABLE principalobjectaccess (
    principalobjectaccessid uuid PRIMARY KEY,
    accessrightsmask        bigint,
    objectid                uuid,
    objecttypecode          text COLLATE "C",
    principalid             uuid,
    principaltypecode       text COLLATE "C",
    versionnumber           bigint NOT NULL
);
CREATE UNIQUE INDEX principalobjectaccess_pair ON principalobjectaccess (objectid, principalid);
CREATE INDEX principalobjectaccess_principal ON principalobjectaccess (principalid, objectid, accessrightsmask);

CREATE INDEX msdyn_smsengagementctx_owningbusinessunit ON msdyn_smsengagementctx (owningbusinessunit);
CREATE INDEX msdyn_ocliveworkitem_owningbusinessunit ON msdyn_ocliveworkitem (owningbusinessunit);
