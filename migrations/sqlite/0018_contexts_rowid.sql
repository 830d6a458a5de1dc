-- smsctx schema, version 18: the SMS engagement context table becomes a rowid table (issue 16:
-- a `createdon desc` page of 5,000 rows cost 38-63 ms on 1,000,000 rows, a durable create
-- touched about eight random pages).
--
-- As a WITHOUT ROWID table it was one b-tree on its text primary key, and SQLite keeps the
-- whole row in the interior cells of such a b-tree too: with rows of about 400 bytes a 4 KiB
-- page held nine of them, so 1,000,000 rows took a b-tree six levels deep with 10,167
-- interior pages (40 MB), far more than a reader's 2 MiB page cache. Every lookup by id, and
-- every row an index walk reached, read three to four pages from the file; every insert at a
-- random id split fat interior pages. SQLite's own guidance keeps WITHOUT ROWID to rows under
-- about a twentieth of a page. As a rowid table the rows sit in a b-tree keyed by an integer
-- (three levels, 229 interior pages for the same rows), a new row is appended at its end, and
-- the id is a unique index of its own. The rows are copied in creation order, as new ones
-- arrive, so a walk in `createdon` order reads neighbouring pages.
--
-- No view or trigger names the table (migration 17 moved the change log into the writer). Its
-- nine indexes are created again with the id as their last column: an index of a WITHOUT ROWID
-- table ends with the primary key without saying so, one of a rowid table ends with the rowid,
-- so without the id a filter in the default order (by id), such as the customer number's,
-- would sort its rows where it read them in order before.

CREATE TABLE smsctx_new_smsengagementctx (
    msdyn_smsengagementctxid  TEXT NOT NULL PRIMARY KEY,
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
);
INSERT INTO smsctx_new_smsengagementctx
    SELECT msdyn_smsengagementctxid, importsequencenumber, msdyn_countrycode,
           msdyn_customerphonenumber, msdyn_liveworkitemid, msdyn_name, msdyn_orgphonenumber,
           msdyn_smsengagementid, msdyn_smsprovider, overriddencreatedon, ownerid, owneridtype,
           statecode, statuscode, timezoneruleversionnumber, utcconversiontimezonecode,
           createdby, createdon, createdonbehalfby, modifiedby, modifiedon, modifiedonbehalfby,
           owningbusinessunit, owningteam, owninguser, versionnumber
    FROM msdyn_smsengagementctx
    ORDER BY createdon, msdyn_smsengagementctxid;
DROP TABLE msdyn_smsengagementctx;
ALTER TABLE smsctx_new_smsengagementctx RENAME TO msdyn_smsengagementctx;

CREATE INDEX msdyn_smsengagementctx_owningbusinessunit ON msdyn_smsengagementctx
    (owningbusinessunit, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_phones ON msdyn_smsengagementctx
    (msdyn_orgphonenumber, msdyn_customerphonenumber, statecode, createdon, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_customer ON msdyn_smsengagementctx
    (msdyn_customerphonenumber, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_conversation ON msdyn_smsengagementctx
    (msdyn_liveworkitemid, statecode, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_owner ON msdyn_smsengagementctx
    (ownerid, statecode, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_state ON msdyn_smsengagementctx
    (statecode, createdon, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_createdon ON msdyn_smsengagementctx
    (createdon, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_modifiedon ON msdyn_smsengagementctx
    (modifiedon, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_state_id ON msdyn_smsengagementctx
    (statecode, msdyn_smsengagementctxid);
