//! Request bodies and path parameters: join bodies of both forms, participants, tokens,
//! sessions' configuration, and path segments.

use super::*;
use serde_json::json;

const CODE: &str = "AbCdEfGhIjKlMnOpQrStUv";

fn map(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn failure(result: Result<impl std::fmt::Debug, ApiError>) -> Option<(ErrorCode, Option<String>)> {
    result.err().map(|e| (e.code, e.field().map(str::to_owned)))
}

fn invalid(field: &str) -> Option<(ErrorCode, Option<String>)> {
    Some((ErrorCode::ValidationError, Some(field.to_string())))
}

#[test]
fn join_by_link_and_by_message() {
    let by_link = parse_join(
        &map(json!({ "invite": format!("https://chat.whatsapp.com/{CODE}") })),
        0,
    );
    assert!(matches!(by_link, Ok(JoinRequest::ByCode(ref c)) if c.as_str() == CODE));
    let message = json!({ "code": "Xy12-ab", "group_jid": "120363000000000001@g.us", "inviter_jid": "15551234567@s.whatsapp.net", "expiration": 2000 });
    let parsed = parse_join(&map(message), 1000);
    assert!(matches!(
        parsed.map(|p| p.op()),
        Ok(Op::JoinByMessage { expiration: Some(2000), ref code, .. }) if code == "Xy12-ab"
    ));
}

#[test]
fn join_body_errors_name_the_field() {
    let cases = [
        (json!({}), invalid("invite")),
        (json!({ "invite": 5 }), invalid("invite")),
        (json!({ "invite": null }), invalid("invite")),
        (
            json!({ "invite": "" }),
            Some((ErrorCode::InviteMalformed, Some("invite".into()))),
        ),
        (
            json!({ "invite": "https://evil.example/AbCdEfGhIjKlMnOp" }),
            Some((ErrorCode::InviteMalformed, Some("invite".into()))),
        ),
        (json!({ "invite": CODE, "code": "x" }), invalid("code")),
        (json!({ "invite": CODE, "extra": 1 }), invalid("extra")),
        (
            json!({ "code": "x", "group_jid": "1@g.us" }),
            invalid("inviter_jid"),
        ),
        (
            json!({ "code": "has space", "group_jid": "1@g.us", "inviter_jid": "1@s.whatsapp.net" }),
            invalid("code"),
        ),
        (
            json!({ "code": "x", "group_jid": "1@s.whatsapp.net", "inviter_jid": "1@s.whatsapp.net" }),
            invalid("group_jid"),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@g.us" }),
            invalid("inviter_jid"),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": "soon" }),
            invalid("expiration"),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": 1.5 }),
            invalid("expiration"),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": 999.0 }),
            Some((ErrorCode::InviteExpired, Some("expiration".into()))),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": 999 }),
            Some((ErrorCode::InviteExpired, Some("expiration".into()))),
        ),
        (
            json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid", "expiration": 1000 }),
            Some((ErrorCode::InviteExpired, Some("expiration".into()))),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            failure(parse_join(&map(body.clone()), 1000)),
            expected,
            "{body}"
        );
    }
}

#[test]
fn participants_are_checked_and_deduplicated() {
    let parsed = parse_participants(&map(
        json!({ "participants": ["1@s.whatsapp.net", "2@lid", "1@s.whatsapp.net"] }),
    ));
    assert_eq!(parsed.map(|list| list.len()), Ok(2));
    let too_many: Vec<String> = (0..51).map(|n| format!("{n}@lid")).collect();
    for (body, field) in [
        (json!({}), "participants"),
        (json!({ "participants": null }), "participants"),
        (json!({ "participants": [] }), "participants"),
        (json!({ "participants": "all" }), "participants"),
        (json!({ "participants": too_many }), "participants"),
        (json!({ "participants": [1] }), "participants[0]"),
        (
            json!({ "participants": ["1@lid", "bad"] }),
            "participants[1]",
        ),
        (json!({ "participants": ["1@lid"], "all": true }), "all"),
    ] {
        assert_eq!(
            failure(parse_participants(&map(body.clone()))),
            invalid(field),
            "{body}"
        );
    }
}

#[test]
fn token_bodies() {
    let ok = parse_new_token(
        &map(
            json!({ "org": "acme", "capabilities": ["join", "read", "join"], "sessions": ["s1"], "expires_at": "2030-01-01T00:00:00Z", "label": "ci" }),
        ),
        0,
    );
    assert_eq!(ok.as_ref().map(|t| t.capabilities.len()), Ok(2));
    assert_eq!(ok.map(|t| t.expires_at), Ok(Some(1_893_456_000)));
    for (body, field) in [
        (json!({ "capabilities": ["join"] }), "org"),
        (json!({ "org": "a b", "capabilities": ["join"] }), "org"),
        (json!({ "org": "acme" }), "capabilities"),
        (json!({ "org": "acme", "capabilities": [] }), "capabilities"),
        (
            json!({ "org": "acme", "capabilities": ["admin"] }),
            "capabilities",
        ),
        (
            json!({ "org": "acme", "capabilities": "join" }),
            "capabilities",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "sessions": [] }),
            "sessions",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "sessions": ["bad id"] }),
            "sessions",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "expires_at": "2000-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "expires_at": 5 }),
            "expires_at",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "label": 5 }),
            "label",
        ),
        (
            json!({ "org": "acme", "capabilities": ["join"], "scope": "all" }),
            "scope",
        ),
    ] {
        assert_eq!(
            failure(parse_new_token(&map(body.clone()), 1_800_000_000)),
            invalid(field),
            "{body}"
        );
    }
}

#[test]
fn preview_segments_are_percent_decoded() {
    let link = format!("https%3A%2F%2Fchat.whatsapp.com%2F{CODE}");
    assert_eq!(
        invite_from_path(&link).map(|c| c.as_str().to_string()),
        Ok(CODE.to_string())
    );
    assert_eq!(
        invite_from_path(CODE).map(|c| c.as_str().to_string()),
        Ok(CODE.to_string())
    );
    for bad in ["%zz", "%", "%C3%28", "x", "%+9AbCdEfGhIjKlMnOpQrStUv"] {
        assert_eq!(
            invite_from_path(bad).err().map(|e| e.code),
            Some(ErrorCode::InviteMalformed),
            "{bad}"
        );
    }
}

#[test]
fn path_parameters_are_decoded_once() {
    assert_eq!(
        group_jid("120363000000000001%40g.us").map(|g| g.to_string()),
        Ok("120363000000000001@g.us".to_string())
    );
    assert_eq!(
        session_id("%41bc").map(|s| s.to_string()),
        Ok("Abc".to_string())
    );
    assert_eq!(failure(session_id("a%2Fb")), invalid("sid"));
    assert_eq!(failure(session_id("%zz")), invalid("sid"));
    assert_eq!(failure(group_jid("1%2540g.us")), invalid("gjid"));
}

#[test]
fn session_config_bodies() {
    assert!(parse_session_config(&map(json!({ "org": "acme" })), 0, &|_| true).is_ok());
    assert_eq!(
        failure(parse_session_config(&map(json!({ "org": 1 })), 0, &|_| {
            true
        })),
        invalid("org")
    );
    assert_eq!(
        failure(parse_session_config(
            &map(json!({ "org": "a", "limits": { "join": { "burst": 0 } } })),
            0,
            &|_| true
        )),
        invalid("limits.join.burst")
    );
    assert_eq!(
        failure(parse_session_config(
            &map(json!({ "org": "a", "backend": { "kind": "nope", "url": "https://x.example" } })),
            0,
            &|_| true
        )),
        invalid("backend.kind")
    );
    let with_backend = parse_session_config(
        &map(json!({ "org": "a", "backend": { "kind": "waha", "url": "https://x.example/" } })),
        0,
        &|_| true,
    );
    assert_eq!(
        with_backend.map(|c| c.backend.map(|b| b.url)),
        Ok(Some("https://x.example".to_string()))
    );
}

#[test]
fn session_config_events_switch() {
    let parse = |body: Value| parse_session_config(&map(body), 0, &|_| true);
    let events = |body: Value| parse(body).map(|c| (c.events, c.rotate_events_secret));
    assert_eq!(events(json!({ "org": "a" })).ok(), Some((None, false)));
    assert_eq!(
        events(json!({ "org": "a", "events": null })).ok(),
        Some((None, false))
    );
    assert_eq!(
        events(json!({ "org": "a", "events": true, "rotate_events_secret": true })).ok(),
        Some((Some(true), true))
    );
    assert_eq!(
        events(json!({ "org": "a", "events": false })).ok(),
        Some((Some(false), false))
    );
    assert_eq!(
        failure(parse(json!({ "org": "a", "events": "yes" }))),
        invalid("events")
    );
    assert_eq!(
        failure(parse(json!({ "org": "a", "rotate_events_secret": 1 }))),
        invalid("rotate_events_secret")
    );
}

#[test]
fn session_config_takes_protection_as_sent() {
    use crate::core::protection::settings::WindowSetting;
    // 2026-06-15T12:00:00Z.
    let now_ms = 1_781_524_800_000;
    let berlin_only = |zone: &str| zone == "Europe/Berlin";
    let parsed = parse_session_config(
        &map(
            json!({ "org": "a", "protection": { "number_since": "2026-06-15", "timezone": "Europe/Berlin", "window": null } }),
        ),
        now_ms,
        &berlin_only,
    );
    let protection = parsed.map(|c| c.protection);
    assert_eq!(
        protection
            .as_ref()
            .map(|p| (p.number_since.as_deref(), p.timezone.as_deref(), p.window)),
        Ok((
            Some("2026-06-15"),
            Some("Europe/Berlin"),
            WindowSetting::Off
        ))
    );
    for body in [
        json!({ "org": "a" }),
        json!({ "org": "a", "protection": null }),
    ] {
        assert_eq!(
            parse_session_config(&map(body), now_ms, &berlin_only).map(|c| c.protection),
            Ok(Protection::default())
        );
    }
    for (protection, field) in [
        (json!({ "timezone": "Europe/Paris" }), "protection.timezone"),
        (
            json!({ "number_since": "2026-06-16" }),
            "protection.number_since",
        ),
        (json!({ "skip_warmup": true }), "protection.skip_warmup"),
        (json!("on"), "protection"),
    ] {
        assert_eq!(
            failure(parse_session_config(
                &map(json!({ "org": "a", "protection": protection })),
                now_ms,
                &berlin_only
            )),
            invalid(field)
        );
    }
}

#[test]
fn a_link_may_name_its_expected_group() {
    let parse = |body: Value| parse_join_body(&map(body), 1000);
    let expected = |body: Value| parse(body).map(|(_, g)| g.map(|g| g.to_string()));
    assert_eq!(expected(json!({ "invite": CODE })), Ok(None));
    assert_eq!(
        expected(json!({ "invite": CODE, "expected_group_jid": null })),
        Ok(None)
    );
    assert_eq!(
        expected(json!({ "invite": CODE, "expected_group_jid": "1-2@g.us" })),
        Ok(Some("1-2@g.us".to_string()))
    );
    let message = json!({ "code": "x", "group_jid": "1@g.us", "inviter_jid": "1@lid" });
    assert!(matches!(
        parse(message.clone()),
        Ok((JoinRequest::ByMessage { .. }, None))
    ));
    let mut with_null = message.clone();
    with_null["expected_group_jid"] = Value::Null;
    assert!(parse(with_null).is_ok(), "null counts as left out");
    let mut with_group = message;
    with_group["expected_group_jid"] = json!("1@g.us");
    for (body, expected) in [
        (with_group, invalid("expected_group_jid")),
        (
            json!({ "invite": CODE, "expected_group_jid": "1@s.whatsapp.net" }),
            invalid("expected_group_jid"),
        ),
        (
            json!({ "invite": CODE, "expected_group_jid": 5 }),
            invalid("expected_group_jid"),
        ),
        (
            json!({ "invite": "nope", "expected_group_jid": "1@g.us" }),
            Some((ErrorCode::InviteMalformed, Some("invite".into()))),
        ),
        (json!({ "expected_group_jid": "1@g.us" }), invalid("invite")),
        (json!({ "expected_group_jid": null }), invalid("invite")),
        (
            json!({ "invite": CODE, "expected_group_jid": "1@g.us", "x": 1 }),
            invalid("x"),
        ),
    ] {
        assert_eq!(failure(parse(body.clone())), expected, "{body}");
    }
    // The plain join body still knows no expected group.
    assert_eq!(
        failure(parse_join(
            &map(json!({ "invite": CODE, "expected_group_jid": "1@g.us" })),
            0
        )),
        invalid("expected_group_jid")
    );
}
