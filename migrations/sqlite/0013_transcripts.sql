-- smsctx schema, version 13: conversation transcripts, outbound delivery status, inactivity.
-- `msdyn_transcript` (one per conversation) and `annotation` (its note: documentbody is the
-- base64 of the transcript's JSON messages) are Web API tables written only by the server and
-- readable by whoever may read the conversation. `smsctx_smsoutbound` is internal: one row per
-- sent message (id: UUID v5 of provider and message id), so a delivery report finds the
-- transcript message it updates. A channel may close idle conversations after
-- `smsctx_inactivitytimeout` minutes (NULL: never).

CREATE TABLE msdyn_transcript (
    msdyn_transcriptid     TEXT PRIMARY KEY,
    msdyn_name             TEXT COLLATE NOCASE,
    msdyn_liveworkitemidid TEXT,
    statecode              INTEGER,
    statuscode             INTEGER,
    ownerid                TEXT,
    owneridtype            TEXT COLLATE NOCASE,
    owningbusinessunit     TEXT,
    owningteam             TEXT,
    owninguser             TEXT,
    createdby              TEXT,
    createdon              INTEGER,
    createdonbehalfby      TEXT,
    modifiedby             TEXT,
    modifiedon             INTEGER,
    modifiedonbehalfby     TEXT,
    versionnumber          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX msdyn_transcript_conversation ON msdyn_transcript (msdyn_liveworkitemidid);

CREATE TABLE annotation (
    annotationid       TEXT PRIMARY KEY,
    subject            TEXT COLLATE NOCASE,
    notetext           TEXT COLLATE NOCASE,
    documentbody       TEXT,
    filename           TEXT COLLATE NOCASE,
    filesize           INTEGER,
    mimetype           TEXT COLLATE NOCASE,
    isdocument         INTEGER,
    objectid           TEXT,
    objecttypecode     TEXT COLLATE NOCASE,
    ownerid            TEXT,
    owneridtype        TEXT COLLATE NOCASE,
    owningbusinessunit TEXT,
    owningteam         TEXT,
    owninguser         TEXT,
    createdby          TEXT,
    createdon          INTEGER,
    createdonbehalfby  TEXT,
    modifiedby         TEXT,
    modifiedon         INTEGER,
    modifiedonbehalfby TEXT,
    versionnumber      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX annotation_object ON annotation (objectid);
CREATE INDEX annotation_objecttypecode ON annotation (objecttypecode, annotationid);

CREATE TABLE smsctx_smsoutbound (
    smsctx_smsoutboundid  TEXT PRIMARY KEY,
    smsctx_messageid      TEXT,
    smsctx_provider       INTEGER,
    smsctx_annotationid   TEXT,
    smsctx_conversationid TEXT,
    smsctx_status         TEXT,
    smsctx_errorcode      TEXT,
    createdon             INTEGER,
    modifiedon            INTEGER,
    versionnumber         INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE smsctx_smschannel ADD COLUMN smsctx_inactivitytimeout INTEGER;
