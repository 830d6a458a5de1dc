-- smsctx schema, version 1: the tables of the built-in metadata pages, plus the store's own.
-- Guids are lowercase hyphenated TEXT, datetimes Unix seconds (UTC), booleans 0/1.
-- String columns compare case-insensitively, as Dataverse's do.

CREATE TABLE smsctx_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The row-version counter: one value for the whole store, as Dataverse's rowversion.
CREATE TABLE smsctx_sequence (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO smsctx_sequence (name, value) VALUES ('versionnumber', 1000);

CREATE TABLE businessunit (
    businessunitid       TEXT PRIMARY KEY,
    isdisabled           INTEGER,
    name                 TEXT COLLATE NOCASE,
    parentbusinessunitid TEXT,
    createdby            TEXT,
    createdon            INTEGER,
    createdonbehalfby    TEXT,
    modifiedby           TEXT,
    modifiedon           INTEGER,
    modifiedonbehalfby   TEXT,
    versionnumber        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX businessunit_parent ON businessunit (parentbusinessunitid);

CREATE TABLE systemuser (
    systemuserid                 TEXT PRIMARY KEY,
    azureactivedirectoryobjectid TEXT,
    businessunitid               TEXT,
    domainname                   TEXT COLLATE NOCASE,
    firstname                    TEXT COLLATE NOCASE,
    internalemailaddress         TEXT COLLATE NOCASE,
    isdisabled                   INTEGER,
    lastname                     TEXT COLLATE NOCASE,
    fullname                     TEXT COLLATE NOCASE,
    createdby                    TEXT,
    createdon                    INTEGER,
    createdonbehalfby            TEXT,
    modifiedby                   TEXT,
    modifiedon                   INTEGER,
    modifiedonbehalfby           TEXT,
    versionnumber                INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX systemuser_aad ON systemuser (azureactivedirectoryobjectid);
CREATE INDEX systemuser_businessunit ON systemuser (businessunitid);

CREATE TABLE team (
    teamid             TEXT PRIMARY KEY,
    businessunitid     TEXT,
    description        TEXT COLLATE NOCASE,
    name               TEXT COLLATE NOCASE,
    teamtype           INTEGER,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX team_businessunit ON team (businessunitid);

CREATE TABLE msdyn_ocliveworkitem (
    activityid         TEXT PRIMARY KEY,
    description        TEXT COLLATE NOCASE,
    ownerid            TEXT,
    owneridtype        TEXT,
    statecode          INTEGER,
    statuscode         INTEGER,
    subject            TEXT COLLATE NOCASE,
    owningbusinessunit TEXT,
    owningteam         TEXT,
    owninguser         TEXT,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX msdyn_ocliveworkitem_owner ON msdyn_ocliveworkitem (ownerid);

CREATE TABLE msdyn_smsengagementctx (
    msdyn_smsengagementctxid  TEXT PRIMARY KEY,
    importsequencenumber      INTEGER,
    msdyn_countrycode         TEXT COLLATE NOCASE,
    msdyn_customerphonenumber TEXT COLLATE NOCASE,
    msdyn_liveworkitemid      TEXT,
    msdyn_name                TEXT COLLATE NOCASE,
    msdyn_orgphonenumber      TEXT COLLATE NOCASE,
    msdyn_smsengagementid     TEXT COLLATE NOCASE,
    msdyn_smsprovider         INTEGER,
    overriddencreatedon       INTEGER,
    ownerid                   TEXT,
    owneridtype               TEXT,
    statecode                 INTEGER,
    statuscode                INTEGER,
    timezoneruleversionnumber INTEGER,
    utcconversiontimezonecode INTEGER,
    createdby                 TEXT,
    createdon                 INTEGER,
    createdonbehalfby         TEXT,
    modifiedby                TEXT,
    modifiedon                INTEGER,
    modifiedonbehalfby        TEXT,
    owningbusinessunit        TEXT,
    owningteam                TEXT,
    owninguser                TEXT,
    versionnumber             INTEGER NOT NULL
) WITHOUT ROWID;
-- "The active context for this org number and this customer number."
CREATE INDEX msdyn_smsengagementctx_phones
    ON msdyn_smsengagementctx (msdyn_orgphonenumber, msdyn_customerphonenumber, statecode);
CREATE INDEX msdyn_smsengagementctx_conversation ON msdyn_smsengagementctx (msdyn_liveworkitemid);
CREATE INDEX msdyn_smsengagementctx_owner ON msdyn_smsengagementctx (ownerid);
CREATE INDEX msdyn_smsengagementctx_state ON msdyn_smsengagementctx (statecode);
