-- smsctx schema for PostgreSQL, version 5: an index for each query shape people run, as
-- migrations/sqlite/0005_query_indexes.sql. Text is compared as lower(x COLLATE "C"), so the
-- text columns are indexed as that same expression. An ordering ends with the primary id in
-- the direction of its last key (the id bare, as it is never NULL), and a descending key is
-- "DESC NULLS LAST": the time indexes are declared in that descending form, which a backward
-- scan reads as "ASC NULLS FIRST", so both directions of a paging walk read the index.

DROP INDEX msdyn_smsengagementctx_phones;
CREATE INDEX msdyn_smsengagementctx_phones ON msdyn_smsengagementctx (
    lower(msdyn_orgphonenumber COLLATE "C"),
    lower(msdyn_customerphonenumber COLLATE "C"),
    statecode,
    createdon DESC NULLS LAST,
    msdyn_smsengagementctxid DESC
);
CREATE INDEX msdyn_smsengagementctx_customer ON msdyn_smsengagementctx (
    lower(msdyn_customerphonenumber COLLATE "C")
);

DROP INDEX msdyn_smsengagementctx_conversation;
CREATE INDEX msdyn_smsengagementctx_conversation ON msdyn_smsengagementctx
    (msdyn_liveworkitemid, statecode);
DROP INDEX msdyn_smsengagementctx_owner;
CREATE INDEX msdyn_smsengagementctx_owner ON msdyn_smsengagementctx (ownerid, statecode);
DROP INDEX msdyn_smsengagementctx_state;
CREATE INDEX msdyn_smsengagementctx_state ON msdyn_smsengagementctx
    (statecode, createdon DESC NULLS LAST, msdyn_smsengagementctxid DESC);

CREATE INDEX msdyn_smsengagementctx_createdon ON msdyn_smsengagementctx
    (createdon DESC NULLS LAST, msdyn_smsengagementctxid DESC);
CREATE INDEX msdyn_smsengagementctx_modifiedon ON msdyn_smsengagementctx
    (modifiedon DESC NULLS LAST, msdyn_smsengagementctxid DESC);

CREATE INDEX msdyn_ocliveworkitem_createdon ON msdyn_ocliveworkitem
    (createdon DESC NULLS LAST, activityid DESC);
CREATE INDEX msdyn_ocliveworkitem_modifiedon ON msdyn_ocliveworkitem
    (modifiedon DESC NULLS LAST, activityid DESC);
