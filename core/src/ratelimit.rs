//! Rate limiting: a token bucket per key (client address, user, gateway) that refills
//! `limit` tokens a minute, so a burst of `limit` is allowed and then one request
//! every `60 / limit` seconds.

use crate::error::{CoreError, CoreResult};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Keys idle this long are forgotten (their bucket is full again anyway).
const FORGET_AFTER_SECONDS: f64 = 120.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

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

/// One limit, applied per key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests a minute per key; 0 means no limit.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key`, or fails with `RateLimited` saying when to retry.
    pub fn check(&self, key: &str) -> CoreResult<()> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 10_000 {
            buckets.retain(|_, bucket| now.duration_since(bucket.updated).as_secs_f64() < FORGET_AFTER_SECONDS);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: capacity, updated: now });
        let refilled = bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = refilled.min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
        Err(CoreError::RateLimited { retry_after_seconds: wait as u64, limit_per_minute: self.per_minute })
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
                assert!((1..=20).contains(&retry_after_seconds));
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
}
