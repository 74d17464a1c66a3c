//! Token-bucket arithmetic in integers, with the clock passed in.
//!
//! A bucket's level is counted in token-milliseconds: one token is 60,000 units and a class
//! refills `per_minute` units every millisecond. Integer units make `Retry-After` exact: a
//! retry after the advertised seconds finds at least one whole token.

use serde::{Deserialize, Serialize};

use super::limits::ClassLimit;

pub const UNITS_PER_TOKEN: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub level: u64,
    pub updated_ms: i64,
}

fn capacity(limit: ClassLimit) -> u64 {
    u64::from(limit.burst) * UNITS_PER_TOKEN
}

impl Bucket {
    pub fn full(limit: ClassLimit, now_ms: i64) -> Self {
        Self {
            level: capacity(limit),
            updated_ms: now_ms,
        }
    }

    /// The bucket as it stands at `now_ms`. A clock that went backwards refills nothing, and a
    /// lowered burst caps the level at once.
    pub fn refilled(self, limit: ClassLimit, now_ms: i64) -> Self {
        let elapsed = u64::try_from(now_ms.saturating_sub(self.updated_ms)).unwrap_or(0);
        let gained = elapsed.saturating_mul(u64::from(limit.per_minute));
        Self {
            level: self.level.saturating_add(gained).min(capacity(limit)),
            updated_ms: now_ms.max(self.updated_ms),
        }
    }

    /// Spends one token, or says in how many milliseconds one will be there.
    pub fn take(self, limit: ClassLimit, now_ms: i64) -> Result<Self, u64> {
        let current = self.refilled(limit, now_ms);
        if current.level >= UNITS_PER_TOKEN {
            Ok(Self {
                level: current.level - UNITS_PER_TOKEN,
                ..current
            })
        } else {
            Err((UNITS_PER_TOKEN - current.level).div_ceil(u64::from(limit.per_minute)))
        }
    }

    /// Gives back a token spent on a call that never reached the backend.
    pub fn refund(self, limit: ClassLimit, now_ms: i64) -> Self {
        let current = self.refilled(limit, now_ms);
        Self {
            level: (current.level + UNITS_PER_TOKEN).min(capacity(limit)),
            ..current
        }
    }

    /// Whole tokens available now.
    pub fn remaining(self, limit: ClassLimit, now_ms: i64) -> u64 {
        self.refilled(limit, now_ms).level / UNITS_PER_TOKEN
    }

    /// Milliseconds until the bucket is full again.
    pub fn until_full_ms(self, limit: ClassLimit, now_ms: i64) -> u64 {
        let current = self.refilled(limit, now_ms);
        (capacity(limit) - current.level).div_ceil(u64::from(limit.per_minute))
    }
}

/// `Retry-After` seconds for a wait in milliseconds: rounded up, at least 1.
pub fn retry_after_s(wait_ms: u64) -> u64 {
    wait_ms.div_ceil(1000).max(1)
}

/// IETF `RateLimit-Policy` and `RateLimit` field values for one class
/// (draft-ietf-httpapi-ratelimit-headers): quota per 60 s window; remaining tokens and the
/// seconds until the bucket is full again.
pub fn header_values(
    class: &str,
    limit: ClassLimit,
    bucket: Bucket,
    now_ms: i64,
) -> (String, String) {
    let policy = format!("\"{class}\";q={};w=60", limit.per_minute);
    let remaining = bucket.remaining(limit, now_ms);
    let reset_s = bucket.until_full_ms(limit, now_ms).div_ceil(1000);
    (policy, format!("\"{class}\";r={remaining};t={reset_s}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JOIN: ClassLimit = ClassLimit::new(4, 4);

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let mut bucket = Bucket::full(JOIN, 0);
        for _ in 0..4 {
            bucket = bucket.take(JOIN, 0).unwrap_or(bucket);
        }
        assert_eq!(bucket.remaining(JOIN, 0), 0);
        assert_eq!(bucket.take(JOIN, 0), Err(15_000));
        assert_eq!(retry_after_s(15_000), 15);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let empty = Bucket {
            level: 0,
            updated_ms: 0,
        };
        assert!(empty.take(JOIN, 14_999).is_err());
        assert!(empty.take(JOIN, 15_000).is_ok());
        assert_eq!(empty.remaining(JOIN, 60_000), 4);
        assert_eq!(empty.remaining(JOIN, 600_000), 4);
    }

    #[test]
    fn refunds_never_overfill() {
        let full = Bucket::full(JOIN, 0);
        assert_eq!(full.refund(JOIN, 0).level, 4 * UNITS_PER_TOKEN);
        let spent = full.take(JOIN, 0).unwrap_or(full);
        assert_eq!(spent.refund(JOIN, 0).remaining(JOIN, 0), 4);
    }

    #[test]
    fn the_clock_going_back_refills_nothing() {
        let bucket = Bucket {
            level: 0,
            updated_ms: 10_000,
        };
        assert_eq!(bucket.refilled(JOIN, 0), bucket);
    }

    #[test]
    fn a_lowered_burst_caps_the_level() {
        let big = Bucket::full(ClassLimit::new(4, 10), 0);
        assert_eq!(big.remaining(JOIN, 0), 4);
    }

    #[test]
    fn headers_follow_the_draft() {
        let bucket = Bucket::full(JOIN, 0)
            .take(JOIN, 0)
            .unwrap_or(Bucket::full(JOIN, 0));
        let (policy, state) = header_values("join", JOIN, bucket, 0);
        assert_eq!(policy, "\"join\";q=4;w=60");
        assert_eq!(state, "\"join\";r=3;t=15");
    }

    proptest! {
        /// The advertised wait is exact: one millisecond less is refused, the wait itself is
        /// served, and so is the rounded-up Retry-After.
        #[test]
        fn retry_after_is_exact(per_minute in 1u32..=6000, burst in 1u32..=1000, level_tokens_milli in 0u64..1000, now in 0i64..1_000_000_000) {
            let limit = ClassLimit::new(per_minute, burst);
            let bucket = Bucket { level: level_tokens_milli * UNITS_PER_TOKEN / 1000, updated_ms: now };
            match bucket.take(limit, now) {
                Ok(_) => prop_assert!(bucket.level >= UNITS_PER_TOKEN),
                Err(wait) => {
                    prop_assert!(wait >= 1);
                    prop_assert!(bucket.take(limit, now + wait as i64 - 1).is_err());
                    prop_assert!(bucket.take(limit, now + wait as i64).is_ok());
                    prop_assert!(bucket.take(limit, now + 1000 * retry_after_s(wait) as i64).is_ok());
                }
            }
        }

        /// Over any schedule of attempts, admissions never exceed burst + rate × time.
        #[test]
        fn admissions_stay_within_the_limit(per_minute in 1u32..=600, burst in 1u32..=20, gaps in proptest::collection::vec(0i64..5_000, 1..200)) {
            let limit = ClassLimit::new(per_minute, burst);
            let mut bucket = Bucket::full(limit, 0);
            let (mut now, mut admitted) = (0i64, 0u64);
            for gap in gaps {
                now += gap;
                if let Ok(next) = bucket.take(limit, now) {
                    bucket = next;
                    admitted += 1;
                }
            }
            let allowed = u64::from(burst) + (now as u64 * u64::from(per_minute)) / UNITS_PER_TOKEN;
            prop_assert!(admitted <= allowed);
        }
    }
}
