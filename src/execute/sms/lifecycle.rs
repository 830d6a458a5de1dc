//! The conversation lifecycle: a conversation (`msdyn_ocliveworkitem`) that is closed or
//! resolved, by any path that updates it (a Web API `PATCH` of `statecode`, a `$batch` part, an
//! upsert, UpdateMultiple) or by a channel's inactivity timeout, deactivates its active
//! engagement contexts and records the event in its transcript, in the same transaction as the
//! update itself ([`crate::store::Access::write_with`]). A new message after that opens a new
//! conversation and context, as the webhook always did for an ended conversation.

use std::sync::Arc;

use uuid::Uuid;

use super::transcript::{now_ms, Transcripts};
use super::{now, position_value, Sms, SmsError};
use crate::channels::transcript::{Author, SYSTEM_TAGS};
use crate::execute::{Caller, ExecError, Service};
use crate::metadata::sms::*;
use crate::metadata::system::{CREATED_ON, MODIFIED_ON};
use crate::metadata::{Catalog, Entity};
use crate::parse::body::Payload;
use crate::query::ast::{CmpOp, Expr, Literal, PropertyRef};
use crate::store::sql::Plan;
use crate::store::{Expect, Query, Record, Store, StoreError, Value, WriteOp};

/// At most this many active contexts of one conversation are deactivated with its close (the
/// webhook keeps one; contexts created through the Web API may add a few).
const MAX_CONTEXTS: usize = 100;

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Closed,
    Resolved,
    /// Closed by its channel's inactivity timeout (minutes).
    Idle(i64),
}

impl Ending {
    fn message(self) -> String {
        match self {
            Ending::Closed => "The conversation was closed.".to_owned(),
            Ending::Resolved => "The conversation was resolved.".to_owned(),
            Ending::Idle(minutes) => {
                format!("The conversation was closed after {minutes} minutes without a message.")
            }
        }
    }
}

/// The tables the lifecycle acts on.
pub struct Lifecycle {
    context: Arc<Entity>,
    conversation: Arc<Entity>,
    transcripts: Transcripts,
}

fn exec(e: SmsError) -> ExecError {
    match e {
        SmsError::Exec(e) => e,
        other => ExecError::Store(StoreError::Unexpected(other.to_string())),
    }
}

fn prop(entity: &Entity, column: &str) -> PropertyRef {
    PropertyRef {
        index: entity.position(column).unwrap_or_default(),
        name: column.to_owned(),
    }
}

fn state_of(entity: &Entity, invariant: &str) -> Option<i64> {
    entity
        .state_model()?
        .state_by_invariant_name(invariant)
        .map(i64::from)
}

/// The SetState payload moving a row of `entity` to the state named `invariant`, with that
/// state's default status.
pub(crate) fn set_state(entity: &Entity, invariant: &str) -> Payload {
    let model = entity.state_model();
    let state = model
        .as_ref()
        .and_then(|m| m.state_by_invariant_name(invariant))
        .unwrap_or_default();
    let status = model
        .as_ref()
        .and_then(|m| m.default_status(state))
        .unwrap_or_default();
    Payload {
        values: vec![
            position_value(entity, STATE, Value::Int(state.into())),
            position_value(entity, STATUS, Value::Int(status.into())),
        ],
        binds: Vec::new(),
    }
}

impl Lifecycle {
    /// `None` when the catalog lacks one of the tables.
    pub fn new(catalog: &Catalog) -> Option<Lifecycle> {
        Some(Lifecycle {
            context: Arc::clone(catalog.entity(CONTEXT)?),
            conversation: Arc::clone(catalog.entity(CONVERSATION)?),
            transcripts: Transcripts::new(catalog)?,
        })
    }

    /// How an update of `current` (a row of `entity`) by `changes` ends a conversation, if it
    /// does: `statecode` moves to Closed or Resolved from another state.
    fn ending(
        &self,
        entity: &Entity,
        current: &Record,
        changes: &[(usize, Value)],
    ) -> Option<Ending> {
        if entity.logical_name != self.conversation.logical_name {
            return None;
        }
        let position = entity.position(STATE)?;
        let next = changes
            .iter()
            .find(|(p, _)| *p == position)
            .and_then(|(_, v)| v.as_int())?;
        let before = current.values[position].as_int();
        let closed = state_of(entity, STATE_CLOSED);
        let resolved = state_of(entity, STATE_RESOLVED);
        if before == closed || before == resolved {
            return None;
        }
        match Some(next) {
            n if n == closed => Some(Ending::Closed),
            n if n == resolved => Some(Ending::Resolved),
            _ => None,
        }
    }

    /// The writes that go with the update of `current` by `changes`: when it ends a
    /// conversation, the SetState(Inactive) of each of its active contexts and a system
    /// message in its transcript (when it has one, compared-and-set on its version). Made by
    /// the platform, whoever closed the conversation (`caller` is recorded as the modifier).
    pub async fn consequences(
        &self,
        service: &Service,
        caller: &Caller,
        entity: &Entity,
        current: &Record,
        changes: &[(usize, Value)],
    ) -> Result<Vec<WriteOp>, ExecError> {
        match self.ending(entity, current, changes) {
            Some(ending) => self.ending_writes(service, caller, current, ending).await,
            None => Ok(Vec::new()),
        }
    }

    async fn ending_writes(
        &self,
        service: &Service,
        caller: &Caller,
        conversation: &Record,
        ending: Ending,
    ) -> Result<Vec<WriteOp>, ExecError> {
        let store = service.system().store();
        let id = conversation.id().unwrap_or_default();
        let mut ops = Vec::new();
        for context in self.active_contexts(store, id).await? {
            ops.push(self.deactivate(service, caller, &context).await?);
        }
        if let Some(note) = self
            .transcripts
            .transcript_note(store, id)
            .await
            .map_err(exec)?
        {
            let at = now_ms();
            let text = ending.message();
            ops.extend(
                self.transcripts
                    .edit_note(&note, |t| {
                        t.push(at, Author::System, &text, SYSTEM_TAGS);
                        true
                    })
                    .map_err(exec)?,
            );
        }
        Ok(ops)
    }

    async fn active_contexts(
        &self,
        store: &dyn Store,
        conversation: Uuid,
    ) -> Result<Vec<Record>, ExecError> {
        let x = &self.context;
        let active = state_of(x, STATE_ACTIVE).unwrap_or_default();
        let filter = Expr::And(vec![
            Expr::Compare {
                prop: prop(x, CONTEXT_CONVERSATION),
                op: CmpOp::Eq,
                value: Literal::Guid(conversation),
            },
            Expr::Compare {
                prop: prop(x, STATE),
                op: CmpOp::Eq,
                value: Literal::Int(active),
            },
        ]);
        Ok(store
            .query(Query {
                plan: Plan {
                    entity: Arc::clone(x),
                    filter: Some(filter),
                    order: Vec::new(),
                    limit: Some(MAX_CONTEXTS),
                    after: None,
                    scope: None,
                    related: None,
                },
                context: super::no_context(),
                with_names: false,
            })
            .await?)
    }

    /// SetState(Inactive) of a context. Not compared-and-set: it changes only the state (and
    /// the modification columns), so a concurrent change of other columns survives it, and a
    /// change set that changed the context earlier is not refused.
    async fn deactivate(
        &self,
        service: &Service,
        caller: &Caller,
        context: &Record,
    ) -> Result<WriteOp, ExecError> {
        let x = &self.context;
        let changes = service
            .update_changes(
                service.system().store(),
                caller,
                x,
                context,
                set_state(x, STATE_INACTIVE),
            )
            .await?;
        Ok(WriteOp::Update {
            entity: Arc::clone(x),
            id: context.id().unwrap_or_default(),
            changes,
            expect: Expect::Any,
        })
    }

    /// Closes the open conversations of the active contexts of organisation number `org`
    /// (those created before the cutoff: every one is read, so a pass costs a read per such
    /// context) whose transcript (or, without one, the conversation) has not changed for
    /// `minutes`;
    /// returns how many it closed. Each close is one write: the conversation compared-and-set
    /// on its version (so a message that lands meanwhile wins, and the conversation stays
    /// open), its contexts deactivated, the event in its transcript.
    pub async fn close_idle(
        &self,
        service: &Service,
        admin: &Caller,
        org: &str,
        minutes: i64,
    ) -> Result<usize, ExecError> {
        let store = service.system().store();
        let x = &self.context;
        let active = state_of(x, STATE_ACTIVE).unwrap_or_default();
        let cutoff = now() - minutes * 60;
        let contexts = store
            .query(Query {
                plan: Plan {
                    entity: Arc::clone(x),
                    filter: Some(Expr::And(vec![
                        Expr::Compare {
                            prop: prop(x, CONTEXT_ORG_NUMBER),
                            op: CmpOp::Eq,
                            value: Literal::String(org.to_owned()),
                        },
                        Expr::Compare {
                            prop: prop(x, STATE),
                            op: CmpOp::Eq,
                            value: Literal::Int(active),
                        },
                        Expr::Compare {
                            prop: prop(x, CREATED_ON),
                            op: CmpOp::Le,
                            value: Literal::DateTime(cutoff),
                        },
                    ])),
                    order: Vec::new(),
                    limit: None,
                    after: None,
                    scope: None,
                    related: None,
                },
                context: super::no_context(),
                with_names: false,
            })
            .await?;
        let mut closed = 0;
        for context in contexts {
            let Some(id) = context.get(CONTEXT_CONVERSATION).as_guid() else {
                continue;
            };
            let Some(conversation) = store.get(&self.conversation, id, false).await? else {
                continue;
            };
            let state = conversation.get(STATE).as_int();
            if state == state_of(&self.conversation, STATE_CLOSED)
                || state == state_of(&self.conversation, STATE_RESOLVED)
            {
                continue;
            }
            let note = self
                .transcripts
                .transcript_note(store, id)
                .await
                .map_err(exec)?;
            let last = note.as_ref().unwrap_or(&conversation).get(MODIFIED_ON);
            if !matches!(last, Value::DateTime(t) if *t <= cutoff) {
                continue;
            }
            let c = &self.conversation;
            let changes = service
                .update_changes(store, admin, c, &conversation, set_state(c, STATE_CLOSED))
                .await?;
            let mut ops = vec![WriteOp::Update {
                entity: Arc::clone(c),
                id,
                changes,
                expect: Expect::Version(conversation.version().unwrap_or_default()),
            }];
            ops.extend(
                self.ending_writes(service, admin, &conversation, Ending::Idle(minutes))
                    .await?,
            );
            match store.write_all(ops).await {
                Ok(_) => closed += 1,
                // A message, a reply or a close got in first: the next pass looks again.
                Err(StoreError::VersionMismatch { .. } | StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(closed)
    }
}

impl Sms {
    /// One pass of the inactivity worker: every channel with an inactivity timeout closes its
    /// idle conversations. Returns how many were closed.
    pub async fn close_idle_conversations(
        &self,
        service: &Service,
        admin: &Caller,
    ) -> Result<usize, SmsError> {
        let Some(lifecycle) = service.lifecycle() else {
            return Ok(0);
        };
        let mut closed = 0;
        for channel in self.channels(service.system().store()).await? {
            let Some(minutes) = channel.inactivity_timeout else {
                continue;
            };
            closed += lifecycle
                .close_idle(service, admin, &channel.number.omnichannel_form(), minutes)
                .await?;
        }
        Ok(closed)
    }
}
