//! Admin authentication throttling (contract section 3): the rules on the admin token and
//! the per-isolate memory of client addresses that the `ADMIN_LIMITER` binding refused.
//!
//! The binding counts failed comparisons; once it refuses an address, every admin request
//! from it is refused for `BLOCK_MS` before any comparison, remembered here. The memory is
//! bounded, so a flood from many addresses cannot grow it without end: when full, expired
//! entries go first, then the one whose block ends soonest.

use super::error::{ApiError, ErrorCode};

/// An `ADMIN_TOKEN` shorter than this counts as not configured.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;
/// How long an address the binding refused stays refused, and its `Retry-After`.
pub const BLOCK_S: u64 = 60;
const BLOCK_MS: i64 = BLOCK_S as i64 * 1000;
/// The most addresses remembered per isolate.
pub const MAX_BLOCKED: usize = 1024;

/// Whether an `ADMIN_TOKEN` value is long enough to be one.
pub fn admin_token_usable(token: &str) -> bool {
    token.chars().count() >= MIN_ADMIN_TOKEN_CHARS
}

/// The key the binding counts by: the client address, or one shared key for requests that
/// came without one (Cloudflare always sets `CF-Connecting-IP`).
pub fn address_key(connecting_ip: Option<&str>) -> String {
    connecting_ip
        .map(str::trim)
        .filter(|ip| !ip.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// `429 rate_limited`, scope `admin`, `Retry-After: 60`.
pub fn admin_throttled() -> ApiError {
    ApiError::new(ErrorCode::RateLimited)
        .with_message("Too many failed admin authentications from this address; retry later.")
        .with_detail("scope", "admin")
        .with_detail("retry_after_s", BLOCK_S)
        .with_retry_after(BLOCK_S)
}

/// Addresses refused until a time (ms), at most `capacity` of them.
#[derive(Debug)]
pub struct Blocklist {
    /// Each address once, with the time it is refused until. A list, not a hash map: a
    /// scan of at most 1024 short strings on the admin routes costs less than the map's
    /// code in the wasm.
    until_ms: Vec<(String, i64)>,
    capacity: usize,
}

impl Default for Blocklist {
    fn default() -> Self {
        Self::with_capacity(MAX_BLOCKED)
    }
}

impl Blocklist {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            until_ms: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn is_blocked(&self, address: &str, now_ms: i64) -> bool {
        self.until_ms
            .iter()
            .any(|(blocked, until)| blocked == address && now_ms < *until)
    }

    /// Refuses `address` for the next `BLOCK_S` seconds.
    pub fn block(&mut self, address: &str, now_ms: i64) {
        let until = now_ms.saturating_add(BLOCK_MS);
        if let Some(entry) = self.until_ms.iter_mut().find(|(known, _)| known == address) {
            entry.1 = until;
            return;
        }
        if self.until_ms.len() >= self.capacity {
            self.until_ms.retain(|(_, until)| now_ms < *until);
            if self.until_ms.len() >= self.capacity {
                let soonest = (0..self.until_ms.len()).min_by_key(|&i| self.until_ms[i].1);
                if let Some(soonest) = soonest {
                    self.until_ms.swap_remove(soonest);
                }
            }
        }
        self.until_ms.push((address.to_string(), until));
    }

    pub fn len(&self) -> usize {
        self.until_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until_ms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn admin_tokens_under_32_characters_do_not_count() {
        assert!(!admin_token_usable(""));
        assert!(!admin_token_usable(&"x".repeat(31)));
        assert!(admin_token_usable(&"x".repeat(32)));
        // Characters, not bytes.
        assert!(!admin_token_usable(&"é".repeat(31)));
    }

    #[test]
    fn a_blocked_address_is_refused_for_60_seconds_and_no_other() {
        let mut list = Blocklist::default();
        assert!(!list.is_blocked("1.2.3.4", 0));
        list.block("1.2.3.4", 1_000);
        assert!(list.is_blocked("1.2.3.4", 1_000));
        assert!(list.is_blocked("1.2.3.4", 60_999));
        assert!(!list.is_blocked("1.2.3.4", 61_000));
        assert!(!list.is_blocked("5.6.7.8", 1_000));
        let error = admin_throttled();
        assert_eq!(error.status(), 429);
        assert_eq!(error.details["scope"], "admin");
        assert_eq!(error.retry_after_s, Some(60));
    }

    #[test]
    fn addresses_are_keys_as_given() {
        assert_eq!(address_key(Some(" 2001:db8::1 ")), "2001:db8::1");
        assert_eq!(address_key(Some("")), "unknown");
        assert_eq!(address_key(None), "unknown");
    }

    #[test]
    fn a_full_list_forgets_the_expired_then_the_soonest_to_end() {
        let mut list = Blocklist::with_capacity(2);
        list.block("a", 0);
        list.block("b", 10_000);
        // Full, none expired: the one ending soonest ("a") goes.
        list.block("c", 20_000);
        assert_eq!(list.len(), 2);
        assert!(!list.is_blocked("a", 20_000));
        assert!(list.is_blocked("b", 20_000) && list.is_blocked("c", 20_000));
        // Both expired by then: they go, the new one stays.
        list.block("d", 200_000);
        assert_eq!(list.len(), 1);
        assert!(list.is_blocked("d", 200_000));
        // Blocking an address again only moves its end.
        list.block("d", 210_000);
        assert!(list.is_blocked("d", 269_999));
        assert_eq!(list.len(), 1);
    }

    proptest! {
        #[test]
        fn the_list_never_passes_its_capacity(
            events in proptest::collection::vec((0u8..50, 0i64..1_000), 1..300)
        ) {
            let mut list = Blocklist::with_capacity(8);
            let mut now = 0;
            for (address, step) in events {
                now += step;
                list.block(&address.to_string(), now);
                prop_assert!(list.len() <= 8);
                // The address just blocked is always refused.
                prop_assert!(list.is_blocked(&address.to_string(), now));
            }
        }
    }
}
