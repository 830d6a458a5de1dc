//! The SMS channel's messages: channel configuration, an inbound message landing on its
//! engagement context, and an outbound message sent through the context's provider.
//!
//! # Inbound: one atomic write, validated by compare-and-set
//!
//! [`Sms::receive`] reads (the delivery, the pair, the context, its conversation), decides, and
//! then writes everything in **one** [`Store::write_all`] transaction: the delivery row (primary
//! key: UUID v5 of provider and message id), the pair row (UUID v5 of both numbers) inserted or
//! compared-and-set on its version, and, when a context is opened, the old context's SetState,
//! the new conversation and the new context. A concurrent delivery of the same message fails on
//! the delivery's primary key; a concurrent message of the same pair fails on the pair's insert
//! or version. Either way nothing of the loser is written; it reads again and finds the
//! winner's rows (a replay, or the context to reuse). This holds across connections and, on
//! PostgreSQL, across nodes, because the keys are in the database. On SQLite the one write
//! shares the writer's group commit with other writes instead of holding the writer for the
//! whole exchange.

mod delivery;
pub(crate) mod lifecycle;
mod transcript;

pub use delivery::Reported;

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Caller, ExecError, Preconditions, Service};
use crate::channels::outbound::{self, OutboundError, OutboundRequest};
use crate::channels::phone::{PhoneError, PhoneNumber};
use crate::channels::telesign;
use crate::channels::transcript::{inbound_tags, Author, DeliveryStatus};
use crate::metadata::sms::*;
use crate::metadata::system::{CREATED_ON, MODIFIED_ON, SYSTEM_USER, TEAM};
use crate::metadata::{Catalog, Entity};
use crate::parse::body::{Bind, Payload};
use crate::parse::headers::Condition;
use crate::query::ast::{CmpOp, Expr, Literal, PropertyRef};
use crate::query::OrderBy;
use crate::security::Privilege;
use crate::store::sql::{Context as QueryContext, Plan};
use crate::store::{Access, Expect, Query, Record, Store, StoreError, Value, WriteOp};

/// How often an inbound message reads and writes again after losing a race.
const MAX_ATTEMPTS: usize = 16;

/// The namespace of the channel tables' UUID v5 keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6d2b_0f4e_5a1c_4b8e_9a77_0c3e_51f2_d8a4);

/// How long an outbound provider call may take.
const PROVIDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("{0}")]
    Phone(#[from] PhoneError),
    #[error("no SMS channel is configured for the number {0}")]
    UnknownChannel(String),
    #[error("an SMS channel for the number {0} already exists")]
    ChannelExists(String),
    #[error("the SMS channel {0} does not exist")]
    ChannelNotFound(Uuid),
    #[error("{0}")]
    InvalidChannel(String),
    #[error("the engagement context {0} does not exist")]
    ContextNotFound(Uuid),
    #[error(
        "the engagement context {0} has no organisation or customer number to send from or to"
    )]
    ContextWithoutNumbers(Uuid),
    #[error("{0}")]
    Outbound(#[from] OutboundError),
    #[error("the provider refused the message (HTTP {status}): {message}")]
    ProviderRefused { status: u16, message: String },
    #[error("the provider could not be reached: {0}")]
    ProviderUnreachable(String),
    #[error("too many concurrent writes to this conversation; try again")]
    Contention,
    #[error(transparent)]
    Exec(#[from] ExecError),
}

impl From<StoreError> for SmsError {
    fn from(e: StoreError) -> SmsError {
        SmsError::Exec(ExecError::Store(e))
    }
}

/// The SMS providers, as the `msdyn_smsprovider` options name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Twilio,
    TeleSign,
}

impl Provider {
    pub fn label(self) -> &'static str {
        match self {
            Provider::Twilio => PROVIDER_TWILIO,
            Provider::TeleSign => PROVIDER_TELESIGN,
        }
    }

    /// `twilio` or `telesign`, in any case.
    pub fn parse(text: &str) -> Option<Provider> {
        [Provider::Twilio, Provider::TeleSign]
            .into_iter()
            .find(|p| p.label().eq_ignore_ascii_case(text.trim()))
    }
}

/// Who owns what a channel opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `team` or `systemuser`.
    pub table: String,
    pub id: Uuid,
}

/// One configured organisation number.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    pub name: String,
    pub provider: Provider,
    pub number: PhoneNumber,
    /// Twilio account SID or TeleSign customer id.
    pub account: Option<String>,
    /// Twilio auth token or TeleSign API key. Never shown in full: see [`mask`].
    pub secret: String,
    pub public_url: Option<String>,
    pub auto_reply: Option<String>,
    pub default_owner: Option<Owner>,
    pub api_base_url: Option<String>,
    /// Minutes of silence after which the channel closes a conversation; `None`: never.
    pub inactivity_timeout: Option<i64>,
    pub created_on: i64,
    pub modified_on: i64,
    pub version: i64,
}

/// What a channel is created from (`smsctx channel add`, `POST .../smsctx_smschannels`).
#[derive(Debug, Clone, Default)]
pub struct NewChannel {
    pub provider: String,
    pub number: String,
    pub secret: String,
    pub account: Option<String>,
    pub public_url: Option<String>,
    pub name: Option<String>,
    pub auto_reply: Option<String>,
    pub default_owner: Option<Owner>,
    pub api_base_url: Option<String>,
    pub inactivity_timeout: Option<i64>,
}

/// The columns an update changes; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct ChannelChanges {
    pub name: Option<String>,
    pub secret: Option<String>,
    pub account: Option<Option<String>>,
    pub public_url: Option<Option<String>>,
    pub auto_reply: Option<Option<String>>,
    pub default_owner: Option<Option<Owner>>,
    pub api_base_url: Option<Option<String>>,
    pub inactivity_timeout: Option<Option<i64>>,
}

/// A secret as reads show it: its last four characters at most, the rest hidden.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "****".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

/// Where an inbound message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub context_id: Uuid,
    pub conversation_id: Option<Uuid>,
    /// This message opened the context (and its conversation).
    pub opened: bool,
    /// The message had been delivered before; nothing was written.
    pub replay: bool,
}

/// An inbound message, its numbers already normalised.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub channel: &'a Channel,
    pub customer: &'a PhoneNumber,
    /// Twilio `MessageSid` or TeleSign `reference_id`.
    pub message_id: &'a str,
    pub body: &'a str,
}

/// What a sent message reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub provider: Provider,
    /// Twilio's `sid` or TeleSign's `reference_id`, when the answer carried one.
    pub message_id: Option<String>,
}

/// The SMS channel's tables and its HTTP client for provider APIs.
pub struct Sms {
    channel: Arc<Entity>,
    delivery: Arc<Entity>,
    pair: Arc<Entity>,
    context: Arc<Entity>,
    conversation: Arc<Entity>,
    team: Arc<Entity>,
    user: Arc<Entity>,
    transcripts: transcript::Transcripts,
    outbound: Arc<Entity>,
    http: reqwest::Client,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn key(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&KEY_NAMESPACE, parts.join("\u{1f}").as_bytes())
}

impl Sms {
    /// The channel over a catalog that holds its internal tables ([`Catalog::with_channels`]).
    pub fn new(catalog: &Catalog) -> Result<Sms, SmsError> {
        let table = |name: &str| {
            catalog.entity(name).cloned().ok_or_else(|| {
                SmsError::Exec(ExecError::Store(StoreError::UnknownTable(name.to_string())))
            })
        };
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| SmsError::ProviderUnreachable(e.to_string()))?;
        Ok(Sms {
            channel: table(CHANNEL)?,
            delivery: table(DELIVERY)?,
            pair: table(PAIR)?,
            context: table(CONTEXT)?,
            conversation: table(CONVERSATION)?,
            team: table(TEAM)?,
            user: table(SYSTEM_USER)?,
            transcripts: transcript::Transcripts::new(catalog).ok_or_else(|| {
                SmsError::Exec(ExecError::Store(StoreError::UnknownTable(
                    crate::metadata::transcripts::TRANSCRIPT.to_string(),
                )))
            })?,
            outbound: table(OUTBOUND)?,
            http,
        })
    }

    /// The channel table.
    pub fn channel_table(&self) -> &Arc<Entity> {
        &self.channel
    }

    /// The channel's id: one number, one channel.
    pub fn channel_id(number: &PhoneNumber) -> Uuid {
        key(&["channel", &number.omnichannel_form()])
    }

    fn provider_value(&self, provider: Provider) -> i64 {
        self.channel
            .attribute(CHANNEL_PROVIDER)
            .and_then(|a| a.options.iter().find(|o| o.label == provider.label()))
            .map(|o| i64::from(o.value))
            .unwrap_or_default()
    }

    /// The provider of an option value of `msdyn_smsprovider`.
    pub fn provider_of(&self, value: i64) -> Option<Provider> {
        let label = self
            .channel
            .attribute(CHANNEL_PROVIDER)?
            .options
            .iter()
            .find(|o| i64::from(o.value) == value)?
            .label
            .clone();
        Provider::parse(&label)
    }

    // ---- channels ------------------------------------------------------------------------

    /// Creates a channel after checking every value; a second channel for a number is refused.
    /// `db` is the caller's guard (or, for `smsctx channel add`, the system access).
    pub async fn add_channel(
        &self,
        service: &Service,
        db: &dyn Access,
        caller: &Caller,
        input: NewChannel,
    ) -> Result<Channel, SmsError> {
        let store = db;
        let provider = Provider::parse(&input.provider).ok_or_else(|| {
            SmsError::InvalidChannel(format!(
                "the provider '{}' is not 'twilio' or 'telesign'",
                input.provider
            ))
        })?;
        let number = parse_org_number(&input.number)?;
        let id = Sms::channel_id(&number);
        let name = input
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{} {}", provider.label(), number.e164()));
        let mut payload = Payload {
            values: Vec::new(),
            binds: Vec::new(),
        };
        let e = &self.channel;
        payload.values.push(self.text(e, CHANNEL_NAME, Some(name))?);
        payload.values.push(position_value(
            e,
            CHANNEL_PROVIDER,
            Value::Int(self.provider_value(provider)),
        ));
        payload
            .values
            .push(self.text(e, CHANNEL_NUMBER, Some(number.omnichannel_form()))?);
        check_secret(provider, &input.secret, input.account.as_deref())?;
        payload
            .values
            .push(self.text(e, CHANNEL_SECRET, Some(input.secret.trim().to_owned()))?);
        payload
            .values
            .push(self.text(e, CHANNEL_ACCOUNT, clean(input.account))?);
        payload
            .values
            .push(self.url(e, CHANNEL_PUBLIC_URL, clean(input.public_url))?);
        payload
            .values
            .push(self.text(e, CHANNEL_AUTO_REPLY, clean(input.auto_reply))?);
        payload
            .values
            .push(self.url(e, CHANNEL_API_BASE_URL, clean(input.api_base_url))?);
        let owner = match input.default_owner {
            Some(owner) => Some(self.check_owner(store, owner).await?),
            None => None,
        };
        payload.values.extend(self.owner_values(owner.as_ref()));
        payload.values.push(self.timeout(input.inactivity_timeout)?);
        match service
            .create(store, caller, &self.channel, payload, Some(id))
            .await
        {
            Ok(_) => {}
            Err(ExecError::Duplicate) => return Err(SmsError::ChannelExists(number.e164())),
            Err(e) => return Err(e.into()),
        }
        self.channel(store, id)
            .await?
            .ok_or(SmsError::ChannelNotFound(id))
    }

    /// Changes some columns of a channel.
    pub async fn update_channel(
        &self,
        service: &Service,
        db: &dyn Access,
        caller: &Caller,
        id: Uuid,
        changes: ChannelChanges,
    ) -> Result<Channel, SmsError> {
        let store = db;
        let current = self
            .channel(store, id)
            .await?
            .ok_or(SmsError::ChannelNotFound(id))?;
        let e = &self.channel;
        let mut values = Vec::new();
        if let Some(name) = changes.name {
            if name.trim().is_empty() {
                return Err(SmsError::InvalidChannel("the channel name is empty".into()));
            }
            values.push(self.text(e, CHANNEL_NAME, Some(name))?);
        }
        let account = match &changes.account {
            Some(account) => account.clone(),
            None => current.account.clone(),
        };
        if let Some(secret) = &changes.secret {
            check_secret(current.provider, secret, account.as_deref())?;
            values.push(self.text(e, CHANNEL_SECRET, Some(secret.trim().to_owned()))?);
        } else if changes.account.is_some() {
            check_secret(current.provider, &current.secret, account.as_deref())?;
        }
        if let Some(account) = changes.account {
            values.push(self.text(e, CHANNEL_ACCOUNT, clean(account))?);
        }
        if let Some(url) = changes.public_url {
            values.push(self.url(e, CHANNEL_PUBLIC_URL, clean(url))?);
        }
        if let Some(reply) = changes.auto_reply {
            values.push(self.text(e, CHANNEL_AUTO_REPLY, clean(reply))?);
        }
        if let Some(url) = changes.api_base_url {
            values.push(self.url(e, CHANNEL_API_BASE_URL, clean(url))?);
        }
        if let Some(minutes) = changes.inactivity_timeout {
            values.push(self.timeout(minutes)?);
        }
        if let Some(owner) = changes.default_owner {
            let owner = match owner {
                Some(owner) => Some(self.check_owner(store, owner).await?),
                None => None,
            };
            values.extend(self.owner_values(owner.as_ref()));
        }
        let payload = Payload {
            values,
            binds: Vec::new(),
        };
        let preconditions = Preconditions {
            if_match: Some(Condition::Any),
            if_none_match: None,
        };
        match service
            .upsert(store, caller, &self.channel, id, payload, &preconditions)
            .await
        {
            Ok(_) => {}
            Err(ExecError::NotFound { .. }) => return Err(SmsError::ChannelNotFound(id)),
            Err(e) => return Err(e.into()),
        }
        self.channel(store, id)
            .await?
            .ok_or(SmsError::ChannelNotFound(id))
    }

    pub async fn delete_channel(
        &self,
        service: &Service,
        db: &dyn Access,
        caller: &Caller,
        id: Uuid,
    ) -> Result<(), SmsError> {
        match service.delete(db, caller, &self.channel, id, None).await {
            Ok(()) => Ok(()),
            Err(ExecError::NotFound { .. }) => Err(SmsError::ChannelNotFound(id)),
            Err(e) => Err(e.into()),
        }
    }

    /// One channel by id.
    pub async fn channel(&self, store: &dyn Access, id: Uuid) -> Result<Option<Channel>, SmsError> {
        match store.get(&self.channel, id, false).await? {
            Some(record) => Ok(Some(self.read_channel(&record)?)),
            None => Ok(None),
        }
    }

    /// The channel of an organisation number.
    pub async fn channel_for(
        &self,
        store: &dyn Access,
        number: &PhoneNumber,
    ) -> Result<Option<Channel>, SmsError> {
        self.channel(store, Sms::channel_id(number)).await
    }

    /// Every channel, by number.
    pub async fn channels(&self, store: &dyn Access) -> Result<Vec<Channel>, SmsError> {
        let order = vec![OrderBy {
            prop: self.prop(&self.channel, CHANNEL_NUMBER),
            descending: false,
        }];
        let rows = store
            .query(Query {
                plan: Plan {
                    entity: Arc::clone(&self.channel),
                    filter: None,
                    order,
                    limit: None,
                    after: None,
                    scope: None,
                    related: None,
                },
                context: no_context(),
                with_names: false,
            })
            .await?;
        rows.iter().map(|r| self.read_channel(r)).collect()
    }

    fn read_channel(&self, record: &Record) -> Result<Channel, SmsError> {
        let text = |name: &str| record.get(name).as_text().map(str::to_owned);
        let corrupt = |what: &str| {
            SmsError::Exec(ExecError::Store(StoreError::Unexpected(format!(
                "{what} of the stored SMS channel {}",
                record.id().unwrap_or_default()
            ))))
        };
        let provider = record
            .get(CHANNEL_PROVIDER)
            .as_int()
            .and_then(|v| self.provider_of(v))
            .ok_or_else(|| corrupt("provider"))?;
        let number = text(CHANNEL_NUMBER)
            .and_then(|n| PhoneNumber::parse_omnichannel(&n).ok())
            .ok_or_else(|| corrupt("number"))?;
        let default_owner = match (
            record.get(CHANNEL_OWNER_ID).as_guid(),
            text(CHANNEL_OWNER_TYPE),
        ) {
            (Some(id), Some(table)) => Some(Owner { table, id }),
            _ => None,
        };
        let date = |name: &str| match record.get(name) {
            Value::DateTime(t) => *t,
            _ => 0,
        };
        Ok(Channel {
            id: record.id().unwrap_or_default(),
            name: text(CHANNEL_NAME).unwrap_or_default(),
            provider,
            number,
            account: text(CHANNEL_ACCOUNT),
            secret: text(CHANNEL_SECRET).unwrap_or_default(),
            public_url: text(CHANNEL_PUBLIC_URL),
            auto_reply: text(CHANNEL_AUTO_REPLY),
            default_owner,
            api_base_url: text(CHANNEL_API_BASE_URL),
            inactivity_timeout: record.get(CHANNEL_INACTIVITY_TIMEOUT).as_int(),
            created_on: date(CREATED_ON),
            modified_on: date(MODIFIED_ON),
            version: record.version().unwrap_or_default(),
        })
    }

    async fn check_owner(&self, store: &dyn Access, owner: Owner) -> Result<Owner, SmsError> {
        let table = match owner.table.as_str() {
            t if t == TEAM => &self.team,
            t if t == SYSTEM_USER => &self.user,
            other => {
                return Err(SmsError::InvalidChannel(format!(
                    "the default owner must be a team or a systemuser, not '{other}'"
                )))
            }
        };
        if store.get(table, owner.id, false).await?.is_none() {
            return Err(SmsError::InvalidChannel(format!(
                "the default owner {}({}) does not exist",
                owner.table, owner.id
            )));
        }
        Ok(owner)
    }

    fn owner_values(&self, owner: Option<&Owner>) -> Vec<(usize, Value)> {
        let (id, table) = match owner {
            Some(o) => (Value::Guid(o.id), Value::Text(o.table.clone())),
            None => (Value::Null, Value::Null),
        };
        vec![
            position_value(&self.channel, CHANNEL_OWNER_ID, id),
            position_value(&self.channel, CHANNEL_OWNER_TYPE, table),
        ]
    }

    /// A text column's value, within the column's `MaxLength`.
    fn text(
        &self,
        entity: &Entity,
        column: &str,
        value: Option<String>,
    ) -> Result<(usize, Value), SmsError> {
        if let (Some(text), Some(max)) =
            (&value, entity.attribute(column).and_then(|a| a.max_length))
        {
            if text.chars().count() > max {
                return Err(SmsError::InvalidChannel(format!(
                    "{column} is longer than {max} characters"
                )));
            }
        }
        Ok(position_value(
            entity,
            column,
            value.map_or(Value::Null, Value::Text),
        ))
    }

    /// The inactivity timeout column: whole minutes in the column's range, or none.
    fn timeout(&self, minutes: Option<i64>) -> Result<(usize, Value), SmsError> {
        let e = &self.channel;
        if let (Some(m), Some(attribute)) = (minutes, e.attribute(CHANNEL_INACTIVITY_TIMEOUT)) {
            let (min, max) = (attribute.min_value, attribute.max_value);
            if min.is_some_and(|min| m < min) || max.is_some_and(|max| m > max) {
                return Err(SmsError::InvalidChannel(format!(
                    "{CHANNEL_INACTIVITY_TIMEOUT} must be between {} and {} minutes, not {m}",
                    min.unwrap_or_default(),
                    max.unwrap_or_default()
                )));
            }
        }
        Ok(position_value(
            e,
            CHANNEL_INACTIVITY_TIMEOUT,
            minutes.map_or(Value::Null, Value::Int),
        ))
    }

    fn url(
        &self,
        entity: &Entity,
        column: &str,
        value: Option<String>,
    ) -> Result<(usize, Value), SmsError> {
        if let Some(url) = &value {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SmsError::InvalidChannel(format!(
                    "{column} '{url}' is not an http:// or https:// URL"
                )));
            }
        }
        self.text(entity, column, value)
    }

    fn prop(&self, entity: &Entity, column: &str) -> PropertyRef {
        PropertyRef {
            index: entity.position(column).unwrap_or_default(),
            name: column.to_owned(),
        }
    }

    // ---- inbound -------------------------------------------------------------------------

    /// Lands an inbound message on the active context of its (org number, customer number)
    /// pair, opening a context and a conversation when there is none or its conversation is
    /// closed. Idempotent per provider message id.
    pub async fn receive(
        &self,
        service: &Service,
        admin: &Caller,
        inbound: Inbound<'_>,
    ) -> Result<Landed, SmsError> {
        // A webhook has no caller: the message lands by system access, as the administrator.
        let store = service.system().store();
        let channel = inbound.channel;
        let org = channel.number.omnichannel_form();
        let customer = inbound.customer.omnichannel_form();
        let provider_label = channel.provider.label();
        let delivery_id = key(&["delivery", provider_label, inbound.message_id]);
        let pair_id = key(&["pair", &org, &customer]);

        for _ in 0..MAX_ATTEMPTS {
            if let Some(delivery) = store.get(&self.delivery, delivery_id, false).await? {
                return Ok(Landed {
                    context_id: delivery.get(DELIVERY_CONTEXT).as_guid().unwrap_or_default(),
                    conversation_id: delivery.get(DELIVERY_CONVERSATION).as_guid(),
                    opened: false,
                    replay: true,
                });
            }
            let pair = store.get(&self.pair, pair_id, false).await?;
            let current = match pair.as_ref().and_then(|p| p.get(PAIR_CONTEXT).as_guid()) {
                Some(id) => store.get(&self.context, id, false).await?,
                None if pair.is_none() => self.active_context(store, &org, &customer).await?,
                None => None,
            };
            let reusable = match &current {
                Some(context) => self.open_conversation(store, context).await?,
                None => None,
            };

            let mut ops = Vec::with_capacity(8);
            let (context_id, conversation, opened) = match (&current, reusable) {
                (Some(context), Some(conversation)) => {
                    (context.id().unwrap_or_default(), conversation, false)
                }
                _ => {
                    if let Some(old) = current.as_ref().filter(|c| self.is_active(c)) {
                        ops.push(self.deactivate(service, admin, old).await?);
                    }
                    let conversation_id = super::new_record_id();
                    let context_id = super::new_record_id();
                    let (conversation, context) = self
                        .new_context(service, admin, &inbound, conversation_id, context_id)
                        .await?;
                    ops.push(WriteOp::Insert(conversation.clone()));
                    ops.push(WriteOp::Insert(context));
                    (context_id, conversation, true)
                }
            };
            let conversation_id = conversation.id();
            // The message joins the conversation's transcript in the same transaction.
            let note = match (opened, conversation_id) {
                (false, Some(id)) => self.transcripts.transcript_note(store, id).await?,
                _ => None,
            };
            let (e164, number) = (inbound.customer.e164(), customer.as_str());
            let at = transcript::now_ms();
            let tags = inbound_tags(inbound.message_id);
            let written = self
                .transcripts
                .transcript_writes(service, admin, &conversation, note.as_ref(), |t| {
                    t.push(
                        at,
                        Author::Customer {
                            e164: &e164,
                            number,
                        },
                        inbound.body,
                        &tags,
                    );
                    true
                })
                .await?;
            ops.extend(written.into_iter().flatten());

            let delivery = self
                .new_delivery(
                    service,
                    admin,
                    &inbound,
                    delivery_id,
                    context_id,
                    conversation_id,
                    opened,
                )
                .await?;
            let pair_op = match &pair {
                Some(pair) => self.touch_pair(pair, context_id, inbound.message_id)?,
                None => WriteOp::Insert(
                    self.new_pair(
                        service, admin, pair_id, &org, &customer, context_id, &inbound,
                    )
                    .await?,
                ),
            };
            // The keys first: a loser fails before it writes anything else.
            let mut all = vec![WriteOp::Insert(delivery), pair_op];
            all.append(&mut ops);
            match store.write_all(all).await {
                Ok(_) => {
                    return Ok(Landed {
                        context_id,
                        conversation_id,
                        opened,
                        replay: false,
                    })
                }
                Err(
                    StoreError::Duplicate
                    | StoreError::VersionMismatch { .. }
                    | StoreError::NotFound,
                ) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SmsError::Contention)
    }

    /// The newest active context of a pair, for pairs smsctx has not seen yet (contexts
    /// created through the Web API).
    async fn active_context(
        &self,
        store: &dyn Store,
        org: &str,
        customer: &str,
    ) -> Result<Option<Record>, SmsError> {
        let e = &self.context;
        let active = e
            .state_model()
            .and_then(|m| m.state_by_invariant_name(STATE_ACTIVE))
            .unwrap_or_default();
        let filter = Expr::And(vec![
            Expr::Compare {
                prop: self.prop(e, CONTEXT_ORG_NUMBER),
                op: CmpOp::Eq,
                value: Literal::String(org.to_owned()),
            },
            Expr::Compare {
                prop: self.prop(e, CONTEXT_CUSTOMER_NUMBER),
                op: CmpOp::Eq,
                value: Literal::String(customer.to_owned()),
            },
            Expr::Compare {
                prop: self.prop(e, STATE),
                op: CmpOp::Eq,
                value: Literal::Int(active.into()),
            },
        ]);
        let rows = store
            .query(Query {
                plan: Plan {
                    entity: Arc::clone(e),
                    filter: Some(filter),
                    order: vec![OrderBy {
                        prop: self.prop(e, CREATED_ON),
                        descending: true,
                    }],
                    limit: Some(1),
                    after: None,
                    scope: None,
                    related: None,
                },
                context: no_context(),
                with_names: false,
            })
            .await?;
        Ok(rows.into_iter().next())
    }

    fn is_active(&self, context: &Record) -> bool {
        let active = self
            .context
            .state_model()
            .and_then(|m| m.state_by_invariant_name(STATE_ACTIVE));
        context.get(STATE).as_int() == active.map(i64::from)
    }

    /// The conversation of an active context when it is still open (not closed or resolved).
    async fn open_conversation(
        &self,
        store: &dyn Store,
        context: &Record,
    ) -> Result<Option<Record>, SmsError> {
        if !self.is_active(context) {
            return Ok(None);
        }
        let Some(id) = context.get(CONTEXT_CONVERSATION).as_guid() else {
            return Ok(None);
        };
        let Some(conversation) = store.get(&self.conversation, id, false).await? else {
            return Ok(None);
        };
        let model = self.conversation.state_model();
        let ended: Vec<i64> = [STATE_CLOSED, STATE_RESOLVED]
            .iter()
            .filter_map(|name| model.as_ref()?.state_by_invariant_name(name))
            .map(i64::from)
            .collect();
        let state = conversation.get(STATE).as_int().unwrap_or_default();
        Ok((!ended.contains(&state)).then_some(conversation))
    }

    /// SetState(Inactive) of a context whose conversation ended, compared-and-set.
    async fn deactivate(
        &self,
        service: &Service,
        admin: &Caller,
        context: &Record,
    ) -> Result<WriteOp, SmsError> {
        let e = &self.context;
        let payload = lifecycle::set_state(e, STATE_INACTIVE);
        let changes = service
            .update_changes(service.system().store(), admin, e, context, payload)
            .await?;
        Ok(WriteOp::Update {
            entity: Arc::clone(e),
            id: context.id().unwrap_or_default(),
            changes,
            expect: Expect::Version(context.version().unwrap_or_default()),
        })
    }

    /// The conversation and the context an inbound message opens, owned by the channel's
    /// default owner (else the administrator).
    async fn new_context(
        &self,
        service: &Service,
        admin: &Caller,
        inbound: &Inbound<'_>,
        conversation_id: Uuid,
        context_id: Uuid,
    ) -> Result<(Record, Record), SmsError> {
        let channel = inbound.channel;
        let store = service.system().store();
        let title = format!(
            "SMS from {} to {}",
            inbound.customer.e164(),
            channel.number.e164()
        );
        let owner_bind = |entity: &Entity| -> Option<Bind> {
            let owner = channel.default_owner.as_ref()?;
            let target = if owner.table == TEAM {
                &self.team
            } else {
                &self.user
            };
            Some(Bind {
                position: entity.position(crate::metadata::system::OWNER_ID)?,
                target: Some((Arc::clone(target), owner.id)),
            })
        };
        let c = &self.conversation;
        let conversation = Payload {
            values: vec![
                position_value(
                    c,
                    CONVERSATION_SUBJECT,
                    Value::Text(truncate(&title, c, CONVERSATION_SUBJECT)),
                ),
                position_value(
                    c,
                    CONVERSATION_DESCRIPTION,
                    Value::Text(truncate(inbound.body, c, CONVERSATION_DESCRIPTION)),
                ),
            ],
            binds: owner_bind(c).into_iter().collect(),
        };
        let conversation = service
            .build_new(store, admin, c, conversation, Some(conversation_id))
            .await?;
        let x = &self.context;
        let context = Payload {
            values: vec![
                position_value(
                    x,
                    CONTEXT_NAME,
                    Value::Text(truncate(&title, x, CONTEXT_NAME)),
                ),
                position_value(
                    x,
                    CONTEXT_COUNTRY_CODE,
                    Value::Text(inbound.customer.country_code()),
                ),
                position_value(
                    x,
                    CONTEXT_ORG_NUMBER,
                    Value::Text(channel.number.omnichannel_form()),
                ),
                position_value(
                    x,
                    CONTEXT_CUSTOMER_NUMBER,
                    Value::Text(inbound.customer.omnichannel_form()),
                ),
                position_value(
                    x,
                    CONTEXT_PROVIDER,
                    Value::Int(self.provider_value(channel.provider)),
                ),
                position_value(
                    x,
                    CONTEXT_ENGAGEMENT_ID,
                    Value::Text(truncate(inbound.message_id, x, CONTEXT_ENGAGEMENT_ID)),
                ),
                position_value(x, CONTEXT_CONVERSATION, Value::Guid(conversation_id)),
            ],
            binds: owner_bind(x).into_iter().collect(),
        };
        let context = service
            .build_new(store, admin, x, context, Some(context_id))
            .await?;
        Ok((conversation, context))
    }

    /// Deletes delivery rows recorded before `before` (Unix seconds), at most `batch` per
    /// transaction, until none is left; returns how many went. A delivery inside the window
    /// is kept, so a replay of it is still recognised.
    pub async fn purge_deliveries(
        &self,
        store: &dyn Store,
        before: i64,
        batch: usize,
    ) -> Result<usize, SmsError> {
        let d = &self.delivery;
        let mut purged = 0;
        loop {
            let rows = store
                .query(Query {
                    plan: Plan {
                        entity: Arc::clone(d),
                        filter: Some(Expr::Compare {
                            prop: self.prop(d, CREATED_ON),
                            op: CmpOp::Lt,
                            value: Literal::DateTime(before),
                        }),
                        order: Vec::new(),
                        limit: Some(batch.max(1)),
                        after: None,
                        scope: None,
                        related: None,
                    },
                    context: no_context(),
                    with_names: false,
                })
                .await?;
            if rows.is_empty() {
                return Ok(purged);
            }
            let ops: Vec<WriteOp> = rows
                .iter()
                .filter_map(Record::id)
                .map(|id| WriteOp::Delete {
                    entity: Arc::clone(d),
                    id,
                    expect: Expect::Any,
                })
                .collect();
            let count = ops.len();
            match store.write_all(ops).await {
                Ok(_) => purged += count,
                // Another node purged some of them first: read again.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_delivery(
        &self,
        service: &Service,
        admin: &Caller,
        inbound: &Inbound<'_>,
        id: Uuid,
        context_id: Uuid,
        conversation_id: Option<Uuid>,
        opened: bool,
    ) -> Result<Record, SmsError> {
        let d = &self.delivery;
        let payload = Payload {
            values: vec![
                position_value(
                    d,
                    DELIVERY_MESSAGE_ID,
                    Value::Text(inbound.message_id.to_owned()),
                ),
                position_value(
                    d,
                    DELIVERY_PROVIDER,
                    Value::Int(self.provider_value(inbound.channel.provider)),
                ),
                position_value(d, DELIVERY_CHANNEL, Value::Guid(inbound.channel.id)),
                position_value(d, DELIVERY_CONTEXT, Value::Guid(context_id)),
                position_value(
                    d,
                    DELIVERY_CONVERSATION,
                    conversation_id.map_or(Value::Null, Value::Guid),
                ),
                position_value(d, DELIVERY_OPENED, Value::Bool(opened)),
            ],
            binds: Vec::new(),
        };
        Ok(service
            .build_new(service.system().store(), admin, d, payload, Some(id))
            .await?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_pair(
        &self,
        service: &Service,
        admin: &Caller,
        id: Uuid,
        org: &str,
        customer: &str,
        context_id: Uuid,
        inbound: &Inbound<'_>,
    ) -> Result<Record, SmsError> {
        let p = &self.pair;
        let payload = Payload {
            values: vec![
                position_value(p, PAIR_ORG_NUMBER, Value::Text(org.to_owned())),
                position_value(p, PAIR_CUSTOMER_NUMBER, Value::Text(customer.to_owned())),
                position_value(p, PAIR_CONTEXT, Value::Guid(context_id)),
                position_value(
                    p,
                    PAIR_LAST_MESSAGE,
                    Value::Text(inbound.message_id.to_owned()),
                ),
            ],
            binds: Vec::new(),
        };
        Ok(service
            .build_new(service.system().store(), admin, p, payload, Some(id))
            .await?)
    }

    fn touch_pair(
        &self,
        pair: &Record,
        context_id: Uuid,
        message_id: &str,
    ) -> Result<WriteOp, SmsError> {
        let p = &self.pair;
        Ok(WriteOp::Update {
            entity: Arc::clone(p),
            id: pair.id().unwrap_or_default(),
            changes: vec![
                position_value(p, PAIR_CONTEXT, Value::Guid(context_id)),
                position_value(p, PAIR_LAST_MESSAGE, Value::Text(message_id.to_owned())),
                position_value(p, MODIFIED_ON, Value::DateTime(now())),
            ],
            expect: Expect::Version(pair.version().unwrap_or_default()),
        })
    }

    // ---- outbound ------------------------------------------------------------------------

    /// Sends `text` to the customer of a context, from its organisation number, through the
    /// provider of that number's channel.
    pub async fn send(
        &self,
        service: &Service,
        db: &dyn Access,
        caller: &Caller,
        context_id: Uuid,
        text: &str,
    ) -> Result<Sent, SmsError> {
        // `db` is the caller's (guarded) access: answering a customer needs Write on the context.
        // The channel, with its secret, is then read by system access: sending through a
        // channel does not make its configuration readable to the caller.
        let store = service.system().store();
        let context = db
            .get_for(&self.context, context_id, false, Privilege::Write)
            .await
            .map_err(|e| SmsError::Exec(e.into()))?
            .ok_or(SmsError::ContextNotFound(context_id))?;
        let number = |column: &str| {
            context
                .get(column)
                .as_text()
                .and_then(|n| PhoneNumber::parse_omnichannel(n).ok())
        };
        let (Some(org), Some(customer)) =
            (number(CONTEXT_ORG_NUMBER), number(CONTEXT_CUSTOMER_NUMBER))
        else {
            return Err(SmsError::ContextWithoutNumbers(context_id));
        };
        let channel = self
            .channel_for(store, &org)
            .await?
            .ok_or_else(|| SmsError::UnknownChannel(org.e164()))?;
        let base = channel.api_base_url.as_deref();
        let account = channel.account.as_deref().unwrap_or_default();
        let request = match channel.provider {
            Provider::Twilio => {
                let callback = channel
                    .public_url
                    .as_deref()
                    .and_then(crate::channels::twilio::status_callback_url);
                outbound::twilio_request(
                    base,
                    account,
                    &channel.secret,
                    &org,
                    &customer,
                    text,
                    callback.as_deref(),
                )?
            }
            Provider::TeleSign => {
                outbound::telesign_request(base, account, &channel.secret, &customer, text)?
            }
        };
        let (message_id, status) = self.post(&request, channel.provider).await?;
        // The reply joins the transcript before the caller hears it was sent.
        self.record_reply(
            service,
            caller,
            &context,
            channel.provider,
            message_id.as_deref(),
            status.unwrap_or(DeliveryStatus::Queued),
            text,
        )
        .await?;
        tracing::info!(
            target: "smsctx::sms",
            provider = channel.provider.label(),
            context = %context_id,
            message = message_id.as_deref().unwrap_or(""),
            "outbound SMS accepted by the provider"
        );
        Ok(Sent {
            provider: channel.provider,
            message_id,
        })
    }

    async fn post(
        &self,
        request: &OutboundRequest,
        provider: Provider,
    ) -> Result<(Option<String>, Option<DeliveryStatus>), SmsError> {
        let response = self
            .http
            .post(&request.url)
            .header(reqwest::header::AUTHORIZATION, &request.authorization)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(request.form.clone())
            .send()
            .await
            .map_err(|e| SmsError::ProviderUnreachable(without_url(&e)))?;
        let status = response.status();
        let body: serde_json::Value = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let message = body
                .get("message")
                .and_then(|m| m.as_str())
                .or_else(|| body.pointer("/status/description").and_then(|m| m.as_str()))
                .unwrap_or("no reason given")
                .chars()
                .take(300)
                .collect();
            return Err(SmsError::ProviderRefused {
                status: status.as_u16(),
                message,
            });
        }
        let (id, status) = match provider {
            Provider::Twilio => (
                body.get("sid"),
                body.get("status")
                    .and_then(|s| s.as_str())
                    .and_then(DeliveryStatus::from_twilio),
            ),
            Provider::TeleSign => (
                body.get("reference_id"),
                body.pointer("/status/code")
                    .and_then(|c| c.as_i64())
                    .map(DeliveryStatus::from_telesign),
            ),
        };
        Ok((id.and_then(|v| v.as_str()).map(str::to_owned), status))
    }
}

/// The error text of a failed call without the URL (which may carry an account SID).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the provider API");
    }
    text
}

/// An organisation number must be written internationally (`+14252306549`, or the digits-only
/// stored form `14252306549`).
/// Anything else is refused with a message that shows what was typed and an example.
pub fn parse_org_number(text: &str) -> Result<PhoneNumber, SmsError> {
    let typed = text;
    let text = text.trim();
    let parsed = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        PhoneNumber::parse_omnichannel(text)
    } else {
        PhoneNumber::parse(text, None)
    };
    parsed.map_err(|e| {
        let why = match &e {
            // These repeat the number (with the '+' the digits-only form gets): say it plainly.
            PhoneError::TooShort(_) => "it is too short for its country code".to_string(),
            PhoneError::Unparseable { reason, .. } => reason.clone(),
            PhoneError::Invalid(_) => {
                "it is not a valid number for its country code (did you leave out the country \
                 code?)"
                    .to_string()
            }
            other => other.to_string(),
        };
        SmsError::InvalidChannel(format!(
            "the organisation number '{typed}' is not an E.164 number ({why}): write '+', the \
             country code and the number, e.g. +14252306549 for (425) 230-6549 in the US"
        ))
    })
}

/// A customer number as a provider sent it, national spellings read in the org number's
/// region.
pub fn parse_customer_number(text: &str, org: &PhoneNumber) -> Result<PhoneNumber, SmsError> {
    let text = text.trim();
    if text.starts_with('+') {
        return Ok(PhoneNumber::parse(text, None)?);
    }
    Ok(PhoneNumber::parse(text, org.region())?)
}

fn check_secret(provider: Provider, secret: &str, account: Option<&str>) -> Result<(), SmsError> {
    if secret.trim().is_empty() {
        return Err(SmsError::InvalidChannel("the secret is empty".into()));
    }
    if provider == Provider::TeleSign {
        telesign::decode_api_key(secret).map_err(|e| SmsError::InvalidChannel(e.to_string()))?;
        if account.is_none_or(|a| a.trim().is_empty()) {
            return Err(SmsError::InvalidChannel(
                "a TeleSign channel needs its customer id (--account)".into(),
            ));
        }
    }
    Ok(())
}

fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn position_value(entity: &Entity, column: &str, value: Value) -> (usize, Value) {
    (entity.position(column).unwrap_or_default(), value)
}

/// At most the column's `MaxLength` characters of `text`.
fn truncate(text: &str, entity: &Entity, column: &str) -> String {
    match entity.attribute(column).and_then(|a| a.max_length) {
        Some(max) => text.chars().take(max).collect(),
        None => text.to_owned(),
    }
}

fn no_context() -> QueryContext {
    QueryContext {
        now: now(),
        user_id: Uuid::nil(),
        business_unit_id: Uuid::nil(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask(""), "****");
        assert_eq!(mask("short"), "****");
        assert_eq!(mask("0123456789ab"), "****89ab");
        assert_eq!(mask("a-much-longer-auth-token-1234"), "****1234");
    }

    #[test]
    fn providers_parse_in_any_case() {
        assert_eq!(Provider::parse("twilio"), Some(Provider::Twilio));
        assert_eq!(Provider::parse(" TeleSign "), Some(Provider::TeleSign));
        assert_eq!(Provider::parse("infobip"), None);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(key(&["pair", "1", "23"]), key(&["pair", "1", "23"]));
        assert_ne!(key(&["pair", "1", "23"]), key(&["pair", "12", "3"]));
        assert_ne!(
            key(&["delivery", "Twilio", "SM1"]),
            key(&["delivery", "TeleSign", "SM1"])
        );
    }

    #[test]
    fn numbers_are_read_internationally_or_in_the_org_region() {
        let org = parse_org_number("+14252306549").unwrap();
        assert_eq!(parse_org_number("14252306549").unwrap(), org);
        assert!(parse_org_number("(425) 230-6549").is_err());
        let customer = parse_customer_number("(201) 555-0123", &org).unwrap();
        assert_eq!(customer.omnichannel_form(), "12015550123");
        assert_eq!(
            parse_customer_number("+1 201 555 0123", &org).unwrap(),
            customer
        );
    }

    #[test]
    fn the_channel_tables_are_in_the_store_catalog() {
        let catalog = Catalog::with_channels().unwrap();
        let sms = Sms::new(&catalog).unwrap();
        assert_eq!(sms.provider_value(Provider::Twilio), 192_350_001);
        assert_eq!(sms.provider_value(Provider::TeleSign), 192_350_000);
        assert_eq!(sms.provider_of(192_350_001), Some(Provider::Twilio));
        assert!(Catalog::builtin().unwrap().entity(CHANNEL).is_none());
    }
}
