-- smsctx schema, version 9: what the security model relies on, enforced by the database.
--
-- An Entra object id names at most one user: a token's `oid` and `CallerObjectId` resolve to one
-- row. Guids are stored in one spelling (lowercase, hyphenated), so the unique index is also
-- case-insensitive. (migrations/checks/0009_unique_object_ids.sql stops the migration first,
-- naming them, if existing users share one.)
DROP INDEX systemuser_aad;
CREATE UNIQUE INDEX systemuser_aad ON systemuser (azureactivedirectoryobjectid);

-- The business units form one tree: exactly one root (the unit without a parent), which never
-- gets one, and no unit is its own ancestor. Checked by triggers inside the writing
-- transaction; on SQLite every write runs on the one writer connection, so two re-parentings
-- cannot race past each other. Messages that start with 'smsctx rule: ' are refusals for the
-- client (400), not database faults.
CREATE TRIGGER smsctx_businessunit_one_root BEFORE INSERT ON businessunit
WHEN NEW.parentbusinessunitid IS NULL
 AND EXISTS (SELECT 1 FROM businessunit
             WHERE parentbusinessunitid IS NULL AND businessunitid <> NEW.businessunitid)
BEGIN
    SELECT RAISE(ABORT, 'smsctx rule: A business unit needs a parent business unit: only the root business unit has none.');
END;

CREATE TRIGGER smsctx_businessunit_root_stays BEFORE UPDATE OF parentbusinessunitid ON businessunit
WHEN (OLD.parentbusinessunitid IS NULL) <> (NEW.parentbusinessunitid IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'smsctx rule: The root business unit cannot get a parent, and any other business unit keeps one.');
END;

CREATE TRIGGER smsctx_businessunit_no_loop BEFORE UPDATE OF parentbusinessunitid ON businessunit
WHEN NEW.parentbusinessunitid IS NOT NULL
 AND NEW.businessunitid IN (
    WITH RECURSIVE up(id) AS (
        SELECT NEW.parentbusinessunitid
        UNION
        SELECT b.parentbusinessunitid FROM businessunit b JOIN up ON b.businessunitid = up.id
        WHERE b.parentbusinessunitid IS NOT NULL
    )
    SELECT id FROM up
 )
BEGIN
    SELECT RAISE(ABORT, 'smsctx rule: This parent business unit would make a loop: a business unit cannot be under itself or under one of its own children.');
END;
