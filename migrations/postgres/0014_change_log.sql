-- smsctx schema, version 14: the change log, the one record of every change to a tracked table,
-- from which change tracking (delta links) and the audit history are both served.
--
-- Every create, update (state change and assign included) and delete of a context, and every
-- share change of one (principalobjectaccess), inserts one row here, by trigger, in the writing
-- transaction itself: no path that writes the table can leave it out, and a rolled-back write
-- leaves no row.
--
-- Ordering by commit, not by clock: several nodes write concurrently, and `seq` (a sequence) is
-- drawn when a row is inserted, not when its transaction commits, so a transaction that draws
-- seq 10 can commit after one that drew seq 11. A reader that has seen 11 must still see 10
-- later. So each row also carries `txid`, its transaction's id (xid8, never wraps), and a delta
-- token is a whole snapshot (`pg_current_snapshot()`): the next delta returns exactly the rows
-- visible now that were not visible in the token's snapshot (`pg_visible_in_snapshot`), which
-- includes a transaction that was still in progress when the token was issued and committed
-- later, and never returns a row twice. Writers take no lock for it.
--
-- `action` is Dataverse's audit action (1 Create, 2 Update, 3 Delete, 4 Activate, 5
-- Deactivate, 13 Assign, 14 Share, 48 Modify Share, 49 Unshare), `operation` its audit
-- operation (1 Create, 2 Update, 3 Delete). `olddata`/`newdata` hold the row before and after
-- as JSON (the share row for share changes), `userid` who made the change and `callinguserid`
-- the signed-in caller when impersonating (the row's modifiedby and modifiedonbehalfby; for a
-- delete, the store fills them in the same transaction).

CREATE TABLE smsctx_changelog (
    seq           bigserial PRIMARY KEY,
    txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    entity        text NOT NULL,
    objectid      uuid NOT NULL,
    action        bigint NOT NULL,
    operation     bigint NOT NULL,
    versionnumber bigint,
    userid        uuid,
    callinguserid uuid,
    createdon     bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    olddata       jsonb,
    newdata       jsonb
);
CREATE INDEX smsctx_changelog_entity_txid ON smsctx_changelog (entity, txid);
CREATE INDEX smsctx_changelog_object ON smsctx_changelog (objectid, seq);
CREATE INDEX smsctx_changelog_createdon ON smsctx_changelog (createdon);

CREATE FUNCTION smsctx_changelog_context() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, versionnumber, userid, callinguserid, newdata)
        VALUES (TG_TABLE_NAME, NEW.msdyn_smsengagementctxid, 1, 1, NEW.versionnumber,
            NEW.modifiedby, NEW.modifiedonbehalfby, to_jsonb(NEW));
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO smsctx_changelog
            (entity, objectid, action, operation, versionnumber, userid, callinguserid, olddata,
             newdata)
        VALUES (TG_TABLE_NAME, NEW.msdyn_smsengagementctxid,
            CASE
                WHEN OLD.statecode IS DISTINCT FROM NEW.statecode THEN
                    CASE WHEN NEW.statecode = 0 THEN 4 ELSE 5 END
                WHEN OLD.ownerid IS DISTINCT FROM NEW.ownerid THEN 13
                ELSE 2
            END,
            2, NEW.versionnumber, NEW.modifiedby, NEW.modifiedonbehalfby, to_jsonb(OLD),
            to_jsonb(NEW));
    ELSE
        INSERT INTO smsctx_changelog (entity, objectid, action, operation, versionnumber, olddata)
        VALUES (TG_TABLE_NAME, OLD.msdyn_smsengagementctxid, 3, 3, OLD.versionnumber,
            to_jsonb(OLD));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER smsctx_changelog_context AFTER INSERT OR UPDATE OR DELETE
    ON msdyn_smsengagementctx
    FOR EACH ROW EXECUTE FUNCTION smsctx_changelog_context();

-- A share change is a change of the shared row: it may become readable or unreadable to
-- someone, so a delta shows it again (or shows it removed).
CREATE FUNCTION smsctx_changelog_share() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.objecttypecode = 'msdyn_smsengagementctx' THEN
            INSERT INTO smsctx_changelog (entity, objectid, action, operation, newdata)
            VALUES (NEW.objecttypecode, NEW.objectid, 14, 2,
                jsonb_build_object('principalid', NEW.principalid, 'principaltypecode',
                    NEW.principaltypecode, 'accessrightsmask', NEW.accessrightsmask));
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.objecttypecode = 'msdyn_smsengagementctx' THEN
            INSERT INTO smsctx_changelog (entity, objectid, action, operation, olddata, newdata)
            VALUES (NEW.objecttypecode, NEW.objectid,
                CASE WHEN NEW.accessrightsmask = 0 THEN 49 ELSE 48 END, 2,
                jsonb_build_object('principalid', OLD.principalid, 'principaltypecode',
                    OLD.principaltypecode, 'accessrightsmask', OLD.accessrightsmask),
                jsonb_build_object('principalid', NEW.principalid, 'principaltypecode',
                    NEW.principaltypecode, 'accessrightsmask', NEW.accessrightsmask));
        END IF;
    ELSIF OLD.objecttypecode = 'msdyn_smsengagementctx' THEN
        INSERT INTO smsctx_changelog (entity, objectid, action, operation, olddata)
        VALUES (OLD.objecttypecode, OLD.objectid, 49, 2,
            jsonb_build_object('principalid', OLD.principalid, 'principaltypecode',
                OLD.principaltypecode, 'accessrightsmask', OLD.accessrightsmask));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER smsctx_changelog_share AFTER INSERT OR UPDATE OR DELETE
    ON principalobjectaccess
    FOR EACH ROW EXECUTE FUNCTION smsctx_changelog_share();
