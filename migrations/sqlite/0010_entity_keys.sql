-- smsctx schema, version 10: alternate keys that an administrator defines with
-- `POST EntityDefinitions(LogicalName='x')/Keys`. Each row is enforced by a unique index named
-- `smsctx_key_<table>_<key>` on the table's key columns, created and dropped with the row.

CREATE TABLE smsctx_entitykeys (
    entity        TEXT NOT NULL,
    logicalname   TEXT NOT NULL,
    schemaname    TEXT NOT NULL,
    displayname   TEXT NOT NULL,
    -- The key's columns in key order, comma-separated.
    keyattributes TEXT NOT NULL,
    PRIMARY KEY (entity, logicalname)
);
