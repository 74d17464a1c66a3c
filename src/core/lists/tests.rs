use super::*;
use crate::core::backend::spec::StoredBackend;
use crate::core::backend::Kind;
use crate::core::error::ErrorCode;
use crate::core::token::Capability;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn at(last: &str, kv: Option<&str>) -> Position {
    Position {
        last: last.into(),
        kv: kv.unwrap_or_default().into(),
    }
}

fn field_of(error: ApiError) -> (ErrorCode, Value) {
    (error.code, error.details["field"].clone())
}

#[test]
fn cursors_read_back_and_nothing_else_does() {
    for (list, position) in [
        (List::Sessions, at("s1", None)),
        (
            List::AdminSessions,
            at("wa-main", Some("AAEC_opaque-KV/cursor==")),
        ),
        (List::Tokens, at("tok_0123456789abcdef", Some("x:y:z"))),
        (List::Tokens, at("", Some("c1"))),
    ] {
        let cursor = encode_cursor(list, &position);
        assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()), "{cursor}");
        assert_eq!(decode_cursor(list, &cursor), Some(position));
    }
    // Both session lists walk the same keys: their cursors are the same.
    let sessions = encode_cursor(List::Sessions, &at("s1", None));
    assert_eq!(
        decode_cursor(List::AdminSessions, &sessions),
        Some(at("s1", None))
    );
    assert_eq!(decode_cursor(List::Tokens, &sessions), None);
    let tokens = encode_cursor(List::Tokens, &at("tok_0123456789abcdef", None));
    assert_eq!(decode_cursor(List::Sessions, &tokens), None);
    // Not hex, not canonical hex, cut short, another checksum, an id that is not one.
    let made_up = |text: &str| hex(text.as_bytes()) + &sha256_hex(text)[..8];
    assert_eq!(
        decode_cursor(List::Sessions, &made_up("session:s1:")),
        Some(at("s1", None))
    );
    for bad in [
        String::new(),
        "zz".into(),
        "00".into(),
        sessions.to_uppercase(),
        format!(" {sessions}"),
        sessions[..sessions.len() - 2].to_string(),
        format!("{sessions}00"),
        hex(b"session:s1:"),
        made_up("session:a b:"),
        made_up("session:s1"),
        made_up("token_id:s1:"),
        made_up(&format!("session:{}:", "a".repeat(65))),
        "0".repeat(MAX_CURSOR_CHARS + 2),
    ] {
        assert_eq!(decode_cursor(List::Sessions, &bad), None, "{bad}");
    }
}

#[test]
fn queries() {
    let ok = |list, query: &str| parse_query(list, query).map_err(field_of);
    let all = ListQuery {
        org: None,
        limit: 50,
        from: Position::default(),
    };
    assert_eq!(ok(List::Sessions, ""), Ok(all.clone()));
    assert_eq!(
        ok(List::Sessions, "other=1&limit=200"),
        Ok(ListQuery {
            limit: 200,
            ..all.clone()
        })
    );
    assert_eq!(
        ok(List::Tokens, "org=acme&limit=1"),
        Ok(ListQuery {
            org: Some("acme".into()),
            limit: 1,
            ..all.clone()
        })
    );
    // A tenant list is its token's org: `org` is not its parameter.
    assert_eq!(ok(List::Sessions, "org=other"), Ok(all.clone()));
    let cursor = encode_cursor(List::AdminSessions, &at("s9", Some("k")));
    assert_eq!(
        ok(List::AdminSessions, &format!("cursor={cursor}")),
        Ok(ListQuery {
            from: at("s9", Some("k")),
            ..all
        })
    );
    for (list, query, field) in [
        (List::Sessions, "limit=0", "limit"),
        (List::Sessions, "limit=201", "limit"),
        (List::Sessions, "limit=1.5", "limit"),
        (List::Sessions, "limit=-1", "limit"),
        (List::Sessions, "limit=", "limit"),
        (List::Sessions, "limit=ten", "limit"),
        (List::Tokens, "cursor=", "cursor"),
        (List::Tokens, "cursor=abc", "cursor"),
        (List::Tokens, &format!("cursor={cursor}"), "cursor"),
        (List::AdminSessions, "org=", "org"),
        (List::AdminSessions, "org=a%20b", "org"),
        (List::Tokens, &format!("org={}", "a".repeat(65)), "org"),
    ] {
        assert_eq!(
            ok(list, query),
            Err((ErrorCode::ValidationError, Value::from(field))),
            "{query}"
        );
    }
}

#[test]
fn what_metadata_shows() {
    let session = json!({ "org": "acme", "backend_kind": "waha" });
    let shown = json!({ "session_id": "s1", "backend_kind": "waha" });
    for (list, org, meta, expected) in [
        (
            List::Sessions,
            Some("acme"),
            &session,
            Seen::Shown(shown.clone()),
        ),
        (List::Sessions, Some("other"), &session, Seen::Hidden),
        // No metadata (written before v1.2), or only part of it: the record is read.
        (List::Sessions, Some("acme"), &Value::Null, Seen::Read(None)),
        (
            List::Sessions,
            Some("acme"),
            &json!({ "backend_kind": "waha" }),
            Seen::Read(None),
        ),
        (List::AdminSessions, None, &session, Seen::Read(None)),
        (
            List::AdminSessions,
            Some("acme"),
            &session,
            Seen::Read(None),
        ),
        (List::AdminSessions, Some("other"), &session, Seen::Hidden),
        (
            List::AdminSessions,
            Some("other"),
            &Value::Null,
            Seen::Read(None),
        ),
    ] {
        assert_eq!(
            seen(list, org, "s1", meta),
            expected,
            "{list:?} {org:?} {meta}"
        );
    }
    let view = json!({ "token_id": "tok_0123456789abcdef", "org": "acme" });
    let id = "tok_0123456789abcdef";
    assert_eq!(
        seen(List::Tokens, None, id, &view),
        Seen::Shown(view.clone())
    );
    assert_eq!(
        seen(List::Tokens, Some("acme"), id, &view),
        Seen::Shown(view.clone())
    );
    assert_eq!(seen(List::Tokens, Some("other"), id, &view), Seen::Hidden);
    // Metadata of another key is not this key's view.
    assert_eq!(
        seen(List::Tokens, None, "tok_1111111111111111", &view),
        Seen::Read(None)
    );
    // A view too large for KV's metadata: only the org, and the record is read.
    let big = json!({ "org": "acme" });
    assert_eq!(seen(List::Tokens, None, id, &big), Seen::Read(None));
    assert_eq!(seen(List::Tokens, Some("x"), id, &big), Seen::Hidden);
}

fn entry(id: &str, seen: Seen) -> Entry {
    Entry {
        id: id.into(),
        seen,
    }
}

#[test]
fn windows_cover_what_may_be_shown_within_the_reads() {
    let shown = || Seen::Shown(json!(1));
    let list = [
        entry("a", Seen::Hidden),
        entry("b", shown()),
        entry("c", Seen::Read(None)),
        entry("d", Seen::Hidden),
        entry("e", Seen::Read(None)),
        entry("f", shown()),
    ];
    for (wanted, budget, count) in [
        (0, 10, 0),
        (1, 10, 2),
        (2, 10, 3),
        (3, 10, 5),
        (4, 10, 6),
        (9, 10, 6),
        (9, 1, 4),
        (9, 0, 2),
        (1, 0, 2),
    ] {
        assert_eq!(window(&list, wanted, budget), count, "{wanted} {budget}");
    }
}

fn query(limit: usize, from: Position) -> ListQuery {
    ListQuery {
        org: None,
        limit,
        from,
    }
}

fn next_of(step: &Step, list: List) -> Option<Position> {
    match step {
        Step::Done(data) => data["next_cursor"]
            .as_str()
            .map(|c| decode_cursor(list, c).unwrap_or_default()),
        _ => None,
    }
}

#[test]
fn a_walk_step_by_step() {
    let meta = json!({ "org": "acme", "backend_kind": "joingate" });
    let key = |name: &str| json!({ "name": name, "metadata": meta });
    let shown = |id: &str| json!({ "session_id": id, "backend_kind": "joingate" });
    let start = |limit, from| {
        Walk::start(
            List::Sessions,
            Some("acme"),
            query(limit, from),
            None,
            Limits::default(),
        )
    };
    // The first KV page, and the second from its cursor.
    let (mut walk, step) = start(2, Position::default());
    assert_eq!(step, Step::List(String::new()));
    let page = json!({ "keys": [key("session:a"), key("session:b c"), key("other:x"), { "nom": 1 }],
                       "list_complete": false, "cursor": "k1" });
    assert_eq!(walk.answered(&page), Step::List("k1".into()));
    // Two shown, and one beyond: the page ends after the second, in the KV page k1.
    let page = json!({ "keys": [key("session:b"), key("session:c"), key("session:d")], "list_complete": true });
    let step = walk.answered(&page);
    assert_eq!(
        step,
        Step::Done(
            json!({ "sessions": [shown("a"), shown("b")], "next_cursor": encode_cursor(List::Sessions, &at("b", Some("k1"))) })
        )
    );
    // From there: c and d, and KV has no more: no cursor.
    let (mut walk, step) = start(2, at("b", Some("k1")));
    assert_eq!(step, Step::List("k1".into()));
    assert_eq!(
        walk.answered(&page),
        Step::Done(json!({ "sessions": [shown("c"), shown("d")] }))
    );
    // Full at the end of a KV page that is not the last: a cursor, no further list.
    let (mut walk, _) = start(1, Position::default());
    let step = walk
        .answered(&json!({ "keys": [key("session:a")], "list_complete": false, "cursor": "k2" }));
    assert_eq!(next_of(&step, List::Sessions), Some(at("a", Some("k2"))));
    // An answer that is not KV's: nothing, and no cursor.
    let (mut walk, _) = start(1, Position::default());
    assert_eq!(
        walk.answered(&json!(null)),
        Step::Done(json!({ "sessions": [] }))
    );
    // Records to read: asked all at once, in order; a record gone since is left out.
    let (mut walk, _) = start(5, Position::default());
    let page = json!({ "keys": [{ "name": "session:a" }, key("session:b"), { "name": "session:c" }], "list_complete": true });
    assert_eq!(
        walk.answered(&page),
        Step::Read(vec!["session:a".into(), "session:c".into()])
    );
    let record = serde_json::to_string(&session_record("acme", None)).unwrap_or_default();
    let step = walk.answered(&json!([null, record]));
    assert_eq!(
        step,
        Step::Done(json!({ "sessions": [shown("b"), shown("c")] }))
    );
}

fn token() -> TokenRecord {
    TokenRecord {
        token_id: "tok_0123456789abcdef".into(),
        org: "acme".into(),
        capabilities: vec![Capability::Join, Capability::Read],
        sessions: None,
        expires_at: None,
        revoked: false,
        label: None,
        created_at: 1_781_524_800,
    }
}

#[test]
fn token_views_never_hold_the_token_or_its_hash() {
    let minimal = json!({
        "token_id": "tok_0123456789abcdef",
        "org": "acme",
        "capabilities": ["join", "read"],
        "created_at": "2026-06-15T12:00:00Z",
        "revoked": false,
    });
    assert_eq!(token_view(&token(), None), minimal);
    let full = TokenRecord {
        sessions: Some(vec!["s1".into()]),
        expires_at: Some(1_893_456_000),
        label: Some("ci".into()),
        revoked: true,
        ..token()
    };
    let view = token_view(&full, None);
    assert_eq!(view["sessions"], json!(["s1"]));
    assert_eq!(view["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(view["label"], "ci");
    assert_eq!(view["revoked"], true);
    assert_eq!(token_metadata(&full), view);
    // Too large for KV's metadata: the org only, and the list reads the record.
    let long = TokenRecord {
        sessions: Some((0..100).map(|i| format!("session-{i:03}")).collect()),
        ..token()
    };
    assert_eq!(token_metadata(&long), json!({ "org": "acme" }));
    assert!(token_view(&long, None).to_string().len() > MAX_METADATA_BYTES);
    assert_eq!(
        token_shown("tok_0123456789abcdef", &full, Some("acme")),
        Some(view.clone())
    );
    assert_eq!(token_shown("tok_0123456789abcdef", &full, None), Some(view));
    assert_eq!(
        token_shown("tok_0123456789abcdef", &full, Some("other")),
        None
    );
    assert_eq!(token_shown("tok_1111111111111111", &full, None), None);
}

#[test]
fn the_caller_is_described_without_its_token() {
    assert_eq!(
        caller_view(&token()),
        json!({ "kind": "api_token", "org": "acme", "capabilities": ["join", "read"] })
    );
    let listed = TokenRecord {
        sessions: Some(vec!["s1".into()]),
        expires_at: Some(1_893_456_000),
        label: Some("ci".into()),
        ..token()
    };
    assert_eq!(
        caller_view(&listed),
        json!({ "kind": "api_token", "org": "acme", "capabilities": ["join", "read"],
                "sessions": ["s1"], "expires_at": "2030-01-01T00:00:00Z" })
    );
    let login = TokenRecord {
        token_id: "jwt:0123456789abcdef".into(),
        expires_at: Some(1_893_456_000),
        created_at: 0,
        ..token()
    };
    assert_eq!(
        caller_view(&login),
        json!({ "kind": "login", "org": "acme", "capabilities": ["join", "read"],
                "expires_at": "2030-01-01T00:00:00Z" })
    );
}

#[test]
fn sessions_show_their_backend_kind() {
    let mut record = SessionRecord {
        org: "acme".into(),
        limits: Default::default(),
        backend: None,
        protection: Default::default(),
        events: None,
    };
    assert_eq!(
        session_metadata(&record),
        json!({ "org": "acme", "backend_kind": "joingate" })
    );
    record.backend = Some(StoredBackend {
        kind: Kind::Gowa,
        url: "https://gowa.example".into(),
        remote_session: None,
        credential: None,
    });
    assert_eq!(
        session_metadata(&record),
        json!({ "org": "acme", "backend_kind": "gowa" })
    );
    assert_eq!(
        session_summary("s1", &record, "acme"),
        Some(json!({ "session_id": "s1", "backend_kind": "gowa" }))
    );
    assert_eq!(session_summary("s1", &record, "other"), None);
}

// Walks over a fake KV of several pages, and the paging proptests.
mod walk;
use walk::session_record;
