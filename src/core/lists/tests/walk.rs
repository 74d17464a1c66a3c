//! `core::lists`' page walk over a fake KV of several pages (sessions and tokens, an org
//! that is rare), and the paging proptests.

use super::*;

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

pub(super) fn session_record(org: &str, kind: Option<Kind>) -> SessionRecord {
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
