-- smsctx schema, version 5: an index for each query shape people run (issue 16).
--
-- * each phone number alone: the customer number has its own index; the org number is the
--   leading column of the phone-pair index;
-- * the phone pair and state, in creation order: the SMS channel's "newest active context of
--   this pair" reads one index range and stops (replaces the (org, customer, state) index);
-- * the conversation, the owner and the state, each with the state or creation time after it:
--   the default views ("active", "mine") and the channel's lookups;
-- * createdon and modifiedon, with the primary id as the tie-breaker every ordering ends with,
--   so that a paging walk in either order reads the index instead of sorting the table.
-- Text columns are COLLATE NOCASE, so these indexes hold the same case-folded order the
-- comparisons use.

DROP INDEX msdyn_smsengagementctx_phones;
CREATE INDEX msdyn_smsengagementctx_phones ON msdyn_smsengagementctx
    (msdyn_orgphonenumber, msdyn_customerphonenumber, statecode, createdon);
CREATE INDEX msdyn_smsengagementctx_customer ON msdyn_smsengagementctx (msdyn_customerphonenumber);

DROP INDEX msdyn_smsengagementctx_conversation;
CREATE INDEX msdyn_smsengagementctx_conversation ON msdyn_smsengagementctx
    (msdyn_liveworkitemid, statecode);
DROP INDEX msdyn_smsengagementctx_owner;
CREATE INDEX msdyn_smsengagementctx_owner ON msdyn_smsengagementctx (ownerid, statecode);
DROP INDEX msdyn_smsengagementctx_state;
CREATE INDEX msdyn_smsengagementctx_state ON msdyn_smsengagementctx (statecode, createdon);

CREATE INDEX msdyn_smsengagementctx_createdon ON msdyn_smsengagementctx
    (createdon, msdyn_smsengagementctxid);
CREATE INDEX msdyn_smsengagementctx_modifiedon ON msdyn_smsengagementctx
    (modifiedon, msdyn_smsengagementctxid);

CREATE INDEX msdyn_ocliveworkitem_createdon ON msdyn_ocliveworkitem (createdon, activityid);
CREATE INDEX msdyn_ocliveworkitem_modifiedon ON msdyn_ocliveworkitem (modifiedon, activityid);
