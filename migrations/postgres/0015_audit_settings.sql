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
-- The trigger functions of migration 14 are replaced by ones that consult the settings in the
-- writing statement itself (`smsctx_changelog_settings`): a change is logged when the table
-- tracks changes or is audited, and its row carries `audited` (the old and new JSON only then,
-- which only the audit history reads) and `unaudited`, the columns whose auditing was off then
-- (their values are never served). A change of a table with neither setting writes nothing.
--
-- `audit` is the Web API's read-only `audits` table (metadata/audit.md): a view of the audited
-- rows of the change log, so there is one record of each change. Its `auditid` is the row's
-- `seq` as a GUID (`00000000-0000-0000-0000-<seq in hex>`), as RetrieveAuditDetails reads it.

ALTER TABLE organization ADD COLUMN isauditenabled boolean;
UPDATE organization SET isauditenabled = true;

CREATE TABLE smsctx_tablesettings (
    entity                text PRIMARY KEY,
    changetrackingenabled boolean NOT NULL,
    isauditenabled        boolean NOT NULL
);
INSERT INTO smsctx_tablesettings (entity, changetrackingenabled, isauditenabled)
VALUES ('msdyn_smsengagementctx', true, true);

CREATE TABLE smsctx_columnaudit (
    entity         text NOT NULL,
    attribute      text NOT NULL,
    isauditenabled boolean NOT NULL,
    PRIMARY KEY (entity, attribute)
);

-- What the triggers need of the settings, per watched table.
CREATE VIEW smsctx_changelog_settings AS
SELECT entity, audited, changetrackingenabled OR audited AS logged, unaudited
FROM (SELECT t.entity, t.changetrackingenabled,
          t.isauditenabled
              AND coalesce((SELECT o.isauditenabled FROM organization o LIMIT 1), true)
              AS audited,
          (SELECT string_agg(c.attribute, ',') FROM smsctx_columnaudit c
           WHERE c.entity = t.entity AND NOT c.isauditenabled) AS unaudited
      FROM smsctx_tablesettings t) s;

ALTER TABLE smsctx_changelog ADD COLUMN audited boolean NOT NULL DEFAULT true;
ALTER TABLE smsctx_changelog ADD COLUMN unaudited text;

CREATE OR REPLACE FUNCTION smsctx_changelog_context() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    audited boolean;
    unaudited text;
BEGIN
    SELECT s.audited, s.unaudited INTO audited, unaudited FROM smsctx_changelog_settings s
    WHERE s.entity = TG_TABLE_NAME AND s.logged;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, versionnumber, userid, callinguserid,
             audited, unaudited, newdata)
        VALUES (TG_TABLE_NAME, NEW.msdyn_smsengagementctxid, 1, 1, NEW.versionnumber,
            NEW.modifiedby, NEW.modifiedonbehalfby, audited, unaudited,
            CASE WHEN audited THEN to_jsonb(NEW) END);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, versionnumber, userid, callinguserid,
             audited, unaudited, olddata, newdata)
        VALUES (TG_TABLE_NAME, NEW.msdyn_smsengagementctxid,
            CASE
                WHEN OLD.statecode IS DISTINCT FROM NEW.statecode THEN
                    CASE WHEN NEW.statecode = 0 THEN 4 ELSE 5 END
                WHEN OLD.ownerid IS DISTINCT FROM NEW.ownerid THEN 13
                ELSE 2
            END,
            2, NEW.versionnumber, NEW.modifiedby, NEW.modifiedonbehalfby, audited, unaudited,
            CASE WHEN audited THEN to_jsonb(OLD) END, CASE WHEN audited THEN to_jsonb(NEW) END);
    ELSE
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, versionnumber, audited, unaudited, olddata)
        VALUES (TG_TABLE_NAME, OLD.msdyn_smsengagementctxid, 3, 3, OLD.versionnumber, audited,
            unaudited, CASE WHEN audited THEN to_jsonb(OLD) END);
    END IF;
    RETURN NULL;
END
$$;

-- A share change is a change of the shared row: it may become readable or unreadable to
-- someone, so a delta shows it again (or shows it removed).
CREATE OR REPLACE FUNCTION smsctx_changelog_share() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    audited boolean;
    share jsonb;
    old_share jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT s.audited INTO audited FROM smsctx_changelog_settings s
        WHERE s.entity = OLD.objecttypecode AND s.logged;
    ELSE
        SELECT s.audited INTO audited FROM smsctx_changelog_settings s
        WHERE s.entity = NEW.objecttypecode AND s.logged;
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' AND audited THEN
        share := jsonb_build_object('principalid', NEW.principalid, 'principaltypecode',
            NEW.principaltypecode, 'accessrightsmask', NEW.accessrightsmask);
    END IF;
    IF TG_OP <> 'INSERT' AND audited THEN
        old_share := jsonb_build_object('principalid', OLD.principalid, 'principaltypecode',
            OLD.principaltypecode, 'accessrightsmask', OLD.accessrightsmask);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smsctx_changelog (entity, objectid, action, operation, audited, newdata)
        VALUES (NEW.objecttypecode, NEW.objectid, 14, 2, audited, share);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, audited, olddata, newdata)
        VALUES (NEW.objecttypecode, NEW.objectid,
            CASE WHEN NEW.accessrightsmask = 0 THEN 49 ELSE 48 END, 2, audited, old_share,
            share);
    ELSE
        INSERT INTO smsctx_changelog (entity, objectid, action, operation, audited, olddata)
        VALUES (OLD.objecttypecode, OLD.objectid, 49, 2, audited, old_share);
    END IF;
    RETURN NULL;
END
$$;

CREATE VIEW audit AS
SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(seq), 12, '0'))::uuid AS auditid, action,
    operation, objectid, entity AS objecttypecode, userid, callinguserid,
    to_timestamp(createdon) AS createdon
FROM smsctx_changelog
WHERE audited;
