//! The one retry policy of the registry client. Every request path goes through it: plain
//! requests ([`super::transport::Transport::send`]), documents whose body is read within the
//! attempt (manifests, configs, tokens, the update graph) and the resumes of a blob whose body
//! broke mid-stream ([`super::BlobReader`]).
//!
//! The budget, and why: a request is tried at most `1 + retries` times (11 by default); the
//! waits between tries grow from 100 ms, doubling, up to 2 s, each drawn uniformly from the
//! upper half of that step (so parallel workers do not retry in lockstep); a `Retry-After` is
//! honoured up to 10 s; no retry starts more than 2 minutes after the first try.
//! - Faults: when 30 % of requests fail independently, all 11 tries of one request fail with
//!   probability 0.3^11 ≈ 1.8e-6, so a run of 10,000 requests survives with probability
//!   ≈ 98 % (at the 0.26 that the test proxy's mix actually fails, 3.2e-7 and 99.7 %).
//! - A dead registry: a refused connection fails a request after the ten waits, at most
//!   0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 5 × 2 = 13.1 s (at least half that); one that accepts and
//!   never answers is bounded by the 2-minute limit plus one request timeout. Requests in
//!   parallel wait side by side, so a run fails within about that time too.

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::RegistryError;

/// Retries after the first try, unless the caller says otherwise.
pub const DEFAULT_RETRIES: u32 = 10;
const FIRST_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(2);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(120);

/// How often and how patiently a request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    first_wait: Duration,
    max_wait: Duration,
    max_retry_after: Duration,
    /// No retry starts later than this after the first try.
    deadline: Duration,
}

/// What one try came to.
pub(crate) enum Attempt<T> {
    /// Finished, well or badly; no retry would change it.
    Done(Result<T, RegistryError>),
    /// Failed in a way another try may fix (a reset, a timeout, a 5xx, a 429, a body that
    /// broke). `last` is what the caller gets when the budget is spent; `after` is the
    /// server's `Retry-After`, if it sent one.
    Retry {
        last: Result<T, RegistryError>,
        after: Option<Duration>,
    },
}

impl RetryPolicy {
    pub fn new(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            first_wait: FIRST_WAIT,
            max_wait: MAX_WAIT,
            max_retry_after: MAX_RETRY_AFTER,
            deadline: DEADLINE,
        }
    }

    /// The wait before retry number `retry` (0 for the first retry) of something first tried
    /// at `started`, or `None` when the budget is spent. `retry_after` is the server's wish.
    pub fn wait(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        started: Instant,
    ) -> Option<Duration> {
        if retry >= self.retries || started.elapsed() >= self.deadline {
            return None;
        }
        Some(match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => self.backoff(retry),
        })
    }

    /// `first_wait` doubling per retry up to `max_wait`, drawn from the upper half of the step.
    fn backoff(&self, retry: u32) -> Duration {
        let step = self
            .first_wait
            .saturating_mul(1 << retry.min(16))
            .min(self.max_wait);
        let half = step / 2;
        let jitter = random_below(half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter)
    }

    /// Runs `attempt` (given the try number, from 0) until it is done or the budget is spent.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, RegistryError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            match attempt(retry).await {
                Attempt::Done(result) => return result,
                Attempt::Retry { last, after } => match self.wait(retry, after, started) {
                    None => return last,
                    Some(wait) => {
                        drop(last);
                        tokio::time::sleep(wait).await;
                        retry += 1;
                    }
                },
            }
        }
    }
}

/// A number in `0..n` (n > 0), random enough to spread retries: std's per-process random keys
/// hashing a counter.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    RandomState::new().hash_one(c) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_within_their_bounds_and_stop_at_the_budget() {
        let p = RetryPolicy::new(DEFAULT_RETRIES);
        let now = Instant::now();
        let mut total = Duration::ZERO;
        for retry in 0..DEFAULT_RETRIES {
            let w = p.wait(retry, None, now).expect("within the budget");
            let step = (FIRST_WAIT * (1 << retry)).min(MAX_WAIT);
            assert!(w >= step / 2 && w <= step, "retry {retry}: {w:?}");
            total += w;
        }
        assert!(total <= Duration::from_millis(13_100), "{total:?}");
        assert_eq!(p.wait(DEFAULT_RETRIES, None, now), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let p = RetryPolicy::new(3);
        let now = Instant::now();
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(1)), now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            p.wait(0, Some(Duration::from_secs(3600)), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn nothing_is_retried_after_the_deadline() {
        let p = RetryPolicy::new(3);
        let long_ago = Instant::now()
            .checked_sub(DEADLINE + Duration::from_secs(1))
            .expect("the clock is past the deadline's length");
        assert_eq!(p.wait(0, None, long_ago), None);
    }

    #[test]
    fn run_returns_the_last_failure_once_the_budget_is_spent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let p = RetryPolicy {
            first_wait: Duration::from_millis(1),
            ..RetryPolicy::new(2)
        };
        let mut tries = 0;
        let r: Result<u32, RegistryError> = rt.block_on(p.run(|n| {
            tries += 1;
            async move {
                Attempt::Retry {
                    last: Ok(n),
                    after: None,
                }
            }
        }));
        assert_eq!(r.unwrap(), 2);
        assert_eq!(tries, 3);
        let r: Result<u32, RegistryError> = rt.block_on(p.run(|n| async move {
            if n == 1 {
                Attempt::Done(Ok(7))
            } else {
                Attempt::Retry {
                    last: Ok(0),
                    after: None,
                }
            }
        }));
        assert_eq!(r.unwrap(), 7);
    }
}
