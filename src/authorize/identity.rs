//! The identity messages' reads on a [`Guard`]: RetrieveUserPrivileges reads a user's security
//! context (its roles, its teams and their roles) after checking the caller may read the user.

use uuid::Uuid;

use super::{Guard, MessageError, PrincipalRef};
use crate::security::SecurityContext;

impl Guard<'_> {
    /// The privileges `user` holds, as a security context (never capped by impersonation: it is
    /// the user's own); the caller needs Read on the user.
    pub async fn user_privileges(&self, user: Uuid) -> Result<SecurityContext, MessageError> {
        self.context_of(PrincipalRef {
            id: user,
            is_team: false,
        })
        .await
    }
}
