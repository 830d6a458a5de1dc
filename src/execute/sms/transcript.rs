//! A conversation's transcript in the store: one `msdyn_transcript` row and its note
//! (`annotation`, `objecttypecode` `msdyn_transcript`, `documentbody` the base64 JSON of
//! [`Transcript`]), both keyed by UUID v5 of the conversation, so two writers that open the
//! same transcript collide on the key and one of them reads again.
//!
//! Every change is one set of writes the caller puts into the same transaction as the message
//! it records: the two inserts when the conversation has no transcript yet, else the note
//! compared-and-set on the version it was read at. A writer that lost the race reads the note
//! again and applies its change to the winner's messages.

use std::sync::Arc;

use uuid::Uuid;

use super::{key, now, position_value, truncate, SmsError};
use crate::channels::transcript::{Transcript, FILE_NAME, MIME_TYPE};
use crate::execute::{Caller, ExecError, Service};
use crate::metadata::sms::CONVERSATION_SUBJECT;
use crate::metadata::system::{
    MODIFIED_ON, OWNER_ID, OWNER_ID_TYPE, OWNING_BUSINESS_UNIT, OWNING_TEAM, OWNING_USER,
};
use crate::metadata::transcripts::*;
use crate::metadata::{Catalog, Entity};
use crate::parse::body::Payload;
use crate::store::{Access, Expect, Record, StoreError, Value, WriteOp};

/// The columns a transcript and its note copy from the conversation: they are owned as it is.
const OWNERSHIP: &[&str] = &[
    OWNER_ID,
    OWNER_ID_TYPE,
    OWNING_BUSINESS_UNIT,
    OWNING_USER,
    OWNING_TEAM,
];

/// The current time in Unix milliseconds (transcript message times).
pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The transcript tables, for the SMS channel and the conversation lifecycle.
pub(crate) struct Transcripts {
    pub(crate) transcript: Arc<Entity>,
    pub(crate) note: Arc<Entity>,
}

impl Transcripts {
    /// `None` when the catalog has no transcript tables.
    pub(crate) fn new(catalog: &Catalog) -> Option<Transcripts> {
        Some(Transcripts {
            transcript: Arc::clone(catalog.entity(TRANSCRIPT)?),
            note: Arc::clone(catalog.entity(ANNOTATION)?),
        })
    }

    /// The transcript of a conversation.
    pub fn transcript_id(conversation_id: Uuid) -> Uuid {
        key(&["transcript", &conversation_id.to_string()])
    }

    /// The note holding that transcript's messages.
    pub fn transcript_note_id(conversation_id: Uuid) -> Uuid {
        key(&["transcript-note", &conversation_id.to_string()])
    }

    /// The note of a conversation's transcript, as stored (`None` before its first message).
    pub(crate) async fn transcript_note(
        &self,
        store: &dyn Access,
        conversation_id: Uuid,
    ) -> Result<Option<Record>, SmsError> {
        Ok(store
            .get(
                &self.note,
                Transcripts::transcript_note_id(conversation_id),
                false,
            )
            .await?)
    }

    /// The writes that apply `edit` to the messages of `conversation`'s transcript, whose note
    /// was read as `note`: the transcript and its note inserted when there is none, else the
    /// note compared-and-set on the version read. `None` when `edit` changed nothing.
    pub(crate) async fn transcript_writes(
        &self,
        service: &Service,
        admin: &Caller,
        conversation: &Record,
        note: Option<&Record>,
        edit: impl FnOnce(&mut Transcript) -> bool,
    ) -> Result<Option<Vec<WriteOp>>, SmsError> {
        let conversation_id = conversation.id().unwrap_or_default();
        let mut transcript = read(note, conversation_id)?;
        if !edit(&mut transcript) {
            return Ok(None);
        }
        let (body, size) = document(&transcript);
        if let Some(note) = note {
            return Ok(Some(vec![self.note_update(note, body, size)]));
        }
        let store = service.system().store();
        let transcript_id = Transcripts::transcript_id(conversation_id);
        let t = &self.transcript;
        let mut row = service
            .build_new(store, admin, t, Payload::default(), Some(transcript_id))
            .await?;
        let subject = conversation
            .get(CONVERSATION_SUBJECT)
            .as_text()
            .unwrap_or_default()
            .to_owned();
        row.set(
            TRANSCRIPT_NAME,
            Value::Text(truncate(&subject, t, TRANSCRIPT_NAME)),
        );
        row.set(TRANSCRIPT_CONVERSATION, Value::Guid(conversation_id));
        let n = &self.note;
        let mut note = service
            .build_new(
                store,
                admin,
                n,
                Payload::default(),
                Some(Transcripts::transcript_note_id(conversation_id)),
            )
            .await?;
        note.set(
            ANNOTATION_SUBJECT,
            Value::Text(truncate(&subject, n, ANNOTATION_SUBJECT)),
        );
        note.set(ANNOTATION_DOCUMENT_BODY, body);
        note.set(ANNOTATION_FILE_SIZE, size);
        note.set(ANNOTATION_FILE_NAME, Value::Text(FILE_NAME.to_owned()));
        note.set(ANNOTATION_MIME_TYPE, Value::Text(MIME_TYPE.to_owned()));
        note.set(ANNOTATION_IS_DOCUMENT, Value::Bool(true));
        note.set(ANNOTATION_OBJECT, Value::Guid(transcript_id));
        note.set(ANNOTATION_OBJECT_TYPE, Value::Text(TRANSCRIPT.to_owned()));
        for column in OWNERSHIP {
            let value = conversation.get(column).clone();
            row.set(column, value.clone());
            note.set(column, value);
        }
        Ok(Some(vec![WriteOp::Insert(row), WriteOp::Insert(note)]))
    }

    /// The write that applies `edit` to a stored note's messages, compared-and-set on the
    /// version read; `None` when `edit` changed nothing.
    pub(crate) fn edit_note(
        &self,
        note: &Record,
        edit: impl FnOnce(&mut Transcript) -> bool,
    ) -> Result<Option<WriteOp>, SmsError> {
        let mut transcript = read(Some(note), note.id().unwrap_or_default())?;
        if !edit(&mut transcript) {
            return Ok(None);
        }
        let (body, size) = document(&transcript);
        Ok(Some(self.note_update(note, body, size)))
    }

    fn note_update(&self, note: &Record, body: Value, size: Value) -> WriteOp {
        let n = &self.note;
        WriteOp::Update {
            entity: Arc::clone(n),
            id: note.id().unwrap_or_default(),
            changes: vec![
                position_value(n, ANNOTATION_DOCUMENT_BODY, body),
                position_value(n, ANNOTATION_FILE_SIZE, size),
                position_value(n, MODIFIED_ON, Value::DateTime(now())),
            ],
            expect: Expect::Version(note.version().unwrap_or_default()),
        }
    }
}

/// The messages of a note as stored (none before the first).
fn read(note: Option<&Record>, of: Uuid) -> Result<Transcript, SmsError> {
    Transcript::decode(note.and_then(|n| n.get(ANNOTATION_DOCUMENT_BODY).as_text())).map_err(|e| {
        SmsError::Exec(ExecError::Store(StoreError::Unexpected(format!(
            "the transcript {of}: {e}"
        ))))
    })
}

/// `documentbody` and `filesize` of a transcript.
fn document(transcript: &Transcript) -> (Value, Value) {
    let size = transcript.to_json().len() as i64;
    (Value::Text(transcript.encode()), Value::Int(size))
}
