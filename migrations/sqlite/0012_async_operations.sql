-- smsctx schema, version 12: system jobs. `asyncoperation` holds the BulkDelete jobs (user-owned,
-- read under the row scope; only the server writes them). The worker looks for unfinished jobs
-- by state, oldest first.

CREATE TABLE asyncoperation (
    asyncoperationid   TEXT PRIMARY KEY,
    name               TEXT COLLATE NOCASE,
    operationtype      INTEGER,
    statecode          INTEGER,
    statuscode         INTEGER,
    message            TEXT COLLATE NOCASE,
    friendlymessage    TEXT COLLATE NOCASE,
    errorcode          INTEGER,
    data               TEXT COLLATE NOCASE,
    hostid             TEXT COLLATE NOCASE,
    startedon          INTEGER,
    completedon        INTEGER,
    successcount       INTEGER,
    failurecount       INTEGER,
    ownerid            TEXT,
    owneridtype        TEXT COLLATE NOCASE,
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
CREATE INDEX asyncoperation_owner ON asyncoperation (ownerid);
CREATE INDEX asyncoperation_owningbusinessunit ON asyncoperation (owningbusinessunit);
CREATE INDEX asyncoperation_state ON asyncoperation (statecode, createdon);
