-- smsctx schema, version 19: the change log's rows by object are found through a table the
-- writer fills in sorted runs, no longer through an index every logged write updates (issue 15:
-- a logged update cost 29 % of the unlogged throughput, the target is at most 15 %).
--
-- The index on (objectid, seq) put one entry of each logged write at a random place: every
-- write dirtied one more random page, written to the WAL and again at the checkpoint (a logged
-- update wrote 14.5 KB, an unlogged one 7.4 KB). Without it a logged update wrote 8.1 KB.
--
-- Now the rows up to `smsctx_changelog_folded.seq` are listed in `smsctx_changelog_byobject`
-- (objectid, seq), and those after it, the tail, are found by `seq`, which is the rowid. The
-- writer folds the tail in when it has grown to an eighth of the rows folded (at least 4,096
-- rows, at most 32,768 a fold, `sqlite_changelog::Folding`): one sorted insert, in a
-- transaction of its own, that writes each page of the table once for several rows. A reader asks both sides in one
-- statement, so one snapshot: a fold is seen whole or not at all. A purge deletes both.
--
-- The `audit` view is the same union, so a filter on `objectid` (the Web API's
-- `_objectid_value eq ...`) searches the table by its key and the tail by `seq`.

DROP VIEW audit;
DROP INDEX smsctx_changelog_object;

CREATE TABLE smsctx_changelog_byobject (
    objectid TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (objectid, seq)
) WITHOUT ROWID;

-- One row: every log row with `seq` up to this one is in `smsctx_changelog_byobject`.
CREATE TABLE smsctx_changelog_folded (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    seq  INTEGER NOT NULL
);

-- Placeholders (entity '', migration 16) are read only by `max(seq)` and are not listed.
INSERT INTO smsctx_changelog_byobject (objectid, seq)
SELECT objectid, seq FROM smsctx_changelog WHERE entity <> '' ORDER BY objectid, seq;
INSERT INTO smsctx_changelog_folded (only, seq)
SELECT 1, coalesce(max(seq), 0) FROM smsctx_changelog;

CREATE VIEW audit AS
SELECT printf('00000000-0000-0000-0000-%012x', c.seq) AS auditid, c.action, c.operation,
    o.objectid, c.entity AS objecttypecode, c.userid, c.callinguserid, c.createdon
FROM smsctx_changelog_byobject o JOIN smsctx_changelog c ON c.seq = o.seq
WHERE c.audited = 1
UNION ALL
SELECT printf('00000000-0000-0000-0000-%012x', seq), action, operation, objectid, entity,
    userid, callinguserid, createdon
FROM smsctx_changelog
WHERE seq > (SELECT seq FROM smsctx_changelog_folded) AND audited = 1;
