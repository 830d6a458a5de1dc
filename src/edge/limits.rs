//! Service protection, in the spirit of Dataverse's API limits: per user, at most N requests in a
//! sliding window and at most M requests at once. Off unless configured. A refused request is a
//! 429 with `Retry-After` and Dataverse's code (`0x80072322` for the request count,
//! `0x80072326` for concurrency).
//!
//! The counts live in this node's memory: behind a load balancer, each node counts its own share
//! of a user's requests (as each Dataverse web server does).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::error::ApiError;

/// What `--rate-limit-*` configure; `None` is no limit.
#[derive(Debug, Clone, Default)]
pub struct LimitConfig {
    pub requests: Option<usize>,
    pub window: Duration,
    pub concurrent: Option<usize>,
}

#[derive(Default)]
struct UserState {
    /// When each request of the window started, oldest first.
    started: VecDeque<Instant>,
    in_flight: usize,
}

pub struct Limiter {
    config: LimitConfig,
    users: Mutex<HashMap<Uuid, UserState>>,
}

/// A request in flight; dropping it frees its concurrency slot.
pub struct Permit {
    limiter: Option<(Arc<Limiter>, Uuid)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((limiter, user)) = self.limiter.take() {
            let mut users = limiter.users.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = users.get_mut(&user) {
                state.in_flight = state.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Limiter {
    pub fn new(config: LimitConfig) -> Arc<Limiter> {
        Arc::new(Limiter {
            config,
            users: Mutex::new(HashMap::new()),
        })
    }

    fn is_off(&self) -> bool {
        self.config.requests.is_none() && self.config.concurrent.is_none()
    }

    /// Admits one request of `user`, or answers 429.
    pub fn admit(self: &Arc<Self>, user: Uuid) -> Result<Permit, ApiError> {
        if self.is_off() {
            return Ok(Permit { limiter: None });
        }
        let now = Instant::now();
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let state = users.entry(user).or_default();
        if let Some(max) = self.config.requests {
            let window = self.config.window;
            while state
                .started
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                state.started.pop_front();
            }
            if state.started.len() >= max {
                let oldest = state.started.front().copied().unwrap_or(now);
                let retry = window.saturating_sub(now.duration_since(oldest));
                return Err(ApiError::request_count_exceeded(max, window, retry));
            }
        }
        if let Some(max) = self.config.concurrent {
            if state.in_flight >= max {
                return Err(ApiError::concurrency_exceeded(max));
            }
        }
        if self.config.requests.is_some() {
            state.started.push_back(now);
        }
        state.in_flight += 1;
        Ok(Permit {
            limiter: Some((Arc::clone(self), user)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn the_window_counts_requests_and_concurrency_counts_permits() {
        let limiter = Limiter::new(LimitConfig {
            requests: Some(2),
            window: Duration::from_secs(300),
            concurrent: None,
        });
        let user = Uuid::from_u128(1);
        let _a = limiter.admit(user).unwrap();
        let _b = limiter.admit(user).unwrap();
        let refused = limiter.admit(user).err().unwrap();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "0x80072322");
        assert!(refused.retry_after.unwrap() > 0);
        // Another user has a window of its own.
        assert!(limiter.admit(Uuid::from_u128(2)).is_ok());

        let limiter = Limiter::new(LimitConfig {
            requests: None,
            window: Duration::from_secs(300),
            concurrent: Some(1),
        });
        let first = limiter.admit(user).unwrap();
        assert_eq!(limiter.admit(user).err().unwrap().code, "0x80072326");
        drop(first);
        assert!(limiter.admit(user).is_ok());
    }

    #[test]
    fn off_admits_everything() {
        let limiter = Limiter::new(LimitConfig::default());
        for _ in 0..10_000 {
            let _ = limiter.admit(Uuid::nil()).unwrap();
        }
    }
}
