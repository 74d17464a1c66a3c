//! Signed webhooks (contract section 11), the pure part: the endpoint body, secrets, event
//! bodies, the Standard Webhooks 1.0 signature (HMAC-SHA256 over `id.timestamp.body`), and
//! what an attempt's result means for the delivery (done, retry when, failed), and the
//! lease each outstanding attempt carries, so that nothing stays pending (v1.2).
//!
//! Invariants: a secret is shown only when created or rotated; an event never carries an
//! invite code or a token; every attempt of one event has the same `webhook-id`; a pending
//! delivery always has an outstanding attempt with a deadline, and one whose outcome is not
//! recorded `stale` after that deadline is made again.

use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::base64;
use super::error::ApiError;
use super::json::{optional_bool, present, reject_unknown};

pub const EVENT_TYPES: [&str; 6] = [
    "group.join",
    "group.leave",
    "join_job.completed",
    "join_job.paused",
    "session.cooldown",
    "group.join_request.expired",
];

/// The event types of v1.1: an endpoint stored then with all of them took "all" (the
/// default), and takes the types added since too.
const V1_1_TYPES: usize = 5;

/// A stored event list (JSON), with the types added since v1.1 when it holds every v1.1 type.
pub fn stored_events(stored: &str) -> String {
    let Ok(mut events) = serde_json::from_str::<Vec<String>>(stored) else {
        return stored.to_string();
    };
    let all_old = EVENT_TYPES[..V1_1_TYPES]
        .iter()
        .all(|t| events.iter().any(|e| e == t));
    if !all_old {
        return stored.to_string();
    }
    for new in &EVENT_TYPES[V1_1_TYPES..] {
        if !events.iter().any(|e| e == new) {
            events.push((*new).to_string());
        }
    }
    serde_json::to_string(&events).unwrap_or_else(|_| stored.to_string())
}
/// Attempts in all before a delivery fails.
pub const MAX_ATTEMPTS: u32 = 7;
pub const DEFAULT_RETRY_BASE_S: u64 = 5;
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT_MS: u64 = 10_000;
/// At most this many deliveries in the list answer.
pub const DELIVERIES_LIMIT: usize = 100;
/// `WEBHOOK_STALE_S`: how long after its deadline an attempt with no recorded outcome is
/// made again.
pub const DEFAULT_STALE_S: u64 = 600;
/// `last_error` of an attempt whose queue message ran out of retries.
pub const DEAD_LETTERED: &str = "dead_lettered";
/// `last_error` of a delivery whose attempt came due when the org had no endpoint.
pub const NO_ENDPOINT: &str = "no_endpoint";

/// HMAC-SHA256 (RFC 2104), RustCrypto's.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a long one is hashed first): this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `whsec_` + base64 of 32 random bytes.
pub fn new_secret(random: &[u8; 32]) -> String {
    format!("whsec_{}", base64::encode(random))
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    base64::decode(secret.strip_prefix("whsec_")?)
}

/// `webhook-signature` of one attempt: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn signature(key: &[u8], id: &str, timestamp_s: i64, body: &str) -> String {
    let signed = format!("{id}.{timestamp_s}.{body}");
    format!(
        "v1,{}",
        base64::encode(&hmac_sha256(key, signed.as_bytes()))
    )
}

/// A validated `PUT /v1/admin/orgs/{org}/webhook` body.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointInput {
    pub url: String,
    pub events: Vec<String>,
    pub rotate_secret: bool,
}

pub fn parse_endpoint(body: &Map<String, Value>) -> Result<EndpointInput, ApiError> {
    reject_unknown(body, &["url", "events", "rotate_secret"], "")?;
    let url = present(body, "url")
        .ok_or_else(|| ApiError::invalid("url", "is required"))?
        .as_str()
        .ok_or_else(|| ApiError::invalid("url", "must be a string"))?;
    let url = super::backend::spec::validate_webhook_url(url, "url")?;
    let events = match present(body, "events") {
        None => EVENT_TYPES.iter().map(|e| (*e).to_string()).collect(),
        Some(value) => {
            let list = value
                .as_array()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| ApiError::invalid("events", "must list at least one event type"))?;
            let mut events: Vec<String> = Vec::new();
            for item in list {
                let name = item
                    .as_str()
                    .filter(|n| EVENT_TYPES.contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("events", "may only hold group.join, group.leave, join_job.completed, join_job.paused, session.cooldown, group.join_request.expired")
                    })?;
                if !events.iter().any(|e| e == name) {
                    events.push(name.to_string());
                }
            }
            events
        }
    };
    let rotate_secret = optional_bool(body, "rotate_secret")?.unwrap_or(false);
    Ok(EndpointInput {
        url,
        events,
        rotate_secret,
    })
}

/// `msg_` + 24 hex digits, also the delivery id.
pub fn is_delivery_id(text: &str) -> bool {
    text.len() == 28
        && text.starts_with("msg_")
        && text[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The JSON body of an event: `{ type, timestamp, data }`.
pub fn event_body(event_type: &str, timestamp: &str, data: &Value) -> String {
    json!({ "type": event_type, "timestamp": timestamp, "data": data }).to_string()
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Status(u16),
    /// A network error or a timeout: no HTTP answer.
    NoAnswer,
}

/// What the delivery does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after this many seconds.
    RetryIn(u64),
    Failed,
}

/// The wait before attempt `n` (n ≥ 2): `base` × 5^(n−2).
pub fn delay_before_attempt(n: u32, base_s: u64) -> u64 {
    base_s.saturating_mul(5u64.saturating_pow(n.saturating_sub(2)))
}

/// After attempt number `attempt` (1-based): 2xx is delivered; network errors, timeouts,
/// 408, 429 and 5xx are retried until the 7th attempt; any other 4xx, and any 3xx (a
/// redirect is not followed), fail at once.
pub fn after_attempt(result: AttemptResult, attempt: u32, base_s: u64) -> Next {
    let retryable = match result {
        AttemptResult::Status(200..=299) => return Next::Delivered,
        AttemptResult::NoAnswer => true,
        AttemptResult::Status(status) => matches!(status, 408 | 429 | 500..=599),
    };
    if retryable && attempt < MAX_ATTEMPTS {
        Next::RetryIn(delay_before_attempt(attempt + 1, base_s))
    } else {
        Next::Failed
    }
}

/// The outstanding attempt of a pending delivery, as stored: the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    /// Attempts counted, a claimed one included.
    pub attempts: i64,
    /// An attempt was claimed (it is being made) and its outcome is not recorded.
    pub claimed: bool,
    /// When the attempt's outcome is due at the latest: when it was due (queued with its
    /// delay, or claimed) plus the attempt's 10 s. Also the claim's token: a claim taken
    /// again has another deadline, so an old attempt cannot record onto it.
    pub deadline_ms: i64,
}

/// The deadline of an attempt due at `due_ms`.
pub fn deadline(due_ms: i64) -> i64 {
    due_ms.saturating_add(ATTEMPT_TIMEOUT_MS as i64)
}

/// An attempt queued now, due after `delay_s`.
pub fn queued(attempts: i64, delay_s: u64, now_ms: i64) -> Outstanding {
    let delay_ms = i64::try_from(delay_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    Outstanding {
        attempts,
        claimed: false,
        deadline_ms: deadline(now_ms.saturating_add(delay_ms)),
    }
}

/// When the sweep must look at an attempt with this deadline.
pub fn sweep_at(deadline_ms: i64, stale_s: u64) -> i64 {
    let stale_ms = i64::try_from(stale_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    deadline_ms.saturating_add(stale_ms)
}

/// A claim of the attempt after `task_attempts`, taken now: `None` when the task is not for
/// the outstanding attempt (a duplicate or stale message, one already claimed or recorded).
pub fn claim(current: Outstanding, task_attempts: i64, now_ms: i64) -> Option<Outstanding> {
    (!current.claimed && current.attempts == task_attempts).then(|| Outstanding {
        attempts: task_attempts + 1,
        claimed: true,
        deadline_ms: deadline(now_ms),
    })
}

/// The sweep's (and an overdue redeliver's) verdict: when the outstanding attempt's outcome
/// is not recorded `stale_s` after its deadline, the same attempt made again, queued now
/// (a claim never recorded is given back: that attempt did not count). `None`: not overdue.
pub fn remake(current: Outstanding, stale_s: u64, now_ms: i64) -> Option<Outstanding> {
    if sweep_at(current.deadline_ms, stale_s) > now_ms {
        return None;
    }
    let attempts = if current.claimed {
        current.attempts - 1
    } else {
        current.attempts
    };
    Some(queued(attempts, 0, now_ms))
}

/// Whether a dead-lettered message for the attempt after `task_attempts` is about the
/// outstanding attempt, whose outcome was never recorded: not claimed yet, or claimed and
/// past its deadline (an object that failed mid-attempt). Then it counts as one failed
/// attempt; otherwise the attempt was recorded or made since, and the message means nothing.
pub fn dead_letter_applies(current: Outstanding, task_attempts: i64, now_ms: i64) -> bool {
    if current.claimed {
        current.attempts == task_attempts + 1 && current.deadline_ms < now_ms
    } else {
        current.attempts == task_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outstanding(attempts: i64, claimed: bool, deadline_ms: i64) -> Outstanding {
        Outstanding {
            attempts,
            claimed,
            deadline_ms,
        }
    }

    #[test]
    fn a_claim_is_a_lease_of_ten_seconds() {
        let now = 1_000_000;
        let queued_now = queued(2, 0, now);
        assert_eq!(queued_now, outstanding(2, false, now + 10_000));
        assert_eq!(queued(2, 25, now).deadline_ms, now + 35_000);
        let claimed = claim(queued_now, 2, now + 1);
        assert_eq!(claimed, Some(outstanding(3, true, now + 10_001)));
        // A duplicate of the same task, a stale one, or any task while claimed: no claim.
        assert_eq!(claimed.and_then(|c| claim(c, 2, now + 2)), None);
        assert_eq!(claimed.and_then(|c| claim(c, 3, now + 2)), None);
        assert_eq!(claim(queued_now, 1, now), None);
    }

    #[test]
    fn the_sweep_remakes_only_attempts_never_recorded_once_stale() {
        let stale = 600;
        let deadline_ms = 5_000_000;
        let due = deadline_ms + 600_000;
        assert_eq!(sweep_at(deadline_ms, stale), due);
        for claimed in [false, true] {
            let current = outstanding(3, claimed, deadline_ms);
            assert_eq!(remake(current, stale, due - 1), None, "not yet stale");
            // A lost message is queued again as it was; a claim lost with its object is
            // given back, so the same attempt (the third) is made again.
            let again = remake(current, stale, due + 7);
            let attempts = if claimed { 2 } else { 3 };
            assert_eq!(again, Some(outstanding(attempts, false, due + 7 + 10_000)));
            // The remade attempt is claimable by its task, and is not stale at once.
            let again = again.unwrap_or(current);
            assert!(claim(again, attempts, due + 8).is_some());
            assert_eq!(remake(again, stale, due + 8), None);
        }
    }

    #[test]
    fn a_dead_letter_counts_only_for_an_attempt_never_recorded() {
        let now = 9_000_000;
        // The object failed before claiming: the task's attempt is still outstanding.
        assert!(dead_letter_applies(outstanding(0, false, now - 1), 0, now));
        // Claimed, and its object failed mid-attempt: once past the deadline.
        assert!(dead_letter_applies(outstanding(1, true, now - 1), 0, now));
        assert!(!dead_letter_applies(
            outstanding(1, true, now + 5_000),
            0,
            now
        ));
        // Recorded (or redelivered) since: the count moved on.
        assert!(!dead_letter_applies(outstanding(1, false, now), 0, now));
        assert!(!dead_letter_applies(outstanding(2, true, now - 1), 0, now));
    }

    proptest! {
        /// Whatever the stored lease, the clock and the task: a claim needs the task of the
        /// outstanding attempt and leaves one claimed attempt due 10 s later; a remake never
        /// counts an attempt up, and is never due before now.
        #[test]
        fn leases_hold(
            attempts in 0i64..8,
            claimed in any::<bool>(),
            deadline_ms in 0i64..10_000_000,
            task in 0i64..8,
            stale in 1u64..1_000,
            now in 0i64..12_000_000,
        ) {
            let current = outstanding(attempts, claimed, deadline_ms);
            if let Some(lease) = claim(current, task, now) {
                prop_assert!(!claimed && task == attempts);
                prop_assert_eq!(lease, outstanding(attempts + 1, true, now + 10_000));
                prop_assert!(!dead_letter_applies(lease, task, now));
            }
            match remake(current, stale, now) {
                Some(again) => {
                    prop_assert!(now >= deadline_ms + (stale as i64) * 1000);
                    prop_assert!(again.attempts <= attempts && !again.claimed);
                    prop_assert!(again.deadline_ms > now);
                    prop_assert!(claim(again, again.attempts, now).is_some());
                }
                None => prop_assert!(now < deadline_ms + (stale as i64) * 1000),
            }
        }
    }

    #[test]
    fn the_standard_webhooks_example_verifies() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_or_default();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            crate::core::envelope::hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            crate::core::envelope::hex(&mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn retries_follow_the_schedule() {
        let base = DEFAULT_RETRY_BASE_S;
        let waits: Vec<u64> = (2..=MAX_ATTEMPTS)
            .map(|n| delay_before_attempt(n, base))
            .collect();
        assert_eq!(waits, [5, 25, 125, 625, 3125, 15625]);
        use AttemptResult::*;
        assert_eq!(after_attempt(Status(204), 1, base), Next::Delivered);
        for retry in [NoAnswer, Status(408), Status(429), Status(500), Status(503)] {
            assert_eq!(after_attempt(retry, 1, base), Next::RetryIn(5));
            assert_eq!(after_attempt(retry, 6, base), Next::RetryIn(15625));
            assert_eq!(after_attempt(retry, 7, base), Next::Failed);
        }
        for fail in [
            Status(400),
            Status(401),
            Status(404),
            Status(301),
            Status(302),
        ] {
            assert_eq!(after_attempt(fail, 1, base), Next::Failed);
        }
    }

    #[test]
    fn endpoint_bodies() {
        let map = |v: Value| v.as_object().cloned().unwrap_or_default();
        let ok = parse_endpoint(&map(json!({ "url": "https://hooks.example/in?k=1" })));
        assert_eq!(ok.as_ref().map(|e| e.events.len()), Ok(6));
        // An endpoint stored in v1.1 with every type then takes the new ones; a subset stays.
        let v11 = r#"["group.join","group.leave","join_job.completed","join_job.paused","session.cooldown"]"#;
        assert_eq!(
            serde_json::from_str::<Vec<String>>(&stored_events(v11)).unwrap(),
            EVENT_TYPES.to_vec()
        );
        assert_eq!(stored_events(r#"["group.join"]"#), r#"["group.join"]"#);
        let some = parse_endpoint(&map(
            json!({ "url": "http://127.0.0.1:9/h", "events": ["group.join", "group.join"], "rotate_secret": true }),
        ));
        assert_eq!(
            some.map(|e| (e.events, e.rotate_secret)),
            Ok((vec!["group.join".to_string()], true))
        );
        for (body, field) in [
            (json!({}), "url"),
            (json!({ "url": "http://hooks.example" }), "url"),
            (json!({ "url": "https://u:p@hooks.example" }), "url"),
            (
                json!({ "url": "https://hooks.example", "events": [] }),
                "events",
            ),
            (
                json!({ "url": "https://hooks.example", "events": ["group.joined"] }),
                "events",
            ),
            (
                json!({ "url": "https://hooks.example", "rotate_secret": "yes" }),
                "rotate_secret",
            ),
            (
                json!({ "url": "https://hooks.example", "secret": "x" }),
                "secret",
            ),
        ] {
            let error = parse_endpoint(&map(body.clone())).err();
            assert_eq!(
                error.and_then(|e| e.details.get("field").cloned()),
                Some(Value::from(field)),
                "{body}"
            );
        }
    }

    #[test]
    fn ids_and_secrets() {
        assert!(is_delivery_id("msg_0123456789abcdef01234567"));
        assert!(!is_delivery_id("msg_0123456789ABCDEF01234567"));
        let secret = new_secret(&[1u8; 32]);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_key(&secret), Some(vec![1u8; 32]));
        assert_eq!(secret_key("nope"), None);
    }
}
