-- smsctx schema, version 6: the organization table (metadata/organization.md), which holds the
-- one organisation of a store. The server seeds its row at first start; the Web API only reads it.

CREATE TABLE organization (
    organizationid     TEXT PRIMARY KEY,
    name               TEXT COLLATE NOCASE,
    languagecode       INTEGER,
    isdisabled         INTEGER,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
