//! The transcript tables (`metadata/msdyn_transcript.md`, `metadata/annotation.md`), named once,
//! and the tables whose rows are readable exactly when their parent row is.

/// One transcript per conversation.
pub const TRANSCRIPT: &str = "msdyn_transcript";
pub const TRANSCRIPT_NAME: &str = "msdyn_name";
pub const TRANSCRIPT_CONVERSATION: &str = "msdyn_liveworkitemidid";

/// The note holding a transcript's messages.
pub const ANNOTATION: &str = "annotation";
pub const ANNOTATION_SUBJECT: &str = "subject";
pub const ANNOTATION_DOCUMENT_BODY: &str = "documentbody";
pub const ANNOTATION_FILE_NAME: &str = "filename";
pub const ANNOTATION_FILE_SIZE: &str = "filesize";
pub const ANNOTATION_MIME_TYPE: &str = "mimetype";
pub const ANNOTATION_IS_DOCUMENT: &str = "isdocument";
pub const ANNOTATION_OBJECT: &str = "objectid";
pub const ANNOTATION_OBJECT_TYPE: &str = "objecttypecode";

/// Tables without a row scope of their own: a row is readable exactly when the row its lookup
/// points at is (table, lookup, parent table). A note is read through its transcript, a
/// transcript through its conversation.
pub const PARENTED: &[(&str, &str, &str)] = &[
    (ANNOTATION, ANNOTATION_OBJECT, TRANSCRIPT),
    (
        TRANSCRIPT,
        TRANSCRIPT_CONVERSATION,
        super::sms::CONVERSATION,
    ),
];

/// The parent of a parented table: (lookup, parent table).
pub fn parent_of(table: &str) -> Option<(&'static str, &'static str)> {
    PARENTED
        .iter()
        .find(|(t, _, _)| *t == table)
        .map(|(_, lookup, parent)| (*lookup, *parent))
}
