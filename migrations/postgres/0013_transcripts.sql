-- smsctx schema for PostgreSQL, version 13 (as migrations/sqlite/0013_transcripts.sql): conversation
-- transcripts, outbound delivery status, inactivity.
-- `msdyn_transcript` (one per conversation) and `annotation` (its note: documentbody is the
-- base64 of the transcript's JSON messages) are Web API tables written only by the server and
-- readable by whoever may read the conversation. `smsctx_smsoutbound` is internal: one row per
-- sent message (id: UUID v5 of provider and message id), so a delivery report finds the
-- transcript message it updates. A channel may close idle conversations after
-- `smsctx_inactivitytimeout` minutes (NULL: never).

CREATE TABLE msdyn_transcript (
    msdyn_transcriptid     uuid PRIMARY KEY,
    msdyn_name             text COLLATE "C",
    msdyn_liveworkitemidid uuid,
    statecode              bigint,
    statuscode             bigint,
    ownerid                uuid,
    owneridtype            text COLLATE "C",
    owningbusinessunit     uuid,
    owningteam             uuid,
    owninguser             uuid,
    createdby              uuid,
    createdon              timestamptz,
    createdonbehalfby      uuid,
    modifiedby             uuid,
    modifiedon             timestamptz,
    modifiedonbehalfby     uuid,
    versionnumber          bigint NOT NULL
);
CREATE INDEX msdyn_transcript_conversation ON msdyn_transcript (msdyn_liveworkitemidid);

CREATE TABLE annotation (
    annotationid       uuid PRIMARY KEY,
    subject            text COLLATE "C",
    notetext           text COLLATE "C",
    documentbody       text COLLATE "C",
    filename           text COLLATE "C",
    filesize           bigint,
    mimetype           text COLLATE "C",
    isdocument         boolean,
    objectid           uuid,
    objecttypecode     text COLLATE "C",
    ownerid            uuid,
    owneridtype        text COLLATE "C",
    owningbusinessunit uuid,
    owningteam         uuid,
    owninguser         uuid,
    createdby          uuid,
    createdon          timestamptz,
    createdonbehalfby  uuid,
    modifiedby         uuid,
    modifiedon         timestamptz,
    modifiedonbehalfby uuid,
    versionnumber      bigint NOT NULL
);
CREATE INDEX annotation_object ON annotation (objectid);
CREATE INDEX annotation_objecttypecode ON annotation (lower(objecttypecode COLLATE "C"), annotationid);

CREATE TABLE smsctx_smsoutbound (
    smsctx_smsoutboundid  uuid PRIMARY KEY,
    smsctx_messageid      text COLLATE "C",
    smsctx_provider       bigint,
    smsctx_annotationid   uuid,
    smsctx_conversationid uuid,
    smsctx_status         text COLLATE "C",
    smsctx_errorcode      text COLLATE "C",
    createdon             timestamptz,
    modifiedon            timestamptz,
    versionnumber         bigint NOT NULL
);

ALTER TABLE smsctx_smschannel ADD COLUMN smsctx_inactivitytimeout bigint;
