//! Rate limiting with `governor`'s keyed GCRA limiter: per key (client address, user,
//! gateway), a burst of `limit` requests and then one every `60 / limit` seconds. Keys
//! whose allowance is whole again are dropped every minute by [`RateLimits::prune`],
//! and at once when a limiter holds more than [`PRUNE_ABOVE_KEYS`], so memory follows
//! the clients of the last minute, not every client ever seen. The sign-in limit is
//! also kept in PostgreSQL for all core nodes together.

use crate::error::{CoreError, CoreResult};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// A limiter holding more keys than this prunes itself on the spot.
pub const PRUNE_ABOVE_KEYS: usize = 100_000;

/// The limits of the API overview, each per key: sign-in per client address,
/// heartbeats per gateway, config generation per user, admin operations per user.
#[derive(Debug)]
pub struct RateLimits {
    /// Sign-in attempts (every method together) per client address.
    pub auth: RateLimiter,
    /// Unary (and REST) heartbeats per gateway.
    pub heartbeat: RateLimiter,
    /// Config generations per user.
    pub config: RateLimiter,
    /// Admin operations per user.
    pub admin: RateLimiter,
}

impl RateLimits {
    /// Forgets every key whose allowance is whole again.
    pub fn prune(&self) {
        for limiter in [&self.auth, &self.heartbeat, &self.config, &self.admin] {
            limiter.prune();
        }
    }
}

/// One limit, applied per key.
pub struct RateLimiter {
    per_minute: u32,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").field("per_minute", &self.per_minute).finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests a minute per key; 0 means no limit.
    pub fn new(per_minute: u32) -> RateLimiter {
        let limiter = NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)));
        RateLimiter { per_minute, limiter }
    }

    /// Takes a request's allowance for `key`, or fails with `RateLimited` saying when
    /// to retry.
    pub fn check(&self, key: &str) -> CoreResult<()> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > PRUNE_ABOVE_KEYS {
            self.prune();
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(CoreError::RateLimited { retry_after_seconds: seconds.max(1), limit_per_minute: self.per_minute })
            }
        }
    }

    /// Takes a request's allowance for `key` from the same limit kept in PostgreSQL for
    /// every node together (the same GCRA: a burst of `limit`, then one every
    /// `60 / limit` seconds); a no-op on SQLite, whose single node [`RateLimiter::check`]
    /// covers.
    pub async fn check_across_nodes(&self, store: &crate::store::Store, key: &str) -> CoreResult<()> {
        if self.limiter.is_none() || store.backend_name() != "postgres" {
            return Ok(());
        }
        match store.take_shared_allowance(key, self.per_minute).await? {
            None => Ok(()),
            Some(wait_ms) => Err(CoreError::RateLimited {
                retry_after_seconds: u64::try_from(wait_ms.max(1)).unwrap_or(60_000).div_ceil(1000),
                limit_per_minute: self.per_minute,
            }),
        }
    }

    /// Forgets the keys whose allowance is whole again.
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many keys the limiter holds.
    pub fn keys(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }
}

/// The key a client address is limited under: the address itself, or for IPv6 its
/// /64 (one subscriber's network), so that hopping addresses inside it gains nothing.
pub fn address_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>().map(|address| address.to_canonical()) {
        Ok(std::net::IpAddr::V6(v6)) => {
            let network = ipnet::Ipv6Net::new(v6, 64).map(|net| net.trunc().to_string());
            network.unwrap_or_else(|_| v6.to_string())
        }
        Ok(v4) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9"), address_key("2001:db8:1:2:aaaa::1"));
        assert_ne!(address_key("2001:db8:1:3::1"), address_key("2001:db8:1:2::1"));
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("unknown"), "unknown");
    }

    #[test]
    fn a_burst_up_to_the_limit_passes_then_requests_wait() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            limiter.check("192.0.2.1").unwrap();
        }
        match limiter.check("192.0.2.1") {
            Err(CoreError::RateLimited { retry_after_seconds, limit_per_minute }) => {
                assert!((1..=20).contains(&retry_after_seconds), "{retry_after_seconds}");
                assert_eq!(limit_per_minute, 3);
            }
            other => panic!("{other:?}"),
        }
        limiter.check("192.0.2.2").unwrap();
        let unlimited = RateLimiter::new(0);
        for _ in 0..1000 {
            unlimited.check("x").unwrap();
        }
    }

    #[test]
    fn memory_follows_recent_clients_only() {
        let limiter = RateLimiter::new(60_000);
        for n in 0..5_000 {
            limiter.check(&format!("client-{n}")).unwrap();
        }
        assert_eq!(limiter.keys(), 5_000);
        // At 60,000 a minute, one request's allowance is whole again after a millisecond.
        std::thread::sleep(std::time::Duration::from_millis(20));
        limiter.prune();
        assert_eq!(limiter.keys(), 0, "keys with a whole allowance were kept");
    }
}
