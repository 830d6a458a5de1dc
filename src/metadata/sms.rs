//! The names the SMS channel works with, named once: the columns of the engagement context and
//! the conversation it fills, and the channel's internal tables (`metadata/smsctx_*.md`).

/// The engagement context and its columns.
pub const CONTEXT: &str = "msdyn_smsengagementctx";
pub const CONTEXT_NAME: &str = "msdyn_name";
pub const CONTEXT_COUNTRY_CODE: &str = "msdyn_countrycode";
pub const CONTEXT_ORG_NUMBER: &str = "msdyn_orgphonenumber";
pub const CONTEXT_CUSTOMER_NUMBER: &str = "msdyn_customerphonenumber";
pub const CONTEXT_PROVIDER: &str = "msdyn_smsprovider";
pub const CONTEXT_ENGAGEMENT_ID: &str = "msdyn_smsengagementid";
pub const CONTEXT_CONVERSATION: &str = "msdyn_liveworkitemid";

/// The conversation (live work item) and its columns.
pub const CONVERSATION: &str = "msdyn_ocliveworkitem";
pub const CONVERSATION_SUBJECT: &str = "subject";
pub const CONVERSATION_DESCRIPTION: &str = "description";

/// The state and status columns both tables share.
pub const STATE: &str = "statecode";
pub const STATUS: &str = "statuscode";

/// The invariant state names the channel acts on.
pub const STATE_ACTIVE: &str = "Active";
pub const STATE_INACTIVE: &str = "Inactive";
pub const STATE_CLOSED: &str = "Closed";
pub const STATE_RESOLVED: &str = "Resolved";

/// The channel table: one row per organisation number.
pub const CHANNEL: &str = "smsctx_smschannel";
/// Its entity set, served by the SMS channel's API (`metadata/smsctx_smschannel.md`'s
/// `EntitySetName`; the channel tables are no Web API catalog entries).
pub const CHANNEL_SET: &str = "smsctx_smschannels";
pub const CHANNEL_NAME: &str = "smsctx_name";
pub const CHANNEL_PROVIDER: &str = "smsctx_provider";
pub const CHANNEL_NUMBER: &str = "smsctx_phonenumber";
pub const CHANNEL_ACCOUNT: &str = "smsctx_account";
pub const CHANNEL_SECRET: &str = "smsctx_secret";
pub const CHANNEL_PUBLIC_URL: &str = "smsctx_publicurl";
pub const CHANNEL_AUTO_REPLY: &str = "smsctx_autoreply";
pub const CHANNEL_OWNER_ID: &str = "smsctx_defaultownerid";
pub const CHANNEL_OWNER_TYPE: &str = "smsctx_defaultownertype";
pub const CHANNEL_API_BASE_URL: &str = "smsctx_apibaseurl";
/// Minutes of silence after which the channel closes a conversation (NULL: never).
pub const CHANNEL_INACTIVITY_TIMEOUT: &str = "smsctx_inactivitytimeout";

/// The delivery table: one row per inbound message, keyed by provider and message id.
pub const DELIVERY: &str = "smsctx_smsdelivery";
pub const DELIVERY_MESSAGE_ID: &str = "smsctx_messageid";
pub const DELIVERY_PROVIDER: &str = "smsctx_provider";
pub const DELIVERY_CHANNEL: &str = "smsctx_channelid";
pub const DELIVERY_CONTEXT: &str = "smsctx_contextid";
pub const DELIVERY_CONVERSATION: &str = "smsctx_conversationid";
pub const DELIVERY_OPENED: &str = "smsctx_openedcontext";

/// The outbound table: one row per sent message, keyed by provider and message id, holding the
/// transcript note it is in and the most advanced delivery status reported.
pub const OUTBOUND: &str = "smsctx_smsoutbound";
pub const OUTBOUND_MESSAGE_ID: &str = "smsctx_messageid";
pub const OUTBOUND_PROVIDER: &str = "smsctx_provider";
pub const OUTBOUND_ANNOTATION: &str = "smsctx_annotationid";
pub const OUTBOUND_CONVERSATION: &str = "smsctx_conversationid";
pub const OUTBOUND_STATUS: &str = "smsctx_status";
pub const OUTBOUND_ERROR_CODE: &str = "smsctx_errorcode";

/// The pair table: one row per (org number, customer number).
pub const PAIR: &str = "smsctx_smspair";
pub const PAIR_ORG_NUMBER: &str = "smsctx_orgphonenumber";
pub const PAIR_CUSTOMER_NUMBER: &str = "smsctx_customerphonenumber";
pub const PAIR_CONTEXT: &str = "smsctx_contextid";
pub const PAIR_LAST_MESSAGE: &str = "smsctx_lastmessageid";

/// The bound action that sends an SMS from an engagement context (`smsctx_SendSms`), and its
/// one parameter.
pub const SEND_SMS: &str = "smsctx_SendSms";
pub const SEND_SMS_MESSAGE: &str = "Message";

/// The provider option labels of `msdyn_smsprovider` (and the channel tables' copies).
pub const PROVIDER_TWILIO: &str = "Twilio";
pub const PROVIDER_TELESIGN: &str = "TeleSign";
