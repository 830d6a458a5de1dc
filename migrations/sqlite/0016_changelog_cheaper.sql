-- smsctx schema, version 16: a cheaper change log on SQLite (issue 15: a logged write costs at
-- most 15 % more than an unlogged one).
--
-- - `seq` is the rowid without AUTOINCREMENT: a logged write no longer dirties the
--   `sqlite_sequence` page as well. SQLite gives a new row the largest `seq` plus one, so `seq`
--   stays never reused as long as the newest row is never deleted: the purge keeps it
--   (`purge_changes`), and the number AUTOINCREMENT had reached is kept by a placeholder row
--   (entity '', not audited, read by nothing but `max(seq)`) when that number's row was purged.
-- - An update's JSON holds only the columns it changed, old and new, and none of the four that
--   every update changes and the audit never shows (`versionnumber`, `modifiedon`,
--   `modifiedby`, `modifiedonbehalfby`): an update's audit detail lists only the changed
--   columns (Dataverse's AttributeAuditDetail), so the reader (`execute/audit.rs`, which
--   compares the two sides) gives the same answer for these rows as for the full rows written
--   before. A create and a delete still hold every column.
--
-- The triggers and the `audit` view read the table, so they are dropped and made again around
-- the copy; they are otherwise those of migration 15.

DROP VIEW audit;
DROP TRIGGER smsctx_changelog_ctx_i;
DROP TRIGGER smsctx_changelog_ctx_u;
DROP TRIGGER smsctx_changelog_ctx_d;
DROP TRIGGER smsctx_changelog_share_i;
DROP TRIGGER smsctx_changelog_share_u;
DROP TRIGGER smsctx_changelog_share_d;

CREATE TABLE smsctx_changelog_next (
    seq           INTEGER PRIMARY KEY,
    entity        TEXT NOT NULL,
    objectid      TEXT NOT NULL,
    action        INTEGER NOT NULL,
    operation     INTEGER NOT NULL,
    versionnumber INTEGER,
    userid        TEXT,
    callinguserid TEXT,
    createdon     INTEGER NOT NULL DEFAULT (unixepoch()),
    olddata       TEXT,
    newdata       TEXT,
    audited       INTEGER NOT NULL DEFAULT 1,
    unaudited     TEXT
);
INSERT INTO smsctx_changelog_next
    (seq, entity, objectid, action, operation, versionnumber, userid, callinguserid, createdon,
     olddata, newdata, audited, unaudited)
SELECT seq, entity, objectid, action, operation, versionnumber, userid, callinguserid,
    createdon, olddata, newdata, audited, unaudited
FROM smsctx_changelog;
INSERT INTO smsctx_changelog_next (seq, entity, objectid, action, operation, audited)
SELECT s.seq, '', '', 0, 0, 0 FROM sqlite_sequence s
WHERE s.name = 'smsctx_changelog'
  AND s.seq > (SELECT coalesce(max(seq), 0) FROM smsctx_changelog);
DROP TABLE smsctx_changelog;
ALTER TABLE smsctx_changelog_next RENAME TO smsctx_changelog;
CREATE INDEX smsctx_changelog_object ON smsctx_changelog (objectid, seq);

CREATE TRIGGER smsctx_changelog_ctx_i AFTER INSERT ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, userid, callinguserid, audited,
         unaudited, newdata)
    SELECT s.entity, NEW.msdyn_smsengagementctxid, 1, 1, NEW.versionnumber, NEW.modifiedby,
        NEW.modifiedonbehalfby, s.audited, s.unaudited,
        CASE WHEN s.audited THEN json_object('msdyn_smsengagementctxid', NEW.msdyn_smsengagementctxid,
            'importsequencenumber', NEW.importsequencenumber,
            'msdyn_countrycode', NEW.msdyn_countrycode,
            'msdyn_customerphonenumber', NEW.msdyn_customerphonenumber,
            'msdyn_liveworkitemid', NEW.msdyn_liveworkitemid, 'msdyn_name', NEW.msdyn_name,
            'msdyn_orgphonenumber', NEW.msdyn_orgphonenumber,
            'msdyn_smsengagementid', NEW.msdyn_smsengagementid,
            'msdyn_smsprovider', NEW.msdyn_smsprovider,
            'overriddencreatedon', NEW.overriddencreatedon, 'ownerid', NEW.ownerid,
            'owneridtype', NEW.owneridtype, 'statecode', NEW.statecode,
            'statuscode', NEW.statuscode,
            'timezoneruleversionnumber', NEW.timezoneruleversionnumber,
            'utcconversiontimezonecode', NEW.utcconversiontimezonecode,
            'createdby', NEW.createdby, 'createdon', NEW.createdon,
            'createdonbehalfby', NEW.createdonbehalfby, 'modifiedby', NEW.modifiedby,
            'modifiedon', NEW.modifiedon, 'modifiedonbehalfby', NEW.modifiedonbehalfby,
            'owningbusinessunit', NEW.owningbusinessunit, 'owningteam', NEW.owningteam,
            'owninguser', NEW.owninguser, 'versionnumber', NEW.versionnumber) END
    FROM smsctx_changelog_settings s
    WHERE s.entity = 'msdyn_smsengagementctx' AND s.logged;
END;

CREATE TRIGGER smsctx_changelog_ctx_u AFTER UPDATE ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, userid, callinguserid, audited,
         unaudited, olddata, newdata)
    SELECT s.entity, NEW.msdyn_smsengagementctxid,
        CASE
            WHEN OLD.statecode IS NOT NEW.statecode THEN
                CASE WHEN NEW.statecode = 0 THEN 4 ELSE 5 END
            WHEN OLD.ownerid IS NOT NEW.ownerid THEN 13
            ELSE 2
        END,
        2, NEW.versionnumber, NEW.modifiedby, NEW.modifiedonbehalfby, s.audited, s.unaudited,
        CASE WHEN s.audited THEN '{' || substr(
            CASE WHEN OLD.msdyn_smsengagementctxid IS NOT NEW.msdyn_smsengagementctxid
                THEN ',"msdyn_smsengagementctxid":' || json_quote(OLD.msdyn_smsengagementctxid) ELSE '' END ||
            CASE WHEN OLD.importsequencenumber IS NOT NEW.importsequencenumber
                THEN ',"importsequencenumber":' || json_quote(OLD.importsequencenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_countrycode IS NOT NEW.msdyn_countrycode
                THEN ',"msdyn_countrycode":' || json_quote(OLD.msdyn_countrycode) ELSE '' END ||
            CASE WHEN OLD.msdyn_customerphonenumber IS NOT NEW.msdyn_customerphonenumber
                THEN ',"msdyn_customerphonenumber":' || json_quote(OLD.msdyn_customerphonenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_liveworkitemid IS NOT NEW.msdyn_liveworkitemid
                THEN ',"msdyn_liveworkitemid":' || json_quote(OLD.msdyn_liveworkitemid) ELSE '' END ||
            CASE WHEN OLD.msdyn_name IS NOT NEW.msdyn_name
                THEN ',"msdyn_name":' || json_quote(OLD.msdyn_name) ELSE '' END ||
            CASE WHEN OLD.msdyn_orgphonenumber IS NOT NEW.msdyn_orgphonenumber
                THEN ',"msdyn_orgphonenumber":' || json_quote(OLD.msdyn_orgphonenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_smsengagementid IS NOT NEW.msdyn_smsengagementid
                THEN ',"msdyn_smsengagementid":' || json_quote(OLD.msdyn_smsengagementid) ELSE '' END ||
            CASE WHEN OLD.msdyn_smsprovider IS NOT NEW.msdyn_smsprovider
                THEN ',"msdyn_smsprovider":' || json_quote(OLD.msdyn_smsprovider) ELSE '' END ||
            CASE WHEN OLD.overriddencreatedon IS NOT NEW.overriddencreatedon
                THEN ',"overriddencreatedon":' || json_quote(OLD.overriddencreatedon) ELSE '' END ||
            CASE WHEN OLD.ownerid IS NOT NEW.ownerid
                THEN ',"ownerid":' || json_quote(OLD.ownerid) ELSE '' END ||
            CASE WHEN OLD.owneridtype IS NOT NEW.owneridtype
                THEN ',"owneridtype":' || json_quote(OLD.owneridtype) ELSE '' END ||
            CASE WHEN OLD.statecode IS NOT NEW.statecode
                THEN ',"statecode":' || json_quote(OLD.statecode) ELSE '' END ||
            CASE WHEN OLD.statuscode IS NOT NEW.statuscode
                THEN ',"statuscode":' || json_quote(OLD.statuscode) ELSE '' END ||
            CASE WHEN OLD.timezoneruleversionnumber IS NOT NEW.timezoneruleversionnumber
                THEN ',"timezoneruleversionnumber":' || json_quote(OLD.timezoneruleversionnumber) ELSE '' END ||
            CASE WHEN OLD.utcconversiontimezonecode IS NOT NEW.utcconversiontimezonecode
                THEN ',"utcconversiontimezonecode":' || json_quote(OLD.utcconversiontimezonecode) ELSE '' END ||
            CASE WHEN OLD.createdby IS NOT NEW.createdby
                THEN ',"createdby":' || json_quote(OLD.createdby) ELSE '' END ||
            CASE WHEN OLD.createdon IS NOT NEW.createdon
                THEN ',"createdon":' || json_quote(OLD.createdon) ELSE '' END ||
            CASE WHEN OLD.createdonbehalfby IS NOT NEW.createdonbehalfby
                THEN ',"createdonbehalfby":' || json_quote(OLD.createdonbehalfby) ELSE '' END ||
            CASE WHEN OLD.owningbusinessunit IS NOT NEW.owningbusinessunit
                THEN ',"owningbusinessunit":' || json_quote(OLD.owningbusinessunit) ELSE '' END ||
            CASE WHEN OLD.owningteam IS NOT NEW.owningteam
                THEN ',"owningteam":' || json_quote(OLD.owningteam) ELSE '' END ||
            CASE WHEN OLD.owninguser IS NOT NEW.owninguser
                THEN ',"owninguser":' || json_quote(OLD.owninguser) ELSE '' END,
            2) || '}' END,
        CASE WHEN s.audited THEN '{' || substr(
            CASE WHEN OLD.msdyn_smsengagementctxid IS NOT NEW.msdyn_smsengagementctxid
                THEN ',"msdyn_smsengagementctxid":' || json_quote(NEW.msdyn_smsengagementctxid) ELSE '' END ||
            CASE WHEN OLD.importsequencenumber IS NOT NEW.importsequencenumber
                THEN ',"importsequencenumber":' || json_quote(NEW.importsequencenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_countrycode IS NOT NEW.msdyn_countrycode
                THEN ',"msdyn_countrycode":' || json_quote(NEW.msdyn_countrycode) ELSE '' END ||
            CASE WHEN OLD.msdyn_customerphonenumber IS NOT NEW.msdyn_customerphonenumber
                THEN ',"msdyn_customerphonenumber":' || json_quote(NEW.msdyn_customerphonenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_liveworkitemid IS NOT NEW.msdyn_liveworkitemid
                THEN ',"msdyn_liveworkitemid":' || json_quote(NEW.msdyn_liveworkitemid) ELSE '' END ||
            CASE WHEN OLD.msdyn_name IS NOT NEW.msdyn_name
                THEN ',"msdyn_name":' || json_quote(NEW.msdyn_name) ELSE '' END ||
            CASE WHEN OLD.msdyn_orgphonenumber IS NOT NEW.msdyn_orgphonenumber
                THEN ',"msdyn_orgphonenumber":' || json_quote(NEW.msdyn_orgphonenumber) ELSE '' END ||
            CASE WHEN OLD.msdyn_smsengagementid IS NOT NEW.msdyn_smsengagementid
                THEN ',"msdyn_smsengagementid":' || json_quote(NEW.msdyn_smsengagementid) ELSE '' END ||
            CASE WHEN OLD.msdyn_smsprovider IS NOT NEW.msdyn_smsprovider
                THEN ',"msdyn_smsprovider":' || json_quote(NEW.msdyn_smsprovider) ELSE '' END ||
            CASE WHEN OLD.overriddencreatedon IS NOT NEW.overriddencreatedon
                THEN ',"overriddencreatedon":' || json_quote(NEW.overriddencreatedon) ELSE '' END ||
            CASE WHEN OLD.ownerid IS NOT NEW.ownerid
                THEN ',"ownerid":' || json_quote(NEW.ownerid) ELSE '' END ||
            CASE WHEN OLD.owneridtype IS NOT NEW.owneridtype
                THEN ',"owneridtype":' || json_quote(NEW.owneridtype) ELSE '' END ||
            CASE WHEN OLD.statecode IS NOT NEW.statecode
                THEN ',"statecode":' || json_quote(NEW.statecode) ELSE '' END ||
            CASE WHEN OLD.statuscode IS NOT NEW.statuscode
                THEN ',"statuscode":' || json_quote(NEW.statuscode) ELSE '' END ||
            CASE WHEN OLD.timezoneruleversionnumber IS NOT NEW.timezoneruleversionnumber
                THEN ',"timezoneruleversionnumber":' || json_quote(NEW.timezoneruleversionnumber) ELSE '' END ||
            CASE WHEN OLD.utcconversiontimezonecode IS NOT NEW.utcconversiontimezonecode
                THEN ',"utcconversiontimezonecode":' || json_quote(NEW.utcconversiontimezonecode) ELSE '' END ||
            CASE WHEN OLD.createdby IS NOT NEW.createdby
                THEN ',"createdby":' || json_quote(NEW.createdby) ELSE '' END ||
            CASE WHEN OLD.createdon IS NOT NEW.createdon
                THEN ',"createdon":' || json_quote(NEW.createdon) ELSE '' END ||
            CASE WHEN OLD.createdonbehalfby IS NOT NEW.createdonbehalfby
                THEN ',"createdonbehalfby":' || json_quote(NEW.createdonbehalfby) ELSE '' END ||
            CASE WHEN OLD.owningbusinessunit IS NOT NEW.owningbusinessunit
                THEN ',"owningbusinessunit":' || json_quote(NEW.owningbusinessunit) ELSE '' END ||
            CASE WHEN OLD.owningteam IS NOT NEW.owningteam
                THEN ',"owningteam":' || json_quote(NEW.owningteam) ELSE '' END ||
            CASE WHEN OLD.owninguser IS NOT NEW.owninguser
                THEN ',"owninguser":' || json_quote(NEW.owninguser) ELSE '' END,
            2) || '}' END
    FROM smsctx_changelog_settings s
    WHERE s.entity = 'msdyn_smsengagementctx' AND s.logged;
END;

CREATE TRIGGER smsctx_changelog_ctx_d AFTER DELETE ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, audited, unaudited, olddata)
    SELECT s.entity, OLD.msdyn_smsengagementctxid, 3, 3, OLD.versionnumber, s.audited,
        s.unaudited,
        CASE WHEN s.audited THEN json_object('msdyn_smsengagementctxid', OLD.msdyn_smsengagementctxid,
            'importsequencenumber', OLD.importsequencenumber,
            'msdyn_countrycode', OLD.msdyn_countrycode,
            'msdyn_customerphonenumber', OLD.msdyn_customerphonenumber,
            'msdyn_liveworkitemid', OLD.msdyn_liveworkitemid, 'msdyn_name', OLD.msdyn_name,
            'msdyn_orgphonenumber', OLD.msdyn_orgphonenumber,
            'msdyn_smsengagementid', OLD.msdyn_smsengagementid,
            'msdyn_smsprovider', OLD.msdyn_smsprovider,
            'overriddencreatedon', OLD.overriddencreatedon, 'ownerid', OLD.ownerid,
            'owneridtype', OLD.owneridtype, 'statecode', OLD.statecode,
            'statuscode', OLD.statuscode,
            'timezoneruleversionnumber', OLD.timezoneruleversionnumber,
            'utcconversiontimezonecode', OLD.utcconversiontimezonecode,
            'createdby', OLD.createdby, 'createdon', OLD.createdon,
            'createdonbehalfby', OLD.createdonbehalfby, 'modifiedby', OLD.modifiedby,
            'modifiedon', OLD.modifiedon, 'modifiedonbehalfby', OLD.modifiedonbehalfby,
            'owningbusinessunit', OLD.owningbusinessunit, 'owningteam', OLD.owningteam,
            'owninguser', OLD.owninguser, 'versionnumber', OLD.versionnumber) END
    FROM smsctx_changelog_settings s
    WHERE s.entity = 'msdyn_smsengagementctx' AND s.logged;
END;

-- A share change is a change of the shared row: it may become readable or unreadable to
-- someone, so a delta shows it again (or shows it removed).
CREATE TRIGGER smsctx_changelog_share_i AFTER INSERT ON principalobjectaccess
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, audited, newdata)
    SELECT s.entity, NEW.objectid, 14, 2, s.audited,
        CASE WHEN s.audited THEN json_object('principalid', NEW.principalid,
            'principaltypecode', NEW.principaltypecode, 'accessrightsmask',
            NEW.accessrightsmask) END
    FROM smsctx_changelog_settings s
    WHERE s.entity = NEW.objecttypecode AND s.logged;
END;

CREATE TRIGGER smsctx_changelog_share_u AFTER UPDATE ON principalobjectaccess
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, audited, olddata, newdata)
    SELECT s.entity, NEW.objectid, CASE WHEN NEW.accessrightsmask = 0 THEN 49 ELSE 48 END, 2,
        s.audited,
        CASE WHEN s.audited THEN json_object('principalid', OLD.principalid,
            'principaltypecode', OLD.principaltypecode, 'accessrightsmask',
            OLD.accessrightsmask) END,
        CASE WHEN s.audited THEN json_object('principalid', NEW.principalid,
            'principaltypecode', NEW.principaltypecode, 'accessrightsmask',
            NEW.accessrightsmask) END
    FROM smsctx_changelog_settings s
    WHERE s.entity = NEW.objecttypecode AND s.logged;
END;

CREATE TRIGGER smsctx_changelog_share_d AFTER DELETE ON principalobjectaccess
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, audited, olddata)
    SELECT s.entity, OLD.objectid, 49, 2, s.audited,
        CASE WHEN s.audited THEN json_object('principalid', OLD.principalid,
            'principaltypecode', OLD.principaltypecode, 'accessrightsmask',
            OLD.accessrightsmask) END
    FROM smsctx_changelog_settings s
    WHERE s.entity = OLD.objecttypecode AND s.logged;
END;

CREATE VIEW audit AS
SELECT printf('00000000-0000-0000-0000-%012x', seq) AS auditid, action, operation, objectid,
    entity AS objecttypecode, userid, callinguserid, createdon
FROM smsctx_changelog
WHERE audited = 1;
