-- smsctx schema, version 3: the security model's tables (roles and their privileges, role
-- assignments, team membership, shares) and the index the row scope of RetrieveMultiple uses.

CREATE TABLE role (
    roleid             TEXT PRIMARY KEY,
    businessunitid     TEXT,
    name               TEXT COLLATE NOCASE,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX role_businessunit ON role (businessunitid);

CREATE TABLE roleprivileges (
    roleprivilegeid    TEXT PRIMARY KEY,
    privilegedepthmask INTEGER,
    privilegeid        TEXT,
    roleid             TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX roleprivileges_role ON roleprivileges (roleid);

CREATE TABLE systemuserroles (
    systemuserroleid TEXT PRIMARY KEY,
    roleid           TEXT,
    systemuserid     TEXT,
    versionnumber    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX systemuserroles_pair ON systemuserroles (systemuserid, roleid);

CREATE TABLE teamroles (
    teamroleid    TEXT PRIMARY KEY,
    roleid        TEXT,
    teamid        TEXT,
    versionnumber INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX teamroles_pair ON teamroles (teamid, roleid);

CREATE TABLE teammembership (
    teammembershipid TEXT PRIMARY KEY,
    systemuserid     TEXT,
    teamid           TEXT,
    versionnumber    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX teammembership_pair ON teammembership (systemuserid, teamid);
CREATE INDEX teammembership_team ON teammembership (teamid);

CREATE TABLE principalobjectaccess (
    principalobjectaccessid TEXT PRIMARY KEY,
    accessrightsmask        INTEGER,
    objectid                TEXT,
    objecttypecode          TEXT COLLATE NOCASE,
    principalid             TEXT,
    principaltypecode       TEXT COLLATE NOCASE,
    versionnumber           INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX principalobjectaccess_pair ON principalobjectaccess (objectid, principalid);
CREATE INDEX principalobjectaccess_principal ON principalobjectaccess (principalid, objectid, accessrightsmask);

CREATE INDEX msdyn_smsengagementctx_owningbusinessunit ON msdyn_smsengagementctx (owningbusinessunit);
CREATE INDEX msdyn_ocliveworkitem_owningbusinessunit ON msdyn_ocliveworkitem (owningbusinessunit);
