-- smsctx schema, version 9: what the security model relies on, enforced by the database.
--
-- An Entra object id names at most one user: a token's `oid` and `CallerObjectId` resolve to one
-- row (the uuid type has one spelling, so this is also case-insensitive).
-- (migrations/checks/0009_unique_object_ids.sql stops the migration first, naming them, if
-- existing users share one.)
DROP INDEX systemuser_aad;
CREATE UNIQUE INDEX systemuser_aad ON systemuser (azureactivedirectoryobjectid);

-- The business units form one tree: exactly one root (the unit without a parent), which never
-- gets one, and no unit is its own ancestor. Checked inside the writing transaction, after a
-- transaction-scoped advisory lock that serializes every change of the tree across nodes; each
-- statement of the function then reads the tree as committed (READ COMMITTED takes a snapshot
-- per statement), so two re-parentings racing to close a loop cannot both pass.
-- Messages that start with 'smsctx rule: ' are refusals for the client (400).
CREATE FUNCTION smsctx_businessunit_tree() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- "smsctxb" in ASCII: the tree's lock.
    PERFORM pg_advisory_xact_lock(32489964678969442);
    IF TG_OP = 'INSERT' THEN
        -- (Another root: the same root copied again by `smsctx migrate` is no second one.)
        IF NEW.parentbusinessunitid IS NULL
           AND EXISTS (SELECT 1 FROM businessunit
                       WHERE parentbusinessunitid IS NULL AND businessunitid <> NEW.businessunitid) THEN
            RAISE EXCEPTION 'smsctx rule: A business unit needs a parent business unit: only the root business unit has none.';
        END IF;
        RETURN NEW;
    END IF;
    IF (OLD.parentbusinessunitid IS NULL) <> (NEW.parentbusinessunitid IS NULL) THEN
        RAISE EXCEPTION 'smsctx rule: The root business unit cannot get a parent, and any other business unit keeps one.';
    END IF;
    IF NEW.parentbusinessunitid IS NOT NULL AND EXISTS (
        WITH RECURSIVE up(id) AS (
            SELECT NEW.parentbusinessunitid
            UNION
            SELECT b.parentbusinessunitid FROM businessunit b JOIN up ON b.businessunitid = up.id
            WHERE b.parentbusinessunitid IS NOT NULL
        )
        SELECT 1 FROM up WHERE id = NEW.businessunitid
    ) THEN
        RAISE EXCEPTION 'smsctx rule: This parent business unit would make a loop: a business unit cannot be under itself or under one of its own children.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER smsctx_businessunit_tree BEFORE INSERT OR UPDATE OF parentbusinessunitid
    ON businessunit FOR EACH ROW EXECUTE FUNCTION smsctx_businessunit_tree();
