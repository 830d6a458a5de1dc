-- smsctx schema, version 12: system jobs. `asyncoperation` holds the BulkDelete jobs (user-owned,
-- read under the row scope; only the server writes them). The worker looks for unfinished jobs
-- by state, oldest first.

CREATE TABLE asyncoperation (
    asyncoperationid   uuid PRIMARY KEY,
    name               text COLLATE "C",
    operationtype      bigint,
    statecode          bigint,
    statuscode         bigint,
    message            text COLLATE "C",
    friendlymessage    text COLLATE "C",
    errorcode          bigint,
    data               text COLLATE "C",
    hostid             text COLLATE "C",
    startedon          timestamptz,
    completedon        timestamptz,
    successcount       bigint,
    failurecount       bigint,
    ownerid            uuid,
    owneridtype        text COLLATE "C",
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
CREATE INDEX asyncoperation_owner ON asyncoperation (ownerid);
CREATE INDEX asyncoperation_owningbusinessunit ON asyncoperation (owningbusinessunit);
CREATE INDEX asyncoperation_state ON asyncoperation (statecode, createdon);
