-- smsctx schema, version 7: views. `savedquery` holds the system views (organization-owned, the
-- defaults seeded on start), `userquery` the personal views (user-owned, under the row scope).

CREATE TABLE savedquery (
    savedqueryid       uuid PRIMARY KEY,
    description        text COLLATE "C",
    fetchxml           text COLLATE "C",
    isdefault          boolean,
    isquickfindquery   boolean,
    layoutxml          text COLLATE "C",
    name               text COLLATE "C",
    querytype          bigint,
    returnedtypecode   text COLLATE "C",
    statecode          bigint,
    statuscode         bigint,
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX savedquery_returnedtypecode ON savedquery (lower(returnedtypecode COLLATE "C"), querytype);

CREATE TABLE userquery (
    userqueryid        uuid PRIMARY KEY,
    description        text COLLATE "C",
    fetchxml           text COLLATE "C",
    layoutxml          text COLLATE "C",
    name               text COLLATE "C",
    ownerid            uuid,
    owneridtype        text COLLATE "C",
    querytype          bigint,
    returnedtypecode   text COLLATE "C",
    statecode          bigint,
    statuscode         bigint,
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
CREATE INDEX userquery_owner ON userquery (ownerid);
CREATE INDEX userquery_owningbusinessunit ON userquery (owningbusinessunit);
