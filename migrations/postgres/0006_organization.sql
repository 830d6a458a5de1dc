-- smsctx schema, version 6: the organization table (metadata/organization.md), which holds the
-- one organisation of a store. The server seeds its row at first start; the Web API only reads it.

CREATE TABLE organization (
    organizationid     uuid PRIMARY KEY,
    name               text COLLATE "C",
    languagecode       bigint,
    isdisabled         boolean,
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
