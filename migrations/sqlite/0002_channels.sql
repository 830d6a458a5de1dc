-- smsctx schema, version 2: the SMS channel's internal tables (metadata/smsctx_*.md). They are
-- not Web API entity sets; the webhook and the channel administration use them.

-- One row per organisation number (id: UUID v5 of the number).
CREATE TABLE smsctx_smschannel (
    smsctx_smschannelid     TEXT PRIMARY KEY,
    smsctx_name             TEXT COLLATE NOCASE,
    smsctx_provider         INTEGER,
    smsctx_phonenumber      TEXT COLLATE NOCASE,
    smsctx_account          TEXT,
    smsctx_secret           TEXT,
    smsctx_publicurl        TEXT,
    smsctx_autoreply        TEXT,
    smsctx_defaultownerid   TEXT,
    smsctx_defaultownertype TEXT,
    smsctx_apibaseurl       TEXT,
    createdon               INTEGER,
    modifiedon              INTEGER,
    versionnumber           INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per delivered inbound message (id: UUID v5 of provider and message id): the primary
-- key makes a replayed or concurrent duplicate delivery fail as a duplicate.
CREATE TABLE smsctx_smsdelivery (
    smsctx_smsdeliveryid  TEXT PRIMARY KEY,
    smsctx_messageid      TEXT,
    smsctx_provider       INTEGER,
    smsctx_channelid      TEXT,
    smsctx_contextid      TEXT,
    smsctx_conversationid TEXT,
    smsctx_openedcontext  INTEGER,
    createdon             INTEGER,
    versionnumber         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX smsctx_smsdelivery_context ON smsctx_smsdelivery (smsctx_contextid);

-- One row per (org number, customer number) pair (id: UUID v5 of both), compared-and-set by
-- every inbound message of the pair.
CREATE TABLE smsctx_smspair (
    smsctx_smspairid           TEXT PRIMARY KEY,
    smsctx_orgphonenumber      TEXT COLLATE NOCASE,
    smsctx_customerphonenumber TEXT COLLATE NOCASE,
    smsctx_contextid           TEXT,
    smsctx_lastmessageid       TEXT,
    createdon                  INTEGER,
    modifiedon                 INTEGER,
    versionnumber              INTEGER NOT NULL
) WITHOUT ROWID;
