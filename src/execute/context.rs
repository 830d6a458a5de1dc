//! Who is calling: the principal every message runs as.
//!
//! Authentication (the HTTP edge) produces a [`Caller`]; every message takes one. The security
//! model will extend this with the caller's roles and teams; today the admin token acts as the
//! seeded administrator.

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
