-- smsctx schema, version 15: the audit and change-tracking settings, and the audit table.
--
-- Dataverse audits a change when the organisation's `isauditenabled`, the table's
-- `IsAuditEnabled` and (for a column's values) the column's `IsAuditEnabled` are all on, and
-- serves delta links for a table whose `ChangeTrackingEnabled` is on. The settings live here,
-- changed by an administrator through the Web API (organizations, EntityDefinitions):
-- - `organization.isauditenabled` (on: the history the change log kept before stays as it was);
-- - `smsctx_tablesettings`, one row per table the change log's triggers watch (the contexts):
--   its change tracking and its auditing. A table without a row has neither;
-- - `smsctx_columnaudit`, the columns whose auditing an administrator set (absent: on).
--
-- The triggers of migration 14 are replaced by ones that consult the settings in the writing
-- statement itself (`smsctx_changelog_settings`, one row per watched table, which triggers on
-- the settings keep equal to `smsctx_changelog_settings_now`, so a write reads one row by its
-- key rather than computing it): a change is logged when the table tracks
-- changes or is audited, and its row carries `audited` (the old and new JSON only then, which
-- only the audit history reads) and `unaudited`, the columns whose auditing was off then (their
-- values are never served). A change of a table with neither setting writes nothing.
--
-- `audit` is the Web API's read-only `audits` table (metadata/audit.md): a view of the audited
-- rows of the change log, so there is one record of each change. Its `auditid` is the row's
-- `seq` as a GUID (`00000000-0000-0000-0000-<seq in hex>`), as RetrieveAuditDetails reads it.

ALTER TABLE organization ADD COLUMN isauditenabled INTEGER;
UPDATE organization SET isauditenabled = 1;

CREATE TABLE smsctx_tablesettings (
    entity                TEXT PRIMARY KEY,
    changetrackingenabled INTEGER NOT NULL,
    isauditenabled        INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO smsctx_tablesettings (entity, changetrackingenabled, isauditenabled)
VALUES ('msdyn_smsengagementctx', 1, 1);

CREATE TABLE smsctx_columnaudit (
    entity         TEXT NOT NULL,
    attribute      TEXT NOT NULL,
    isauditenabled INTEGER NOT NULL,
    PRIMARY KEY (entity, attribute)
) WITHOUT ROWID;

-- What the triggers need of the settings, per watched table.
CREATE VIEW smsctx_changelog_settings_now AS
SELECT entity, audited, changetrackingenabled OR audited AS logged, unaudited
FROM (SELECT t.entity, t.changetrackingenabled,
          t.isauditenabled AND coalesce((SELECT isauditenabled FROM organization LIMIT 1), 1)
              AS audited,
          (SELECT group_concat(c.attribute, ',') FROM smsctx_columnaudit c
           WHERE c.entity = t.entity AND c.isauditenabled = 0) AS unaudited
      FROM smsctx_tablesettings t);

CREATE TABLE smsctx_changelog_settings (
    entity    TEXT PRIMARY KEY,
    audited   INTEGER NOT NULL,
    logged    INTEGER NOT NULL,
    unaudited TEXT
) WITHOUT ROWID;
INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;

CREATE TRIGGER smsctx_changelog_settings_t AFTER UPDATE ON smsctx_tablesettings
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;
CREATE TRIGGER smsctx_changelog_settings_ci AFTER INSERT ON smsctx_columnaudit
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;
CREATE TRIGGER smsctx_changelog_settings_cu AFTER UPDATE ON smsctx_columnaudit
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;
CREATE TRIGGER smsctx_changelog_settings_cd AFTER DELETE ON smsctx_columnaudit
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;
CREATE TRIGGER smsctx_changelog_settings_oi AFTER INSERT ON organization
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;
CREATE TRIGGER smsctx_changelog_settings_ou AFTER UPDATE OF isauditenabled ON organization
BEGIN
    DELETE FROM smsctx_changelog_settings;
    INSERT INTO smsctx_changelog_settings SELECT * FROM smsctx_changelog_settings_now;
END;

ALTER TABLE smsctx_changelog ADD COLUMN audited INTEGER NOT NULL DEFAULT 1;
ALTER TABLE smsctx_changelog ADD COLUMN unaudited TEXT;
-- Cheaper writes: one writer thread commits every SQLite write, so `seq` order is creation
-- order, the purge deletes the oldest rows by `seq` and a delta reads a `seq` range; neither
-- needs these indexes (PostgreSQL keeps its own, ordered by transaction).
DROP INDEX smsctx_changelog_entity_seq;
DROP INDEX smsctx_changelog_createdon;

DROP TRIGGER smsctx_changelog_ctx_i;
DROP TRIGGER smsctx_changelog_ctx_u;
DROP TRIGGER smsctx_changelog_ctx_d;
DROP TRIGGER smsctx_changelog_share_i;
DROP TRIGGER smsctx_changelog_share_u;
DROP TRIGGER smsctx_changelog_share_d;

CREATE TRIGGER smsctx_changelog_ctx_i AFTER INSERT ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, userid, callinguserid, audited,
         unaudited, newdata)
    SELECT s.entity, NEW.msdyn_smsengagementctxid, 1, 1, NEW.versionnumber, NEW.modifiedby,
        NEW.modifiedonbehalfby, s.audited, s.unaudited,
        CASE WHEN s.audited THEN json_object('msdyn_smsengagementctxid', NEW.msdyn_smsengagementctxid,
            'importsequencenumber', NEW.importsequencenumber, 'msdyn_countrycode',
            NEW.msdyn_countrycode, 'msdyn_customerphonenumber',
            NEW.msdyn_customerphonenumber, 'msdyn_liveworkitemid', NEW.msdyn_liveworkitemid,
            'msdyn_name', NEW.msdyn_name, 'msdyn_orgphonenumber', NEW.msdyn_orgphonenumber,
            'msdyn_smsengagementid', NEW.msdyn_smsengagementid, 'msdyn_smsprovider',
            NEW.msdyn_smsprovider, 'overriddencreatedon', NEW.overriddencreatedon,
            'ownerid', NEW.ownerid, 'owneridtype', NEW.owneridtype, 'statecode',
            NEW.statecode, 'statuscode', NEW.statuscode, 'timezoneruleversionnumber',
            NEW.timezoneruleversionnumber, 'utcconversiontimezonecode',
            NEW.utcconversiontimezonecode, 'createdby', NEW.createdby, 'createdon',
            NEW.createdon, 'createdonbehalfby', NEW.createdonbehalfby, 'modifiedby',
            NEW.modifiedby, 'modifiedon', NEW.modifiedon, 'modifiedonbehalfby',
            NEW.modifiedonbehalfby, 'owningbusinessunit', NEW.owningbusinessunit,
            'owningteam', NEW.owningteam, 'owninguser', NEW.owninguser, 'versionnumber',
            NEW.versionnumber) END
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
        CASE WHEN s.audited THEN json_object('msdyn_smsengagementctxid', OLD.msdyn_smsengagementctxid,
            'importsequencenumber', OLD.importsequencenumber, 'msdyn_countrycode',
            OLD.msdyn_countrycode, 'msdyn_customerphonenumber',
            OLD.msdyn_customerphonenumber, 'msdyn_liveworkitemid', OLD.msdyn_liveworkitemid,
            'msdyn_name', OLD.msdyn_name, 'msdyn_orgphonenumber', OLD.msdyn_orgphonenumber,
            'msdyn_smsengagementid', OLD.msdyn_smsengagementid, 'msdyn_smsprovider',
            OLD.msdyn_smsprovider, 'overriddencreatedon', OLD.overriddencreatedon,
            'ownerid', OLD.ownerid, 'owneridtype', OLD.owneridtype, 'statecode',
            OLD.statecode, 'statuscode', OLD.statuscode, 'timezoneruleversionnumber',
            OLD.timezoneruleversionnumber, 'utcconversiontimezonecode',
            OLD.utcconversiontimezonecode, 'createdby', OLD.createdby, 'createdon',
            OLD.createdon, 'createdonbehalfby', OLD.createdonbehalfby, 'modifiedby',
            OLD.modifiedby, 'modifiedon', OLD.modifiedon, 'modifiedonbehalfby',
            OLD.modifiedonbehalfby, 'owningbusinessunit', OLD.owningbusinessunit,
            'owningteam', OLD.owningteam, 'owninguser', OLD.owninguser, 'versionnumber',
            OLD.versionnumber) END,
        CASE WHEN s.audited THEN json_object('msdyn_smsengagementctxid', NEW.msdyn_smsengagementctxid,
            'importsequencenumber', NEW.importsequencenumber, 'msdyn_countrycode',
            NEW.msdyn_countrycode, 'msdyn_customerphonenumber',
            NEW.msdyn_customerphonenumber, 'msdyn_liveworkitemid', NEW.msdyn_liveworkitemid,
            'msdyn_name', NEW.msdyn_name, 'msdyn_orgphonenumber', NEW.msdyn_orgphonenumber,
            'msdyn_smsengagementid', NEW.msdyn_smsengagementid, 'msdyn_smsprovider',
            NEW.msdyn_smsprovider, 'overriddencreatedon', NEW.overriddencreatedon,
            'ownerid', NEW.ownerid, 'owneridtype', NEW.owneridtype, 'statecode',
            NEW.statecode, 'statuscode', NEW.statuscode, 'timezoneruleversionnumber',
            NEW.timezoneruleversionnumber, 'utcconversiontimezonecode',
            NEW.utcconversiontimezonecode, 'createdby', NEW.createdby, 'createdon',
            NEW.createdon, 'createdonbehalfby', NEW.createdonbehalfby, 'modifiedby',
            NEW.modifiedby, 'modifiedon', NEW.modifiedon, 'modifiedonbehalfby',
            NEW.modifiedonbehalfby, 'owningbusinessunit', NEW.owningbusinessunit,
            'owningteam', NEW.owningteam, 'owninguser', NEW.owninguser, 'versionnumber',
            NEW.versionnumber) END
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
            'importsequencenumber', OLD.importsequencenumber, 'msdyn_countrycode',
            OLD.msdyn_countrycode, 'msdyn_customerphonenumber',
            OLD.msdyn_customerphonenumber, 'msdyn_liveworkitemid', OLD.msdyn_liveworkitemid,
            'msdyn_name', OLD.msdyn_name, 'msdyn_orgphonenumber', OLD.msdyn_orgphonenumber,
            'msdyn_smsengagementid', OLD.msdyn_smsengagementid, 'msdyn_smsprovider',
            OLD.msdyn_smsprovider, 'overriddencreatedon', OLD.overriddencreatedon,
            'ownerid', OLD.ownerid, 'owneridtype', OLD.owneridtype, 'statecode',
            OLD.statecode, 'statuscode', OLD.statuscode, 'timezoneruleversionnumber',
            OLD.timezoneruleversionnumber, 'utcconversiontimezonecode',
            OLD.utcconversiontimezonecode, 'createdby', OLD.createdby, 'createdon',
            OLD.createdon, 'createdonbehalfby', OLD.createdonbehalfby, 'modifiedby',
            OLD.modifiedby, 'modifiedon', OLD.modifiedon, 'modifiedonbehalfby',
            OLD.modifiedonbehalfby, 'owningbusinessunit', OLD.owningbusinessunit,
            'owningteam', OLD.owningteam, 'owninguser', OLD.owninguser, 'versionnumber',
            OLD.versionnumber) END
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
