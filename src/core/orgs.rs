//! The body of `PUT /v1/admin/orgs/{org}` (contract sections 6 and 15, v1.2): a PUT changes
//! only the fields it names, so `limits` or `policy` left out is kept; `"limits": {}`
//! returns the limit to the default and `"policy": {}` clears the policy.

use serde_json::{Map, Value};

use super::error::ApiError;
use super::json::reject_unknown;
use super::limits::{parse_org_body, ClassOverride};
use super::policy::Policy;

/// What a PUT of an org record changes.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgPut {
    /// `None`: the limit is left as it is; `Some(None)`: back to the default.
    pub limits: Option<Option<ClassOverride>>,
    /// `None`: the policy is left as it is; an empty policy clears it.
    pub policy: Option<Policy>,
}

/// Parses the body. A member that is `null` counts as left out.
pub fn parse_org_put(body: &Map<String, Value>) -> Result<OrgPut, ApiError> {
    reject_unknown(body, &["limits", "policy"], "")?;
    let limits = match body.get("limits").filter(|v| !v.is_null()) {
        None => None,
        Some(value) => {
            let mut only = Map::new();
            only.insert("limits".into(), value.clone());
            // An override with no field set is the default itself.
            Some(parse_org_body(&only)?.filter(|o| *o != ClassOverride::default()))
        }
    };
    let policy = match body.get("policy").filter(|v| !v.is_null()) {
        None => None,
        Some(value) => Some(Policy::parse(value)?),
    };
    Ok(OrgPut { limits, policy })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;
    use serde_json::json;

    fn put(value: Value) -> Result<OrgPut, ApiError> {
        parse_org_put(value.as_object().expect("an object"))
    }

    #[test]
    fn fields_left_out_are_kept() {
        let kept = put(json!({})).expect("valid");
        assert_eq!(kept.limits, None);
        assert_eq!(kept.policy, None);
        let nulls = put(json!({ "limits": null, "policy": null })).expect("valid");
        assert_eq!(nulls, kept);
    }

    #[test]
    fn empty_limits_mean_the_default_and_an_empty_policy_clears() {
        let cleared = put(json!({ "limits": {}, "policy": {} })).expect("valid");
        assert_eq!(cleared.limits, Some(None));
        assert_eq!(cleared.policy, Some(Policy::default()));
        let set = put(json!({ "limits": { "per_minute": 5 } })).expect("valid");
        assert_eq!(
            set.limits.flatten().and_then(|o| o.per_minute),
            Some(5),
            "the named field is kept"
        );
    }

    #[test]
    fn bad_members_are_validation_errors() {
        for body in [
            json!({ "nope": 1 }),
            json!({ "policy": { "max_size": 0 } }),
            json!({ "policy": [] }),
            json!({ "limits": { "per_minute": 0 } }),
        ] {
            let error = put(body.clone()).expect_err("invalid");
            assert_eq!(error.code, ErrorCode::ValidationError, "{body}");
        }
    }
}
