-- smsctx schema, version 7: views. `savedquery` holds the system views (organization-owned, the
-- defaults seeded on start), `userquery` the personal views (user-owned, under the row scope).

CREATE TABLE savedquery (
    savedqueryid       TEXT PRIMARY KEY,
    description        TEXT COLLATE NOCASE,
    fetchxml           TEXT COLLATE NOCASE,
    isdefault          INTEGER,
    isquickfindquery   INTEGER,
    layoutxml          TEXT COLLATE NOCASE,
    name               TEXT COLLATE NOCASE,
    querytype          INTEGER,
    returnedtypecode   TEXT COLLATE NOCASE,
    statecode          INTEGER,
    statuscode         INTEGER,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX savedquery_returnedtypecode ON savedquery (returnedtypecode, querytype);

CREATE TABLE userquery (
    userqueryid        TEXT PRIMARY KEY,
    description        TEXT COLLATE NOCASE,
    fetchxml           TEXT COLLATE NOCASE,
    layoutxml          TEXT COLLATE NOCASE,
    name               TEXT COLLATE NOCASE,
    ownerid            TEXT,
    owneridtype        TEXT,
    querytype          INTEGER,
    returnedtypecode   TEXT COLLATE NOCASE,
    statecode          INTEGER,
    statuscode         INTEGER,
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
CREATE INDEX userquery_owner ON userquery (ownerid);
CREATE INDEX userquery_owningbusinessunit ON userquery (owningbusinessunit);
