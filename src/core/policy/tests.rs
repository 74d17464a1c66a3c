//! Section 15's join policy: the PUT's `policy` field, its view and stored form, the rules
//! against a preview and an invite message, and when a join previews first.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const G1: &str = "120363000000000001@g.us";
const G2: &str = "120363000000000002@g.us";

fn failure(value: Value) -> Option<(ErrorCode, String)> {
    Policy::parse(&value)
        .err()
        .map(|e| (e.code, e.field().unwrap_or_default().to_string()))
}

fn facts(group_jid: &str, subject: Option<&str>, size: Option<u64>) -> GroupFacts {
    GroupFacts {
        group_jid: group_jid.into(),
        subject: subject.map(str::to_owned),
        size,
    }
}

fn policy(value: Value) -> Policy {
    Policy::parse(&value).unwrap_or_default()
}

#[test]
fn the_empty_policy_and_nulls() {
    for value in [
        json!({}),
        json!({ "allowed_groups": null, "blocked_subject_terms": null, "max_size": null, "preview_first": null }),
    ] {
        let parsed = Policy::parse(&value);
        assert_eq!(parsed, Ok(Policy::default()), "{value}");
    }
    assert_eq!(Policy::default().view(), json!({}));
    assert!(!Policy::default().has_rules());
    assert_eq!(
        Policy::default().mode(),
        PolicyMode {
            rules: false,
            preview_first: PreviewFirst::Jobs
        }
    );
}

#[test]
fn a_full_policy_reads_and_shows_as_given() {
    let value = json!({
        "allowed_groups": [G1, G2, G1],
        "blocked_subject_terms": ["Casino", "été"],
        "max_size": 500.0,
        "preview_first": "always",
    });
    let parsed = policy(value);
    assert_eq!(
        parsed.allowed_groups.as_deref(),
        Some(&[G1.to_string(), G2.to_string()][..]),
        "duplicates collapse, order kept"
    );
    assert_eq!(parsed.max_size, Some(500));
    assert_eq!(
        parsed.view(),
        json!({
            "allowed_groups": [G1, G2],
            "blocked_subject_terms": ["Casino", "été"],
            "max_size": 500,
            "preview_first": "always",
        })
    );
    assert!(parsed.has_rules());
    assert_eq!(
        parsed.mode(),
        PolicyMode {
            rules: true,
            preview_first: PreviewFirst::Always
        }
    );
    // The stored form reads back as the same policy.
    let stored = serde_json::to_string(&parsed.view()).unwrap_or_default();
    let back: Value = serde_json::from_str(&stored).unwrap_or_default();
    assert_eq!(Policy::parse(&back), Ok(parsed));
}

#[test]
fn an_empty_terms_list_is_no_rule() {
    let parsed = policy(json!({ "blocked_subject_terms": [] }));
    assert_eq!(parsed.blocked_subject_terms, Some(Vec::new()));
    assert_eq!(parsed.view(), json!({ "blocked_subject_terms": [] }));
    assert!(!parsed.has_rules());
    assert_eq!(parsed.judge_message(G1), Ok(()));
    assert_eq!(parsed.judge_with(&facts(G1, Some("x"), None)), Ok(()));
    assert!(!policy(json!({ "preview_first": "never" })).has_rules());
}

#[test]
fn bad_policies_name_the_field() {
    use ErrorCode::ValidationError as V;
    let many_groups: Vec<String> = (0..10_001).map(|n| format!("{n}@g.us")).collect();
    let many_terms: Vec<String> = (0..101).map(|n| format!("t{n}")).collect();
    let long_term = "é".repeat(101);
    for (value, field) in [
        (json!([]), "policy"),
        (json!("strict"), "policy"),
        (json!({ "allowed": [G1] }), "policy.allowed"),
        (json!({ "allowed_groups": [] }), "policy.allowed_groups"),
        (json!({ "allowed_groups": G1 }), "policy.allowed_groups"),
        (
            json!({ "allowed_groups": many_groups }),
            "policy.allowed_groups",
        ),
        (
            json!({ "allowed_groups": [G1, G2, G1, "1@s.whatsapp.net"] }),
            "policy.allowed_groups[3]",
        ),
        (json!({ "allowed_groups": [5] }), "policy.allowed_groups[0]"),
        (
            json!({ "blocked_subject_terms": "casino" }),
            "policy.blocked_subject_terms",
        ),
        (
            json!({ "blocked_subject_terms": many_terms }),
            "policy.blocked_subject_terms",
        ),
        (
            json!({ "blocked_subject_terms": ["ok", ""] }),
            "policy.blocked_subject_terms[1]",
        ),
        (
            json!({ "blocked_subject_terms": [long_term] }),
            "policy.blocked_subject_terms[0]",
        ),
        (
            json!({ "blocked_subject_terms": [null] }),
            "policy.blocked_subject_terms[0]",
        ),
        (json!({ "max_size": 0 }), "policy.max_size"),
        (json!({ "max_size": 100_001 }), "policy.max_size"),
        (json!({ "max_size": 1.5 }), "policy.max_size"),
        (json!({ "max_size": -1 }), "policy.max_size"),
        (json!({ "max_size": "10" }), "policy.max_size"),
        (
            json!({ "preview_first": "sometimes" }),
            "policy.preview_first",
        ),
        (json!({ "preview_first": true }), "policy.preview_first"),
    ] {
        assert_eq!(
            failure(value.clone()),
            Some((V, field.to_string())),
            "{:.80}",
            value.to_string()
        );
    }
    // The bounds themselves are fine: 100 characters (not bytes), 100 terms, 1 and 100000.
    let edge = json!({
        "blocked_subject_terms": ["é".repeat(100)],
        "max_size": 100_000,
    });
    assert!(Policy::parse(&edge).is_ok());
    assert!(Policy::parse(&json!({ "max_size": 1 })).is_ok());
    let hundred: Vec<String> = (0..100).map(|n| format!("t{n}")).collect();
    assert!(Policy::parse(&json!({ "blocked_subject_terms": hundred })).is_ok());
}

#[test]
fn judge_checks_the_rules_in_order() {
    let strict = policy(json!({
        "allowed_groups": [G1],
        "blocked_subject_terms": ["casino"],
        "max_size": 100,
    }));
    for (group, subject, size, expected) in [
        (G1, Some("Book club"), Some(50), Ok(())),
        (G1, Some("Book club"), Some(100), Ok(())),
        (G2, Some("CASINO night"), None, Err(Rule::AllowedGroups)),
        (
            G1,
            Some("Big CASINO night"),
            None,
            Err(Rule::BlockedSubjectTerms),
        ),
        (G1, Some("Book club"), Some(101), Err(Rule::MaxSize)),
        (G1, Some("Book club"), None, Err(Rule::MaxSize)),
        (G1, None, Some(1), Ok(())),
    ] {
        assert_eq!(
            strict.judge_with(&facts(group, subject, size)),
            expected,
            "{group} {subject:?} {size:?}"
        );
    }
    let summer = policy(json!({ "blocked_subject_terms": ["ÉTÉ"] }));
    assert_eq!(
        summer.judge_with(&facts(G2, Some("Fête de l'été 2026"), None)),
        Err(Rule::BlockedSubjectTerms)
    );
    assert_eq!(summer.judge_with(&facts(G2, Some("Fête"), None)), Ok(()));
    assert_eq!(
        summer.judge_with(&facts(G2, None, None)),
        Ok(()),
        "no subject, no match"
    );
}

#[test]
fn invite_messages_pass_only_allowed_groups() {
    let groups = policy(json!({ "allowed_groups": [G1], "preview_first": "always" }));
    assert_eq!(groups.judge_message(G1), Ok(()));
    assert_eq!(groups.judge_message(G2), Err(Rule::AllowedGroups));
    let terms =
        policy(json!({ "allowed_groups": [G1], "blocked_subject_terms": ["x"], "max_size": 5 }));
    assert_eq!(terms.judge_message(G2), Err(Rule::AllowedGroups));
    assert_eq!(terms.judge_message(G1), Err(Rule::BlockedSubjectTerms));
    let size = policy(json!({ "max_size": 5 }));
    assert_eq!(size.judge_message(G1), Err(Rule::MaxSize));
    assert_eq!(Policy::default().judge_message(G1), Ok(()));
}

#[test]
fn when_a_join_previews_first() {
    let mode = |rules, preview_first| PolicyMode {
        rules,
        preview_first,
    };
    use PreviewFirst::*;
    for (m, job_item, expected, previews) in [
        (mode(false, Jobs), false, false, false),
        (mode(false, Jobs), true, false, true),
        (mode(false, Never), true, false, false),
        (mode(false, Never), false, true, true),
        (mode(false, Always), false, false, true),
        (mode(true, Never), false, false, true),
        (mode(true, Never), true, false, true),
    ] {
        assert_eq!(
            preview_needed(m, job_item, expected),
            previews,
            "{m:?} job_item {job_item} expected {expected}"
        );
    }
}

#[test]
fn the_mode_travels_as_a_small_object() {
    let mode = PolicyMode {
        rules: true,
        preview_first: PreviewFirst::Never,
    };
    let json = mode.view();
    assert_eq!(json, json!({ "rules": true, "preview_first": "never" }));
    assert_eq!(PolicyMode::read(&json), Some(mode));
    assert_eq!(
        PolicyMode::read(&json!({})),
        None,
        "both fields are written"
    );
    assert_eq!(
        PolicyMode::read(&json!({ "rules": false, "preview_first": "maybe" })),
        None
    );
}

#[test]
fn facts_expected_groups_and_refusals() {
    let preview =
        json!({ "group_jid": G1, "subject": "Club", "size": 12, "requires_approval": false });
    let found = facts_of(&preview);
    assert_eq!(found, Some(facts(G1, Some("Club"), Some(12))));
    assert_eq!(
        facts_of(&json!({ "group_jid": G1, "size": -3 })),
        Some(facts(G1, None, None))
    );
    assert_eq!(facts_of(&json!({ "subject": "Club" })), None);
    assert_eq!(facts_of(&json!({ "group_jid": 5 })), None);
    let found = found.unwrap_or_default();
    assert_eq!(check_expected(&found, None), Ok(()));
    assert_eq!(check_expected(&found, Some(G1)), Ok(()));
    let mismatch = check_expected(&found, Some(G2)).err();
    assert_eq!(
        mismatch.as_ref().map(|e| (e.code, e.status())),
        Some((ErrorCode::InviteMismatch, 409))
    );
    assert_eq!(
        mismatch.and_then(|e| e.details.get("group_jid").cloned()),
        Some(json!(G1))
    );
    for rule in [
        Rule::AllowedGroups,
        Rule::BlockedSubjectTerms,
        Rule::MaxSize,
    ] {
        let error = refused(rule);
        assert_eq!(error.status(), 403);
        assert_eq!(error.code.as_str(), "join_refused_by_policy");
        assert_eq!(error.details.get("rule"), Some(&json!(rule.as_str())));
        assert!(error.message.contains("no join request was sent"));
    }
    assert_eq!(PreviewFirst::parse("jobs"), Some(PreviewFirst::Jobs));
    assert_eq!(PreviewFirst::parse("Jobs"), None);
}

proptest! {
    /// The empty policy (whatever preview_first) never refuses a group.
    #[test]
    fn the_empty_policy_never_refuses(
        group in "[0-9]{1,20}@g\\.us",
        subject in proptest::option::of(".{0,40}"),
        size in proptest::option::of(any::<u64>()),
        preview in 0usize..4,
    ) {
        let mut empty = Policy {
            preview_first: [None, Some(PreviewFirst::Jobs), Some(PreviewFirst::Always), Some(PreviewFirst::Never)][preview],
            ..Policy::default()
        };
        prop_assert_eq!(empty.judge_with(&GroupFacts { group_jid: group.clone(), subject: subject.clone(), size }), Ok(()));
        prop_assert_eq!(empty.judge_message(&group), Ok(()));
        empty.blocked_subject_terms = Some(Vec::new());
        prop_assert_eq!(empty.judge_with(&GroupFacts { group_jid: group, subject, size }), Ok(()));
    }

    /// A term matches its subject whatever the case of either, in any script.
    #[test]
    fn terms_match_whatever_the_case(
        before in "[a-z ]{0,8}",
        term in "[a-zA-Zàéèçüöœ]{1,8}|CASINO|ÉTÉ|ΣΟΦΊΑ",
        after in "[a-z ]{0,8}",
        upper_subject in any::<bool>(),
    ) {
        let shown = if upper_subject { term.to_uppercase() } else { term.to_lowercase() };
        let subject = format!("{before}{shown}{after}");
        let rule = policy(json!({ "blocked_subject_terms": [term.clone()] }));
        prop_assert_eq!(rule.judge_with(&facts(G1, Some(&subject), None)), Err(Rule::BlockedSubjectTerms), "{} in {}", term, subject);
    }

    /// What is stored (the view) reads back as the same policy.
    #[test]
    fn the_view_reads_back(
        groups in proptest::option::of(proptest::collection::vec("[0-9]{1,6}(-[0-9]{1,4})?@g\\.us", 1..20)),
        terms in proptest::option::of(proptest::collection::vec("\\PC{1,12}", 0..5)),
        max_size in proptest::option::of(1u64..=100_000),
        preview in proptest::option::of(0usize..3),
    ) {
        let parsed = Policy::parse(&json!({
            "allowed_groups": groups,
            "blocked_subject_terms": terms,
            "max_size": max_size,
            "preview_first": preview.map(|p| ["jobs", "always", "never"][p]),
        }));
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let parsed = parsed.unwrap_or_default();
        prop_assert_eq!(Policy::parse(&parsed.view()), Ok(parsed));
    }
}

/// `Policy::judge` with Rust's own lower case (the Worker hands it the runtime's).
trait JudgeWith {
    fn judge_with(&self, facts: &GroupFacts) -> Result<(), Rule>;
}

impl JudgeWith for Policy {
    fn judge_with(&self, facts: &GroupFacts) -> Result<(), Rule> {
        self.judge(facts, |s| s.to_lowercase())
    }
}
