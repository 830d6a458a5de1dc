//! Replies and their delivery status: a reply joins its conversation's transcript together
//! with its `smsctx_smsoutbound` row (id: UUID v5 of provider and message id), and a
//! provider's delivery report moves the reply's status in the transcript.
//!
//! Out of order and replayed reports are safe: the row keeps the most advanced status, a report
//! that does not advance it ([`DeliveryStatus::advances`]) writes nothing, and a report that
//! arrives before the send recorded its reply leaves a row without a note whose status the
//! reply starts from. Every change is one atomic write of the row (inserted, or compared-and-set
//! on its version) and the note (compared-and-set), retried after a lost race.

use std::sync::Arc;

use uuid::Uuid;

use super::transcript::{now_ms, Transcripts};
use super::{key, now, position_value, Provider, Sms, SmsError, MAX_ATTEMPTS};
use crate::channels::transcript::{reply_tags, Author, DeliveryStatus};
use crate::execute::{Caller, Service};
use crate::metadata::sms::*;
use crate::metadata::system::{FULL_NAME, MODIFIED_ON};
use crate::parse::body::Payload;
use crate::store::{Expect, Record, StoreError, Value, WriteOp};

/// What a delivery report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The reply's status moved.
    Updated,
    /// The report does not advance the recorded status (late, or a replay): nothing written.
    Unchanged,
    /// The reply is not recorded (yet): the status waits in its row for it.
    Early,
}

impl Sms {
    fn outbound_id(provider: Provider, message_id: &str) -> Uuid {
        key(&["outbound", provider.label(), message_id])
    }

    /// Records a reply the provider accepted as `message_id` (when it gave one) in the
    /// transcript of `context`'s conversation, written by `caller`, with its row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_reply(
        &self,
        service: &Service,
        caller: &Caller,
        context: &Record,
        provider: Provider,
        message_id: Option<&str>,
        status: DeliveryStatus,
        text: &str,
    ) -> Result<(), SmsError> {
        let store = service.system().store();
        let Some(conversation_id) = context.get(CONTEXT_CONVERSATION).as_guid() else {
            return Ok(());
        };
        let agent = store.get(&self.user, caller.user_id, false).await?;
        let name = agent
            .as_ref()
            .and_then(|a| a.get(FULL_NAME).as_text())
            .unwrap_or_default()
            .to_owned();
        let at = now_ms();
        for _ in 0..MAX_ATTEMPTS {
            let Some(conversation) = store
                .get(&self.conversation, conversation_id, false)
                .await?
            else {
                return Ok(());
            };
            let note = self
                .transcripts
                .transcript_note(store, conversation_id)
                .await?;
            let row = match message_id {
                Some(id) => {
                    store
                        .get(&self.outbound, Sms::outbound_id(provider, id), false)
                        .await?
                }
                None => None,
            };
            // A report that came first decides where the reply starts.
            let (status, error) = match row.as_ref().map(stored_status) {
                Some((Some(early), error)) if early.advances(Some(status)) => (early, error),
                _ => (status, None),
            };
            let tags = reply_tags(message_id, status, error.as_deref());
            let author = Author::Agent {
                name: &name,
                id: caller.user_id,
            };
            let mut ops = self
                .transcripts
                .transcript_writes(service, caller, &conversation, note.as_ref(), |t| {
                    t.push(at, author, text, &tags);
                    true
                })
                .await?
                .unwrap_or_default();
            let note_id = Transcripts::transcript_note_id(conversation_id);
            if let Some(id) = message_id {
                ops.push(match &row {
                    Some(row) => self.outbound_update(
                        row,
                        vec![
                            position_value(
                                &self.outbound,
                                OUTBOUND_ANNOTATION,
                                Value::Guid(note_id),
                            ),
                            position_value(
                                &self.outbound,
                                OUTBOUND_CONVERSATION,
                                Value::Guid(conversation_id),
                            ),
                        ],
                    ),
                    None => WriteOp::Insert(
                        self.new_outbound(
                            service,
                            caller,
                            provider,
                            id,
                            status,
                            None,
                            Some(note_id),
                        )
                        .await?,
                    ),
                });
            }
            match store.write_all(ops).await {
                Ok(_) => return Ok(()),
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

    /// A provider's report that the message it knows as `message_id` reached `status`.
    pub async fn delivery_report(
        &self,
        service: &Service,
        admin: &Caller,
        provider: Provider,
        message_id: &str,
        status: DeliveryStatus,
        error_code: Option<&str>,
    ) -> Result<Reported, SmsError> {
        let store = service.system().store();
        let id = Sms::outbound_id(provider, message_id);
        for _ in 0..MAX_ATTEMPTS {
            let Some(row) = store.get(&self.outbound, id, false).await? else {
                let early = self
                    .new_outbound(
                        service, admin, provider, message_id, status, error_code, None,
                    )
                    .await?;
                match store.write(WriteOp::Insert(early)).await {
                    Ok(_) => return Ok(Reported::Early),
                    Err(StoreError::Duplicate) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let (current, _) = stored_status(&row);
            if !status.advances(current) {
                return Ok(Reported::Unchanged);
            }
            let o = &self.outbound;
            let mut ops = vec![self.outbound_update(
                &row,
                vec![
                    position_value(o, OUTBOUND_STATUS, Value::Text(status.label().to_owned())),
                    position_value(
                        o,
                        OUTBOUND_ERROR_CODE,
                        error_code.map_or(Value::Null, |c| Value::Text(c.to_owned())),
                    ),
                ],
            )];
            let note = match row.get(OUTBOUND_ANNOTATION).as_guid() {
                Some(note) => store.get(&self.transcripts.note, note, false).await?,
                None => None,
            };
            if let Some(note) = &note {
                ops.extend(
                    self.transcripts
                        .edit_note(note, |t| t.set_delivery(message_id, status, error_code))?,
                );
            }
            match store.write_all(ops).await {
                Ok(_) if note.is_some() => return Ok(Reported::Updated),
                Ok(_) => return Ok(Reported::Early),
                Err(StoreError::VersionMismatch { .. } | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SmsError::Contention)
    }

    fn outbound_update(&self, row: &Record, mut changes: Vec<(usize, Value)>) -> WriteOp {
        changes.push(position_value(
            &self.outbound,
            MODIFIED_ON,
            Value::DateTime(now()),
        ));
        WriteOp::Update {
            entity: Arc::clone(&self.outbound),
            id: row.id().unwrap_or_default(),
            changes,
            expect: Expect::Version(row.version().unwrap_or_default()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_outbound(
        &self,
        service: &Service,
        caller: &Caller,
        provider: Provider,
        message_id: &str,
        status: DeliveryStatus,
        error_code: Option<&str>,
        note: Option<Uuid>,
    ) -> Result<Record, SmsError> {
        let o = &self.outbound;
        let required = Payload {
            values: vec![
                position_value(
                    o,
                    OUTBOUND_MESSAGE_ID,
                    Value::Text(super::truncate(message_id, o, OUTBOUND_MESSAGE_ID)),
                ),
                position_value(
                    o,
                    OUTBOUND_PROVIDER,
                    Value::Int(self.provider_value(provider)),
                ),
            ],
            binds: Vec::new(),
        };
        let mut row = service
            .build_new(
                service.system().store(),
                caller,
                o,
                required,
                Some(Sms::outbound_id(provider, message_id)),
            )
            .await?;
        row.set(OUTBOUND_STATUS, Value::Text(status.label().to_owned()));
        if let Some(code) = error_code {
            row.set(
                OUTBOUND_ERROR_CODE,
                Value::Text(super::truncate(code, o, OUTBOUND_ERROR_CODE)),
            );
        }
        if let Some(note) = note {
            row.set(OUTBOUND_ANNOTATION, Value::Guid(note));
        }
        Ok(row)
    }
}

/// The status and error code an outbound row records.
fn stored_status(row: &Record) -> (Option<DeliveryStatus>, Option<String>) {
    (
        row.get(OUTBOUND_STATUS)
            .as_text()
            .and_then(DeliveryStatus::parse),
        row.get(OUTBOUND_ERROR_CODE).as_text().map(str::to_owned),
    )
}
