//! Admission to a fixed number of database connections, with a bounded queue in front.
//!
//! At most `slots` requests use a connection at once and at most `queue` more wait for one;
//! the request after those is refused at once with [`StoreError::Busy`] (a 503 with
//! `Retry-After` at the edge) instead of adding a thread, a connection or an unbounded wait.
//! A waiting request holds nothing but its future, and leaves the queue when it is dropped
//! (the client went away).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;

/// The default bound of the queue of requests waiting for a connection.
pub const DEFAULT_QUEUE: usize = 1024;

/// The connection slots and the queue's length.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// How long a refused caller is told to wait before it tries again, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// One slot in use; dropping it frees the slot for the next waiting request.
pub type Slot = OwnedSemaphorePermit;

impl Admission {
    pub fn new(slots: usize, queue: usize) -> Admission {
        Admission {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    /// A free slot now, or one after waiting in the queue, or [`StoreError::Busy`] when the
    /// queue is full.
    pub async fn enter(&self) -> Result<Slot, StoreError> {
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let _place = self.join_queue()?;
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Whether a request arriving now would be refused (every slot taken, the queue full).
    pub fn is_full(&self) -> bool {
        self.slots.available_permits() == 0 && self.waiting.load(Ordering::Acquire) >= self.queue
    }

    fn join_queue(&self) -> Result<Place<'_>, StoreError> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.queue).then_some(n + 1)
            })
            .map_err(|_| StoreError::Busy)?;
        Ok(Place(&self.waiting))
    }
}

/// A place in the queue, given up when dropped (admitted, or the request was dropped).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_slot_admits_the_next() {
        let admission = Arc::new(Admission::new(1, 1));
        let first = admission.enter().await.unwrap();
        let waiter = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.enter().await.map(drop) }
        });
        while admission.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(admission.is_full());
        assert!(matches!(admission.enter().await, Err(StoreError::Busy)));
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
        assert!(admission.enter().await.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let admission = Admission::new(1, 1);
        let _slot = admission.enter().await.unwrap();
        {
            let waiting = admission.enter();
            tokio::pin!(waiting);
            assert!(futures_poll_once(waiting.as_mut()).await.is_none());
            assert_eq!(admission.waiting.load(Ordering::Acquire), 1);
        }
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
    }

    /// Polls `future` once: its output if it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
