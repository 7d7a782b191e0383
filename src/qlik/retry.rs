//! When and how long to wait before repeating a failed call.

use std::time::Duration;

use super::{endpoint::Endpoint, error::QlikError};
use crate::backoff::Backoff;

/// When to repeat a failed call: bounded attempts, exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// The first backoff's upper bound.
    pub base_delay: Duration,
    /// No backoff is longer than this.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured in-line; a longer one is returned to the caller,
    /// which can requeue instead of holding a worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Give the error to the caller.
    GiveUp,
    /// Wait this long, then try again.
    RetryAfter(Duration),
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The jittered backoff before attempt `attempt + 1` (`attempt` counts from 1): the
    /// process's one [`Backoff`] from `base_delay` doubling up to `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Backoff::new(self.base_delay, self.max_delay).wait(attempt.saturating_sub(1))
    }

    /// Decides whether attempt number `attempt` (from 1) of `endpoint` is repeated after `error`.
    ///
    /// A 429 and a connection that never reached the service are safe to repeat for any
    /// call: nothing happened. Server errors, timeouts and broken connections may have taken
    /// effect, so they are repeated only for idempotent calls; a create that fails that way
    /// goes back to the caller, which must look for what it may have made.
    pub fn decide(&self, endpoint: Endpoint, attempt: u32, error: &QlikError) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        match error {
            QlikError::RateLimited { retry_after, .. } => {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                if wait <= self.max_retry_after {
                    Decision::RetryAfter(wait)
                } else {
                    Decision::GiveUp
                }
            }
            QlikError::Transport { sent: false, .. } => Decision::RetryAfter(self.backoff(attempt)),
            QlikError::Unavailable(_) | QlikError::Timeout { .. } | QlikError::Transport { .. }
                if endpoint.idempotent() =>
            {
                Decision::RetryAfter(self.backoff(attempt))
            }
            _ => Decision::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(endpoint: Endpoint) -> QlikError {
        QlikError::from_response(endpoint, 503, b"", None)
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..20 {
            let b = p.backoff(attempt);
            let cap = p
                .base_delay
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(p.max_delay);
            assert!(
                b >= cap && b <= cap.mul_f64(1.25),
                "attempt {attempt}: {b:?} vs {cap:?}"
            );
        }
    }

    #[test]
    fn server_errors_repeat_only_idempotent_calls() {
        let p = RetryPolicy::default();
        assert!(matches!(
            p.decide(
                Endpoint::GetAutomation,
                1,
                &unavailable(Endpoint::GetAutomation)
            ),
            Decision::RetryAfter(_)
        ));
        assert!(matches!(
            p.decide(
                Endpoint::UpdateAutomation,
                1,
                &unavailable(Endpoint::UpdateAutomation)
            ),
            Decision::RetryAfter(_)
        ));
        for create in [
            Endpoint::CreateAutomation,
            Endpoint::CopyAutomation,
            Endpoint::CreateRun,
        ] {
            assert_eq!(p.decide(create, 1, &unavailable(create)), Decision::GiveUp);
            let timeout = QlikError::Timeout { endpoint: create };
            assert_eq!(p.decide(create, 1, &timeout), Decision::GiveUp);
        }
    }

    #[test]
    fn unsent_requests_and_429s_repeat_for_any_call() {
        let p = RetryPolicy::default();
        let unsent = QlikError::Transport {
            endpoint: Endpoint::CreateAutomation,
            sent: false,
            message: "connection refused".into(),
        };
        assert!(matches!(
            p.decide(Endpoint::CreateAutomation, 1, &unsent),
            Decision::RetryAfter(_)
        ));
        let limited = QlikError::from_response(
            Endpoint::CreateAutomation,
            429,
            b"{}",
            Some(Duration::from_secs(7)),
        );
        assert_eq!(
            p.decide(Endpoint::CreateAutomation, 1, &limited),
            Decision::RetryAfter(Duration::from_secs(7))
        );
    }

    #[test]
    fn attempts_are_bounded_and_long_waits_go_back_to_the_caller() {
        let p = RetryPolicy::default();
        let e = unavailable(Endpoint::GetAutomation);
        assert_eq!(
            p.decide(Endpoint::GetAutomation, p.max_attempts, &e),
            Decision::GiveUp
        );
        let limited = QlikError::from_response(
            Endpoint::GetAutomation,
            429,
            b"{}",
            Some(Duration::from_secs(3600)),
        );
        assert_eq!(
            p.decide(Endpoint::GetAutomation, 1, &limited),
            Decision::GiveUp
        );
        let bad = QlikError::from_response(Endpoint::GetAutomation, 400, b"{}", None);
        assert_eq!(p.decide(Endpoint::GetAutomation, 1, &bad), Decision::GiveUp);
    }
}
