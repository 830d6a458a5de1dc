-- smsctx schema, version 14: the change log, the one record of every change to a tracked table,
-- from which change tracking (delta links) and the audit history are both served.
--
-- Every create, update (state change and assign included) and delete of a context, and every
-- share change of one (principalobjectaccess), inserts one row here, by trigger, in the writing
-- transaction itself: no path that writes the table can leave it out, and a rolled-back write
-- leaves no row. One writer thread commits every SQLite write, so `seq` (AUTOINCREMENT: never
-- reused, even after the oldest rows are purged) orders the rows by commit: a reader that has
-- seen `seq` N has seen every change numbered below it.
--
-- `action` is Dataverse's audit action (1 Create, 2 Update, 3 Delete, 4 Activate, 5
-- Deactivate, 13 Assign, 14 Share, 48 Modify Share, 49 Unshare), `operation` its audit
-- operation (1 Create, 2 Update, 3 Delete). `olddata`/`newdata` hold the row before and after
-- as JSON (the share row for share changes), `userid` who made the change and `callinguserid`
-- the signed-in caller when impersonating (the row's modifiedby and modifiedonbehalfby; for a
-- delete, the store fills them in the same transaction).

CREATE TABLE smsctx_changelog (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    entity        TEXT NOT NULL,
    objectid      TEXT NOT NULL,
    action        INTEGER NOT NULL,
    operation     INTEGER NOT NULL,
    versionnumber INTEGER,
    userid        TEXT,
    callinguserid TEXT,
    createdon     INTEGER NOT NULL DEFAULT (unixepoch()),
    olddata       TEXT,
    newdata       TEXT
);
CREATE INDEX smsctx_changelog_entity_seq ON smsctx_changelog (entity, seq);
CREATE INDEX smsctx_changelog_object ON smsctx_changelog (objectid, seq);
CREATE INDEX smsctx_changelog_createdon ON smsctx_changelog (createdon);

CREATE TRIGGER smsctx_changelog_ctx_i AFTER INSERT ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, userid, callinguserid, newdata)
    VALUES ('msdyn_smsengagementctx', NEW.msdyn_smsengagementctxid, 1, 1, NEW.versionnumber,
        NEW.modifiedby, NEW.modifiedonbehalfby,
        json_object('msdyn_smsengagementctxid', NEW.msdyn_smsengagementctxid,
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
            NEW.versionnumber));
END;

CREATE TRIGGER smsctx_changelog_ctx_u AFTER UPDATE ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, userid, callinguserid, olddata,
         newdata)
    VALUES ('msdyn_smsengagementctx', NEW.msdyn_smsengagementctxid,
        CASE
            WHEN OLD.statecode IS NOT NEW.statecode THEN
                CASE WHEN NEW.statecode = 0 THEN 4 ELSE 5 END
            WHEN OLD.ownerid IS NOT NEW.ownerid THEN 13
            ELSE 2
        END,
        2, NEW.versionnumber, NEW.modifiedby, NEW.modifiedonbehalfby,
        json_object('msdyn_smsengagementctxid', OLD.msdyn_smsengagementctxid,
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
            OLD.versionnumber),
        json_object('msdyn_smsengagementctxid', NEW.msdyn_smsengagementctxid,
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
            NEW.versionnumber));
END;

CREATE TRIGGER smsctx_changelog_ctx_d AFTER DELETE ON msdyn_smsengagementctx
BEGIN
    INSERT INTO smsctx_changelog
        (entity, objectid, action, operation, versionnumber, olddata)
    VALUES ('msdyn_smsengagementctx', OLD.msdyn_smsengagementctxid, 3, 3, OLD.versionnumber,
        json_object('msdyn_smsengagementctxid', OLD.msdyn_smsengagementctxid,
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
            OLD.versionnumber));
END;

-- A share change is a change of the shared row: it may become readable or unreadable to
-- someone, so a delta shows it again (or shows it removed).
CREATE TRIGGER smsctx_changelog_share_i AFTER INSERT ON principalobjectaccess
WHEN NEW.objecttypecode = 'msdyn_smsengagementctx'
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, newdata)
    VALUES ('msdyn_smsengagementctx', NEW.objectid, 14, 2,
        json_object('principalid', NEW.principalid, 'principaltypecode', NEW.principaltypecode,
            'accessrightsmask', NEW.accessrightsmask));
END;

CREATE TRIGGER smsctx_changelog_share_u AFTER UPDATE ON principalobjectaccess
WHEN NEW.objecttypecode = 'msdyn_smsengagementctx'
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, olddata, newdata)
    VALUES ('msdyn_smsengagementctx', NEW.objectid,
        CASE WHEN NEW.accessrightsmask = 0 THEN 49 ELSE 48 END, 2,
        json_object('principalid', OLD.principalid, 'principaltypecode', OLD.principaltypecode,
            'accessrightsmask', OLD.accessrightsmask),
        json_object('principalid', NEW.principalid, 'principaltypecode', NEW.principaltypecode,
            'accessrightsmask', NEW.accessrightsmask));
END;

CREATE TRIGGER smsctx_changelog_share_d AFTER DELETE ON principalobjectaccess
WHEN OLD.objecttypecode = 'msdyn_smsengagementctx'
BEGIN
    INSERT INTO smsctx_changelog (entity, objectid, action, operation, olddata)
    VALUES ('msdyn_smsengagementctx', OLD.objectid, 49, 2,
        json_object('principalid', OLD.principalid, 'principaltypecode', OLD.principaltypecode,
            'accessrightsmask', OLD.accessrightsmask));
END;
