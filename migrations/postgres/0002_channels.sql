-- smsctx schema for PostgreSQL, version 2: the SMS channel's internal tables
-- (metadata/smsctx_*.md), as migrations/sqlite/0002_channels.sql. They are not Web API entity
-- sets; the webhook and the channel administration use them.

-- One row per organisation number (id: UUID v5 of the number).
CREATE TABLE smsctx_smschannel (
    smsctx_smschannelid     uuid PRIMARY KEY,
    smsctx_name             text COLLATE "C",
    smsctx_provider         bigint,
    smsctx_phonenumber      text COLLATE "C",
    smsctx_account          text COLLATE "C",
    smsctx_secret           text COLLATE "C",
    smsctx_publicurl        text COLLATE "C",
    smsctx_autoreply        text COLLATE "C",
    smsctx_defaultownerid   uuid,
    smsctx_defaultownertype text COLLATE "C",
    smsctx_apibaseurl       text COLLATE "C",
    createdon               timestamptz,
    modifiedon              timestamptz,
    versionnumber           bigint NOT NULL
);

-- One row per delivered inbound message (id: UUID v5 of provider and message id): the primary
-- key makes a replayed or concurrent duplicate delivery, on any node, fail as a duplicate.
CREATE TABLE smsctx_smsdelivery (
    smsctx_smsdeliveryid  uuid PRIMARY KEY,
    smsctx_messageid      text COLLATE "C",
    smsctx_provider       bigint,
    smsctx_channelid      uuid,
    smsctx_contextid      uuid,
    smsctx_conversationid uuid,
    smsctx_openedcontext  boolean,
    createdon             timestamptz,
    versionnumber         bigint NOT NULL
);
CREATE INDEX smsctx_smsdelivery_context ON smsctx_smsdelivery (smsctx_contextid);

-- One row per (org number, customer number) pair (id: UUID v5 of both), compared-and-set by
-- every inbound message of the pair.
CREATE TABLE smsctx_smspair (
    smsctx_smspairid           uuid PRIMARY KEY,
    smsctx_orgphonenumber      text COLLATE "C",
    smsctx_customerphonenumber text COLLATE "C",
    smsctx_contextid           uuid,
    smsctx_lastmessageid       text COLLATE "C",
    createdon                  timestamptz,
    modifiedon                 timestamptz,
    versionnumber              bigint NOT NULL
);
