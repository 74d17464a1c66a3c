//! The submit body: items checked one by one, the interval, expected groups, a recovery's
//! source session, and job ids.

use super::*;
use serde_json::json;

const CODE: &str = "AbCdEfGhIjKlMnOpQrStUv";

fn map(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn field(result: Result<Submit, ApiError>) -> Option<(ErrorCode, String)> {
    result
        .err()
        .map(|e| (e.code, e.field().unwrap_or_default().to_string()))
}

#[test]
fn submit_bodies_are_checked_item_by_item() {
    let ok = parse_submit(
        &map(
            json!({ "invites": [CODE, format!("https://chat.whatsapp.com/{CODE}"), "BbCdEfGhIjKlMnOpQrStUv", { "code": "Xy12-ab", "group_jid": "1@g.us", "inviter_jid": "1@lid" }], "label": "onboarding" }),
        ),
        1000,
        180,
        60,
    );
    assert_eq!(
        ok.as_ref().map(|s| s.items.len()),
        Ok(3),
        "duplicates collapse"
    );
    assert_eq!(ok.as_ref().map(|s| s.interval_s), Ok(180), "the default");
    use ErrorCode::*;
    let many: Vec<Value> = (0..501).map(|_| Value::from(CODE)).collect();
    for (body, expected) in [
        (json!({}), (ValidationError, "invites")),
        (json!({ "invites": [] }), (ValidationError, "invites")),
        (json!({ "invites": CODE }), (ValidationError, "invites")),
        (json!({ "invites": many }), (ValidationError, "invites")),
        (
            json!({ "invites": [CODE, "nope"] }),
            (InviteMalformed, "invites[1]"),
        ),
        (
            json!({ "invites": [CODE, 5] }),
            (ValidationError, "invites[1]"),
        ),
        (
            json!({ "invites": [{ "code": "x", "group_jid": "1@s.whatsapp.net", "inviter_jid": "1@lid" }] }),
            (ValidationError, "invites[0].group_jid"),
        ),
        (
            json!({ "invites": [{ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": 5 }] }),
            (InviteExpired, "invites[0].expiration"),
        ),
        (
            json!({ "invites": [{ "invite": 5 }] }),
            (ValidationError, "invites[0].invite"),
        ),
        (
            json!({ "invites": [{ "invite": "nope", "expected_group_jid": "1@g.us" }] }),
            (InviteMalformed, "invites[0].invite"),
        ),
        (
            json!({ "invites": [CODE, { "invite": CODE, "expected_group_jid": "1@lid" }] }),
            (ValidationError, "invites[1].expected_group_jid"),
        ),
        (
            json!({ "invites": [{ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expected_group_jid": "1@g.us" }] }),
            (ValidationError, "invites[0].expected_group_jid"),
        ),
        (
            json!({ "invites": [{ "invite": CODE, "expected_group_jid": "1@g.us", "label": "x" }] }),
            (ValidationError, "invites[0].label"),
        ),
        (
            json!({ "invites": [CODE], "from_session": "s1" }),
            (ValidationError, "from_session"),
        ),
        (
            json!({ "from_session": "bad id" }),
            (ValidationError, "from_session"),
        ),
        (
            json!({ "from_session": 5 }),
            (ValidationError, "from_session"),
        ),
        (
            json!({ "from_session": "s1", "interval_s": 5 }),
            (ValidationError, "interval_s"),
        ),
        (
            json!({ "invites": [CODE], "label": "" }),
            (ValidationError, "label"),
        ),
        (
            json!({ "invites": [CODE], "interval_s": 59 }),
            (ValidationError, "interval_s"),
        ),
        (
            json!({ "invites": [CODE], "interval_s": 0 }),
            (ValidationError, "interval_s"),
        ),
        (
            json!({ "invites": [CODE], "interval_s": 86401 }),
            (ValidationError, "interval_s"),
        ),
        (
            json!({ "invites": [CODE], "interval_s": 5.5 }),
            (ValidationError, "interval_s"),
        ),
        (
            json!({ "invites": [CODE], "pace": 5 }),
            (ValidationError, "pace"),
        ),
    ] {
        let label = body.to_string();
        assert_eq!(
            field(parse_submit(&map(body), 1000, 180, 60)),
            Some((expected.0, expected.1.to_string())),
            "{label:.80}"
        );
    }
    // 500 sent, duplicates included, is fine.
    let five_hundred: Vec<Value> = (0..500).map(|_| Value::from(CODE)).collect();
    assert_eq!(
        parse_submit(&map(json!({ "invites": five_hundred })), 0, 180, 60).map(|s| s.items.len()),
        Ok(1)
    );
}

#[test]
fn interval_s_runs_from_the_minimum_passed_in_to_a_day() {
    let interval =
        |body: Value, min: u32| parse_submit(&map(body), 0, 180, min).map(|s| s.interval_s);
    for (asked, min, expected) in [
        (60, 60, Some(60)),
        (86_400, 60, Some(86_400)),
        (59, 60, None),
        (86_401, 60, None),
        (5, 5, Some(5)),
        (4, 5, None),
        (1, 1, Some(1)),
        (119, 120, None),
    ] {
        let got = interval(json!({ "invites": [CODE], "interval_s": asked }), min);
        assert_eq!(
            got.as_ref().ok().copied(),
            expected,
            "{asked} with minimum {min}"
        );
        if let Err(error) = got {
            assert!(
                error.message.contains(&format!("from {min} to 86400")),
                "{}",
                error.message
            );
        }
    }
    assert_eq!(interval(json!({ "invites": [CODE] }), 5), Ok(180));
}

#[test]
fn job_ids() {
    assert!(is_job_id("job_0123456789abcdef"));
    for bad in [
        "job_0123456789ABCDEF",
        "job_123",
        "jab_0123456789abcdef",
        "",
    ] {
        assert!(!is_job_id(bad));
    }
}

#[test]
fn items_may_name_their_expected_group() {
    let submit = parse_submit(
        &map(json!({ "invites": [
            { "invite": CODE, "expected_group_jid": "1@g.us" },
            { "invite": format!("https://chat.whatsapp.com/{CODE}"), "expected_group_jid": "2@g.us" },
            { "invite": "BbCdEfGhIjKlMnOpQrStUv" },
            { "invite": "CbCdEfGhIjKlMnOpQrStUv", "expected_group_jid": null },
            "DbCdEfGhIjKlMnOpQrStUv",
        ] })),
        0,
        180,
        60,
    );
    let expected: Option<Vec<Option<&str>>> = submit.as_ref().ok().map(|s| {
        s.items
            .iter()
            .map(|i| i.expected_group_jid.as_deref())
            .collect()
    });
    assert_eq!(
        expected,
        Some(vec![Some("1@g.us"), None, None, None]),
        "the first of a duplicate code is kept"
    );
    assert_eq!(submit.map(|s| s.from_session), Ok(None));
}

#[test]
fn a_recovery_names_its_source_session_instead_of_invites() {
    let parse = |body: Value| parse_submit(&map(body), 0, 180, 60);
    let submit = parse(json!({ "from_session": "old-1", "label": "recovery", "interval_s": 600 }));
    assert_eq!(
        submit,
        Ok(Submit {
            items: Vec::new(),
            label: Some("recovery".into()),
            interval_s: 600,
            from_session: Some("old-1".into()),
        })
    );
    // A null member counts as left out.
    assert!(parse(json!({ "from_session": "old-1", "invites": null })).is_ok());
    assert_eq!(
        field(parse(json!({ "from_session": null }))),
        Some((ErrorCode::ValidationError, "invites".into()))
    );
}
