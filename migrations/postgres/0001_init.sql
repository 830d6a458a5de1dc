-- smsctx schema for PostgreSQL, version 1: the tables of the built-in metadata pages, plus the
-- store's own. The same tables and columns as migrations/sqlite/0001_init.sql, in PostgreSQL's
-- types: Guids are uuid, datetimes timestamptz (whole seconds), booleans boolean, every integer
-- bigint (SQLite's integers are 64-bit). Text is COLLATE "C" and compared case-insensitively as
-- lower(x COLLATE "C") (ASCII folding, code point order: SQLite's NOCASE), so the indexes on
-- text columns are expression indexes on that same text.

CREATE TABLE smsctx_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- The row-version counter: one value for the whole store and every node, as Dataverse's
-- rowversion. CACHE 1 (the default) keeps values increasing in the order they are handed out
-- across sessions; a larger cache would give each connection its own block.
CREATE SEQUENCE smsctx_versionnumber AS bigint START WITH 1001 CACHE 1;

CREATE TABLE businessunit (
    businessunitid       uuid PRIMARY KEY,
    isdisabled           boolean,
    name                 text COLLATE "C",
    parentbusinessunitid uuid,
    createdby            uuid,
    createdon            timestamptz,
    createdonbehalfby    uuid,
    modifiedby           uuid,
    modifiedon           timestamptz,
    modifiedonbehalfby   uuid,
    versionnumber        bigint NOT NULL
);
CREATE INDEX businessunit_parent ON businessunit (parentbusinessunitid);

CREATE TABLE systemuser (
    systemuserid                 uuid PRIMARY KEY,
    azureactivedirectoryobjectid uuid,
    businessunitid               uuid,
    domainname                   text COLLATE "C",
    firstname                    text COLLATE "C",
    internalemailaddress         text COLLATE "C",
    isdisabled                   boolean,
    lastname                     text COLLATE "C",
    fullname                     text COLLATE "C",
    createdby                    uuid,
    createdon                    timestamptz,
    createdonbehalfby            uuid,
    modifiedby                   uuid,
    modifiedon                   timestamptz,
    modifiedonbehalfby           uuid,
    versionnumber                bigint NOT NULL
);
CREATE INDEX systemuser_aad ON systemuser (azureactivedirectoryobjectid);
CREATE INDEX systemuser_businessunit ON systemuser (businessunitid);

CREATE TABLE team (
    teamid             uuid PRIMARY KEY,
    businessunitid     uuid,
    description        text COLLATE "C",
    name               text COLLATE "C",
    teamtype           bigint,
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX team_businessunit ON team (businessunitid);

CREATE TABLE msdyn_ocliveworkitem (
    activityid         uuid PRIMARY KEY,
    description        text COLLATE "C",
    ownerid            uuid,
    owneridtype        text COLLATE "C",
    statecode          bigint,
    statuscode         bigint,
    subject            text COLLATE "C",
    owningbusinessunit uuid,
    owningteam         uuid,
    owninguser         uuid,
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX msdyn_ocliveworkitem_owner ON msdyn_ocliveworkitem (ownerid);

CREATE TABLE msdyn_smsengagementctx (
    msdyn_smsengagementctxid  uuid PRIMARY KEY,
    importsequencenumber      bigint,
    msdyn_countrycode         text COLLATE "C",
    msdyn_customerphonenumber text COLLATE "C",
    msdyn_liveworkitemid      uuid,
    msdyn_name                text COLLATE "C",
    msdyn_orgphonenumber      text COLLATE "C",
    msdyn_smsengagementid     text COLLATE "C",
    msdyn_smsprovider         bigint,
    overriddencreatedon       timestamptz,
    ownerid                   uuid,
    owneridtype               text COLLATE "C",
    statecode                 bigint,
    statuscode                bigint,
    timezoneruleversionnumber bigint,
    utcconversiontimezonecode bigint,
    createdby                 uuid,
    createdon                 timestamptz,
    createdonbehalfby         uuid,
    modifiedby                uuid,
    modifiedon                timestamptz,
    modifiedonbehalfby        uuid,
    owningbusinessunit        uuid,
    owningteam                uuid,
    owninguser                uuid,
    versionnumber             bigint NOT NULL
);
-- "The active context for this org number and this customer number": the phone-pair filter
-- compares lower(column COLLATE "C"), so the index holds exactly that.
CREATE INDEX msdyn_smsengagementctx_phones ON msdyn_smsengagementctx (
    lower(msdyn_orgphonenumber COLLATE "C"),
    lower(msdyn_customerphonenumber COLLATE "C"),
    statecode
);
CREATE INDEX msdyn_smsengagementctx_conversation ON msdyn_smsengagementctx (msdyn_liveworkitemid);
CREATE INDEX msdyn_smsengagementctx_owner ON msdyn_smsengagementctx (ownerid);
CREATE INDEX msdyn_smsengagementctx_state ON msdyn_smsengagementctx (statecode);
