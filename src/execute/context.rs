//! Who is calling: the principal every message runs as.
//!
//! Authentication (the HTTP edge) produces a [`Caller`]; every message takes one. What the
//! caller may do is not here: the store a message gets is the caller's
//! [`crate::authorize::Guard`].

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The systemuser the message runs as (the impersonated user when impersonating).
    pub user_id: Uuid,
    /// That user's business unit.
    pub business_unit_id: Uuid,
    /// The real caller when impersonating (`createdonbehalfby`, `modifiedonbehalfby`).
    pub on_behalf_of: Option<Uuid>,
}
