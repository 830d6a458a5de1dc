//! The two ways to the store that are not a [`Guard`] over it, each named so that it stands out
//! in review:
//! - [`SystemAccess`]: the store with no caller's rights, for what no caller's rights may decide
//!   (authentication loading the principal, first-start seeding, the SMS webhooks reading a
//!   channel's secret and landing a message as the administrator, `smsctx channel` on the
//!   command line). It is only made by [`crate::execute::Service::system`];
//! - [`ChangeSet`]: a `$batch` change set's transaction, which hands out only guards over
//!   itself, and commits or rolls back.

use super::{Directory, Guard, Principal};
use crate::store::{Access, Store, StoreError, Transaction};

/// The store without any caller's rights. Every use is a system read or write: grep for
/// `system()` to review them all.
#[derive(Clone, Copy)]
pub struct SystemAccess<'a> {
    store: &'a dyn Store,
}

impl<'a> SystemAccess<'a> {
    pub(crate) fn new(store: &'a dyn Store) -> SystemAccess<'a> {
        SystemAccess { store }
    }

    /// The unguarded store.
    pub fn store(self) -> &'a dyn Store {
        self.store
    }
}

/// A `$batch` change set: one store transaction, reached only through guards.
pub struct ChangeSet {
    transaction: Box<dyn Transaction>,
}

impl ChangeSet {
    pub(crate) async fn begin(store: &dyn Store) -> Result<ChangeSet, StoreError> {
        Ok(ChangeSet {
            transaction: store.begin().await?,
        })
    }

    /// The transaction as `principal` may use it.
    pub fn guard<'a>(&'a self, directory: &'a Directory, principal: &'a Principal) -> Guard<'a> {
        Guard::new(&*self.transaction, None, directory, principal)
    }

    /// **System access** to this transaction: the server's own bookkeeping, written in the
    /// same transaction as the rows its guards wrote (a BulkDelete job's progress and cursor
    /// beside the batch of rows it deleted as the job's owner).
    pub fn system(&self) -> &dyn Access {
        &*self.transaction
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.transaction.commit().await
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        self.transaction.rollback().await
    }
}
