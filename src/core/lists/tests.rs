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

/// KV as Miniflare keeps it: keys in order, a page of `page_size`, the cursor the last
/// key of the page (so a cursor is a position, as in Cloudflare's KV).
struct FakeKv {
    keys: BTreeMap<String, (String, Value)>,
    page_size: usize,
}

impl FakeKv {
    fn list(&self, prefix: &str, cursor: Option<&str>) -> Value {
        let after = cursor.unwrap_or_default();
        let names: Vec<&String> = self
            .keys
            .keys()
            .filter(|name| name.starts_with(prefix) && name.as_str() > after)
            .take(self.page_size + 1)
            .collect();
        let complete = names.len() <= self.page_size;
        let page = &names[..names.len().min(self.page_size)];
        let keys: Vec<Value> = page
            .iter()
            .map(|name| match &self.keys[*name].1 {
                Value::Null => json!({ "name": name }),
                meta => json!({ "name": name, "metadata": meta }),
            })
            .collect();
        let mut answer = json!({ "keys": keys, "list_complete": complete });
        if !complete {
            answer["cursor"] = json!(page.last());
        }
        answer
    }

    /// Every page from the first to the one without `next_cursor`: the items, and the KV
    /// lists and reads of each page.
    fn pages(
        &self,
        list: List,
        org: Option<&str>,
        limit: usize,
        allowed: Option<&[String]>,
    ) -> Vec<(Vec<Value>, usize, usize)> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..500 {
            let mut query = format!("limit={limit}");
            if let Some(cursor) = &cursor {
                query += &format!("&cursor={cursor}");
            }
            let query = parse_query(list, &query).unwrap_or_else(|e| panic!("{}", e.message));
            let (mut walk, mut step) = Walk::start(list, org, query, allowed, Limits::default());
            let (mut lists, mut reads) = (0, 0);
            let data = loop {
                step = match step {
                    Step::List(kv) => {
                        lists += 1;
                        walk.answered(
                            &self.list(walk.prefix(), Some(kv.as_str()).filter(|k| !k.is_empty())),
                        )
                    }
                    Step::Read(keys) => {
                        reads += keys.len();
                        let texts: Vec<Value> = keys
                            .iter()
                            .map(|k| self.keys.get(k).map_or(Value::Null, |v| json!(v.0)))
                            .collect();
                        walk.answered(&Value::Array(texts))
                    }
                    Step::Done(data) => break data,
                };
            };
            let items = data[list.field()].as_array().cloned().unwrap_or_default();
            pages.push((items, lists, reads));
            match data["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        pages
    }
}

fn session_record(org: &str, kind: Option<Kind>) -> SessionRecord {
    SessionRecord {
        org: org.into(),
        limits: Default::default(),
        backend: kind.map(|kind| StoredBackend {
            kind,
            url: "https://server.example".into(),
            remote_session: None,
            credential: None,
        }),
        protection: Default::default(),
        events: None,
    }
}

/// Sessions `(id, org, with metadata)` in a fake KV (beside a token key, which no session
/// list shows).
fn sessions_kv(sessions: &[(String, &str, bool)], page_size: usize) -> FakeKv {
    let mut keys = BTreeMap::new();
    for (id, org, with_metadata) in sessions {
        let record = session_record(org, Some(Kind::Waha));
        let meta = if *with_metadata {
            session_metadata(&record)
        } else {
            Value::Null
        };
        let text = serde_json::to_string(&record).unwrap_or_default();
        keys.insert(format!("session:{id}"), (text, meta));
    }
    keys.insert(
        "token_id:tok_0123456789abcdef".into(),
        ("\"ab\"".into(), Value::Null),
    );
    FakeKv { keys, page_size }
}

fn ids(pages: &[(Vec<Value>, usize, usize)]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|(items, _, _)| {
            items
                .iter()
                .filter_map(|item| item["session_id"].as_str().map(str::to_owned))
        })
        .collect()
}

#[test]
fn a_walk_over_kv_pages() {
    let sessions: Vec<(String, &str, bool)> = (0..30)
        .map(|i| {
            (
                format!("s{i:02}"),
                if i % 3 == 0 { "other" } else { "acme" },
                i % 4 != 0,
            )
        })
        .collect();
    let kv = sessions_kv(&sessions, 7);
    let acme: Vec<String> = sessions
        .iter()
        .filter(|s| s.1 == "acme")
        .map(|s| s.0.clone())
        .collect();
    // The tenant list: the org's sessions, in order, each once; metadata shows them, a
    // key without it is read.
    let pages = kv.pages(List::Sessions, Some("acme"), 4, None);
    assert_eq!(ids(&pages), acme);
    assert!(pages
        .iter()
        .all(|(items, lists, _)| items.len() <= 4 && *lists <= MAX_KV_LISTS));
    assert_eq!(
        pages[0].0[0],
        json!({ "session_id": "s01", "backend_kind": "waha" })
    );
    // The admin list: every session's admin view, or one org's; an unknown org: nothing.
    let all = kv.pages(List::AdminSessions, None, 200, None);
    // (7 keys a KV page: 21 sessions in 3 lists, then the rest.)
    assert_eq!(all.iter().map(|p| p.0.len()).collect::<Vec<_>>(), [21, 9]);
    assert_eq!(
        all[0].0[0],
        admin_session_view(
            Limits::default(),
            "s00",
            &session_record("other", Some(Kind::Waha))
        )
    );
    assert_eq!(
        ids(&kv.pages(List::AdminSessions, Some("acme"), 3, None)),
        acme
    );
    assert_eq!(
        ids(&kv.pages(List::AdminSessions, Some("nobody"), 3, None)),
        Vec::<String>::new()
    );
    // An allow-listed token: its sessions of its org that exist, no list at all.
    let allowed: Vec<String> = ["s29", "s01", "s03", "zz", "s02"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let pages = kv.pages(List::Sessions, Some("acme"), 1, Some(&allowed));
    assert_eq!(ids(&pages), ["s01", "s02", "s29"]);
    assert!(pages.iter().all(|(_, lists, _)| *lists == 0));
}

#[test]
fn a_short_page_when_the_org_is_rare() {
    // 50 keys of another org, 7 a KV page: the first page lists 3 times and answers short.
    let mut sessions: Vec<(String, &str, bool)> = (0..50)
        .map(|i| (format!("a{i:02}"), "other", true))
        .collect();
    sessions.push(("z1".into(), "acme", true));
    let kv = sessions_kv(&sessions, 7);
    let pages = kv.pages(List::Sessions, Some("acme"), 10, None);
    assert_eq!(pages[0].0, Vec::<Value>::new());
    assert_eq!(pages[0].1, MAX_KV_LISTS);
    assert_eq!(ids(&pages), ["z1"]);
}

#[test]
fn a_walk_over_tokens() {
    let record = |i: usize, org: &str| TokenRecord {
        token_id: format!("tok_{i:016x}"),
        org: org.into(),
        label: i.is_multiple_of(2).then(|| "ci".to_string()),
        ..token()
    };
    let mut keys = BTreeMap::new();
    let mut views = Vec::new();
    for i in 0..12 {
        let org = if i % 3 == 0 { "other" } else { "acme" };
        let mut record = record(i, org);
        if i == 5 {
            record.sessions = Some((0..100).map(|n| format!("session-{n:03}")).collect());
        }
        let hash = format!("{i:064x}");
        // Metadata: the view, the view too large (the org only), none (before v1.2).
        let meta = match i % 4 {
            0 => Value::Null,
            _ => token_metadata(&record),
        };
        keys.insert(
            format!("token_id:{}", record.token_id),
            (format!("\"{hash}\""), meta),
        );
        keys.insert(
            format!("token:{hash}"),
            (
                serde_json::to_string(&record).unwrap_or_default(),
                Value::Null,
            ),
        );
        views.push((org, token_view(&record, None)));
    }
    // An index whose record is gone shows nothing.
    keys.insert(
        "token_id:tok_00000000000000ff".into(),
        ("\"dead\"".into(), Value::Null),
    );
    let kv = FakeKv { keys, page_size: 5 };
    for (org, limit) in [
        (None, 1),
        (None, 5),
        (Some("acme"), 2),
        (Some("other"), 200),
    ] {
        let pages = kv.pages(List::Tokens, org, limit, None);
        let shown: Vec<Value> = pages
            .iter()
            .flat_map(|(items, _, _)| items.clone())
            .collect();
        let expected: Vec<Value> = views
            .iter()
            .filter(|(of, _)| org.is_none_or(|org| org == *of))
            .map(|(_, view)| view.clone())
            .collect();
        assert_eq!(shown, expected, "{org:?} {limit}");
        for item in shown {
            assert!(item.get("hash").is_none() && item.get("token").is_none());
        }
    }
}

proptest! {
    #[test]
    fn any_position_is_a_cursor_that_reads_back(
        last in "([A-Za-z0-9_-]{1,64})?",
        kv in "\\PC{0,200}",
        tokens in any::<bool>(),
    ) {
        let (list, last) = if tokens {
            (List::Tokens, if last.is_empty() { last } else { "tok_0123456789abcdef".to_string() })
        } else {
            (List::Sessions, last)
        };
        let position = Position { last, kv };
        let cursor = encode_cursor(list, &position);
        prop_assert_eq!(decode_cursor(list, &cursor), Some(position));
    }

    #[test]
    fn a_changed_cursor_is_refused(
        last in "[A-Za-z0-9_-]{1,64}",
        kv in "[A-Za-z0-9+/=_-]{0,100}",
        index in any::<prop::sample::Index>(),
        digit in proptest::sample::select(b"0123456789abcdef".to_vec()),
    ) {
        let cursor = encode_cursor(List::Sessions, &Position { last, kv });
        let mut changed = cursor.clone().into_bytes();
        let at = index.index(changed.len());
        prop_assume!(changed[at] != digit);
        changed[at] = digit;
        let changed = String::from_utf8(changed).unwrap_or_default();
        prop_assert_eq!(decode_cursor(List::Sessions, &changed), None);
    }

    #[test]
    fn garbage_is_never_a_cursor(text in "\\PC{0,80}") {
        prop_assert_eq!(decode_cursor(List::Sessions, &text), None);
    }

    #[test]
    fn paging_shows_each_of_the_orgs_ids_once_in_order(
        sessions in proptest::collection::btree_map(
            "[a-d]{1,3}",
            (proptest::sample::select(vec!["acme", "other"]), any::<bool>()),
            0..60,
        ),
        page_size in 1usize..8,
        limit in 1usize..6,
        admin in any::<bool>(),
    ) {
        let sessions: Vec<(String, &str, bool)> =
            sessions.into_iter().map(|(id, (org, meta))| (id, org, meta)).collect();
        let kv = sessions_kv(&sessions, page_size);
        let list = if admin { List::AdminSessions } else { List::Sessions };
        let pages = kv.pages(list, Some("acme"), limit, None);
        let expected: Vec<String> =
            sessions.iter().filter(|s| s.1 == "acme").map(|s| s.0.clone()).collect();
        prop_assert_eq!(ids(&pages), expected);
        for (items, lists, reads) in &pages {
            prop_assert!(items.len() <= limit);
            prop_assert!(*lists <= MAX_KV_LISTS && *reads <= MAX_READS);
        }
    }
}
