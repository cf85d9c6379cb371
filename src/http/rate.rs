//! `rate_limit`: a token bucket over every request (Go's `rate.NewLimiter(rate.Every(interval),
//! burst)`, as the toolkit uses it); a request without a token gets 429. Which paths it applies
//! to is the router's word (`serve::PathRules::unlimited`): a path it exempts takes no token.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::web_config::RateLimit;

/// The inbound limiter of one `rate_limit` setting: a token bucket of `burst` tokens, refilled one
/// per `interval`, shared by every connection and by every path the router does not exempt.
#[derive(Debug)]
pub struct RateLimiter {
    /// What it was built from: a re-read of the web configuration with the same settings keeps this
    /// limiter (and its tokens), so a reload does not refill the bucket.
    pub settings: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter with a full bucket (`burst` tokens).
    pub fn new(settings: RateLimit) -> RateLimiter {
        RateLimiter {
            settings,
            state: Mutex::new((f64::from(settings.burst), Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let refill = now.saturating_duration_since(*last).as_secs_f64()
            / self.settings.interval.as_secs_f64();
        *tokens = (*tokens + refill).min(f64::from(self.settings.burst));
        *last = now.max(*last);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RateLimit, RateLimiter};
    use std::time::{Duration, Instant};

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(limiter.allow_at(t0));
        assert!(limiter.allow_at(t0));
        assert!(!limiter.allow_at(t0));
        assert!(!limiter.allow_at(t0 + Duration::from_millis(500)));
        assert!(limiter.allow_at(t0 + Duration::from_millis(1000)));
        assert!(!limiter.allow_at(t0 + Duration::from_millis(1000)));
        // Idle time refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!(limiter.allow_at(later) && limiter.allow_at(later));
        assert!(!limiter.allow_at(later));
    }
}
