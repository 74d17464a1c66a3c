//! Section 15's group book: what each update does, seats in one column, the view, the list
//! query and its cursor, and the plan of a recovery job.

use super::*;
use crate::core::error::ErrorCode;
use proptest::prelude::*;

const G1: &str = "120363000000000001@g.us";
const G2: &str = "120363000000000002@g.us";

fn update(change: Change, session: &str, at_ms: i64) -> Update {
    Update {
        group_jid: G1.into(),
        session: session.into(),
        change,
        at_ms,
        subject: None,
        code: None,
    }
}

fn seat(session: &str, state: SeatState, since_ms: i64) -> Seat {
    Seat {
        session: session.into(),
        state,
        since_ms,
    }
}

fn entry(group_jid: &str, seats: Vec<Seat>, code: Option<&str>, updated_ms: i64) -> Entry {
    Entry {
        group_jid: group_jid.into(),
        subject: None,
        seats,
        sealed_code: code.map(str::to_owned),
        updated_ms,
    }
}

fn sealed(code: &str) -> Option<String> {
    Some(code.to_string())
}

#[test]
fn joins_create_entries_other_changes_do_not() {
    let mut joined = update(Change::Member, "s1", 100);
    joined.subject = Some("Club".into());
    assert_eq!(
        apply(None, &joined, sealed("sealed-1")),
        Some(Entry {
            group_jid: G1.into(),
            subject: Some("Club".into()),
            seats: vec![seat("s1", SeatState::Member, 100)],
            sealed_code: sealed("sealed-1"),
            updated_ms: 100,
        })
    );
    assert_eq!(
        apply(None, &update(Change::Pending, "s1", 5), None),
        Some(entry(G1, vec![seat("s1", SeatState::Pending, 5)], None, 5)),
        "a join by invite message keeps no code"
    );
    for change in [
        Change::Left,
        Change::Removed,
        Change::Expired,
        Change::InviteReset,
    ] {
        assert_eq!(
            apply(None, &update(change, "s1", 5), sealed("x")),
            None,
            "{change:?}"
        );
    }
    assert_eq!(
        apply(None, &update(Change::Member, "bad id", 5), None),
        None,
        "an invalid session id is never seated"
    );
}

#[test]
fn each_change_sets_the_sessions_seat() {
    let start = entry(
        G1,
        vec![seat("s1", SeatState::Member, 100)],
        sealed("c1").as_deref(),
        100,
    );
    let after =
        |change, session, at| apply(Some(start.clone()), &update(change, session, at), None);
    for (change, state) in [
        (Change::Member, SeatState::Member),
        (Change::Pending, SeatState::Pending),
        (Change::Left, SeatState::Left),
        (Change::Removed, SeatState::Removed),
    ] {
        let changed = after(change, "s1", 200);
        assert_eq!(
            changed.as_ref().map(|e| e.seats.clone()),
            Some(vec![seat("s1", state, 200)])
        );
        assert_eq!(changed.as_ref().map(|e| e.updated_ms), Some(200));
        assert_eq!(
            changed.and_then(|e| e.sealed_code),
            sealed("c1"),
            "no new code keeps the old one"
        );
    }
    // Another session gets its own seat.
    let second = after(Change::Left, "s2", 150);
    assert_eq!(
        second.map(|e| e.seats),
        Some(vec![
            seat("s1", SeatState::Member, 100),
            seat("s2", SeatState::Left, 150)
        ])
    );
    // The same state at the same time changes nothing.
    assert_eq!(after(Change::Member, "s1", 100), None);
}

#[test]
fn updates_older_than_the_seat_are_ignored() {
    let start = entry(G1, vec![seat("s1", SeatState::Left, 500)], None, 500);
    for change in [
        Change::Member,
        Change::Pending,
        Change::Removed,
        Change::Expired,
        Change::InviteReset,
    ] {
        assert_eq!(
            apply(Some(start.clone()), &update(change, "s1", 499), sealed("c")),
            None,
            "{change:?}"
        );
    }
    // An older update of another session still applies, and the entry's time stays the newest.
    let other = apply(Some(start), &update(Change::Member, "s2", 10), None);
    assert_eq!(other.as_ref().map(|e| e.updated_ms), Some(500));
    assert_eq!(other.map(|e| e.seats.len()), Some(2));
}

#[test]
fn only_a_pending_request_expires() {
    let start = entry(
        G1,
        vec![
            seat("s1", SeatState::Pending, 100),
            seat("s2", SeatState::Member, 100),
        ],
        None,
        100,
    );
    let expired = apply(
        Some(start.clone()),
        &update(Change::Expired, "s1", 300),
        None,
    );
    assert_eq!(
        expired.as_ref().map(|e| e.seats.clone()),
        Some(vec![seat("s2", SeatState::Member, 100)])
    );
    assert_eq!(expired.map(|e| e.updated_ms), Some(300));
    assert_eq!(
        apply(
            Some(start.clone()),
            &update(Change::Expired, "s2", 300),
            None
        ),
        None
    );
    assert_eq!(
        apply(Some(start), &update(Change::Expired, "s3", 300), None),
        None
    );
    // The entry stays, with no seat at all.
    let alone = entry(G1, vec![seat("s1", SeatState::Pending, 1)], None, 1);
    assert_eq!(
        apply(Some(alone), &update(Change::Expired, "s1", 2), None).map(|e| e.seats),
        Some(Vec::new())
    );
}

#[test]
fn codes_are_replaced_by_joins_and_resets() {
    let start = entry(
        G1,
        vec![seat("s1", SeatState::Member, 100)],
        sealed("c1").as_deref(),
        100,
    );
    let code = |change, sealed_code: Option<String>| {
        apply(Some(start.clone()), &update(change, "s2", 200), sealed_code).map(|e| e.sealed_code)
    };
    assert_eq!(code(Change::Member, sealed("c2")), Some(sealed("c2")));
    assert_eq!(code(Change::Pending, sealed("c2")), Some(sealed("c2")));
    assert_eq!(code(Change::InviteReset, sealed("c3")), Some(sealed("c3")));
    assert_eq!(
        code(Change::InviteReset, None),
        None,
        "nothing to keep: no change"
    );
    assert_eq!(
        code(Change::Left, sealed("c4")),
        Some(sealed("c1")),
        "a leave keeps the code"
    );
    // A reset changes no seat.
    let reset = apply(
        Some(start.clone()),
        &update(Change::InviteReset, "s1", 300),
        sealed("c5"),
    );
    assert_eq!(
        reset.as_ref().map(|e| e.seats.clone()),
        Some(start.seats.clone())
    );
    assert_eq!(reset.map(|e| e.updated_ms), Some(300));
    // A subject alone is a change.
    let mut renamed = update(Change::Expired, "s9", 50);
    renamed.subject = Some("New name".into());
    let renamed = apply(Some(start), &renamed, None);
    assert_eq!(
        renamed.as_ref().and_then(|e| e.subject.clone()),
        Some("New name".into())
    );
    assert_eq!(
        renamed.map(|e| e.updated_ms),
        Some(100),
        "never older than it was"
    );
}

#[test]
fn updates_travel_as_json() {
    let mut reset = update(Change::InviteReset, "s1", 7);
    reset.code = Some("AbCd".into());
    let json = reset.view();
    assert_eq!(
        json,
        json!({ "group_jid": G1, "session": "s1", "change": "invite_reset", "at_ms": 7, "code": "AbCd" })
    );
    assert_eq!(Update::read(&json), Some(reset));
    assert_eq!(
        Update::read(&json!({ "group_jid": G1 })),
        None,
        "incomplete"
    );
}

#[test]
fn views_show_seats_but_never_the_code() {
    let mut book_entry = entry(
        G1,
        vec![
            seat("s1", SeatState::Member, 0),
            seat("s2", SeatState::Pending, 1000),
        ],
        Some("SEALED"),
        1000,
    );
    book_entry.subject = Some("Club".into());
    let shown = view(&book_entry, None);
    assert_eq!(
        shown,
        json!({
            "group_jid": G1,
            "subject": "Club",
            "sessions": [
                { "session_id": "s1", "state": "member", "since": "1970-01-01T00:00:00Z" },
                { "session_id": "s2", "state": "pending", "since": "1970-01-01T00:00:01Z" },
            ],
            "invite_known": true,
            "updated_at": "1970-01-01T00:00:01Z",
        })
    );
    assert!(!shown.to_string().contains("SEALED"));
    let only_s2 = ["s2".to_string()];
    assert_eq!(
        view(&book_entry, Some(&only_s2))["sessions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(visible_to(&book_entry, Some(&only_s2)));
    assert!(visible_to(&book_entry, None));
    assert!(!visible_to(&book_entry, Some(&["s3".to_string()])));
    book_entry.subject = None;
    book_entry.sealed_code = None;
    let bare = view(&book_entry, None);
    assert_eq!(bare.get("subject"), None);
    assert_eq!(bare["invite_known"], json!(false));
}

#[test]
fn seats_skip_what_cannot_be_read() {
    let seats = vec![
        seat("s1", SeatState::Member, 5),
        seat("s-2_X", SeatState::Removed, -7),
    ];
    let text = encode_seats(&seats);
    assert_eq!(text, "s1 member 5;s-2_X removed -7");
    assert_eq!(decode_seats(&text), seats);
    assert_eq!(decode_seats(""), Vec::new());
    assert_eq!(
        decode_seats("s1 member 5;bad;s2 gone 1;s3 left x;s4 left 1 2;s5 left 9"),
        vec![
            seat("s1", SeatState::Member, 5),
            seat("s5", SeatState::Left, 9)
        ]
    );
    assert_eq!(encode_seats(&[seat("a;b", SeatState::Member, 1)]), "");
}

#[test]
fn list_queries() {
    let first = parse_list_query("");
    assert_eq!(
        first,
        Ok(ListQuery {
            session: None,
            limit: 50,
            cursor: None
        })
    );
    let cursor = cursor_of(&entry(G2, Vec::new(), None, 1_700_000_000_000));
    let full = parse_list_query(&format!("session=s%2D1&limit=200&cursor={cursor}&other=x"));
    assert_eq!(
        full,
        Ok(ListQuery {
            session: Some("s-1".into()),
            limit: 200,
            cursor: Some((1_700_000_000_000, G2.into())),
        })
    );
    for (query, field) in [
        ("session=", "session"),
        ("session=a%20b", "session"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("limit=-1", "limit"),
        ("cursor=zz", "cursor"),
        ("cursor=", "cursor"),
        // Hex of "x:1@g.us" and of "5:nope".
        ("cursor=783a3140672e7573", "cursor"),
        ("cursor=353a6e6f7065", "cursor"),
    ] {
        let error = parse_list_query(query).err();
        assert_eq!(
            error.map(|e| (e.code, e.details.get("field").cloned())),
            Some((ErrorCode::ValidationError, Some(json!(field)))),
            "{query}"
        );
    }
}

#[test]
fn the_cursor_pages_in_the_books_order() {
    let mut entries = [
        entry(G1, Vec::new(), None, 10),
        entry(G2, Vec::new(), None, 10),
        entry("9@g.us", Vec::new(), None, 30),
        entry("1@g.us", Vec::new(), None, 5),
    ];
    entries.sort_by(newest_first);
    let order: Vec<&str> = entries.iter().map(|e| e.group_jid.as_str()).collect();
    assert_eq!(order, ["9@g.us", G2, G1, "1@g.us"]);
    // Two at a time: each page starts right after the last one's cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let page: Vec<&Entry> = entries
            .iter()
            .filter(|e| cursor.as_ref().is_none_or(|c| is_after(e, c)))
            .take(2)
            .collect();
        let Some(last) = page.last() else { break };
        seen.extend(page.iter().map(|e| e.group_jid.clone()));
        let text = cursor_of(last);
        cursor = parse_list_query(&format!("cursor={text}"))
            .ok()
            .and_then(|q| q.cursor);
        assert!(cursor.is_some());
    }
    assert_eq!(seen, order);
}

fn member_of(group: &str, updated_ms: i64, code: Option<&str>, to: Option<SeatState>) -> Entry {
    let mut seats = vec![seat("old", SeatState::Member, 1)];
    if let Some(state) = to {
        seats.push(seat("new", state, 1));
    }
    entry(group, seats, code, updated_ms)
}

#[test]
fn recovery_plans_newest_first_and_counts_the_rest() {
    let entries = vec![
        member_of("1@g.us", 10, Some("c1"), None),
        member_of("2@g.us", 30, Some("c2"), Some(SeatState::Left)),
        member_of("3@g.us", 20, None, None),
        member_of("4@g.us", 40, None, Some(SeatState::Member)),
        member_of("5@g.us", 50, Some("c5"), Some(SeatState::Pending)),
        member_of("6@g.us", 60, Some("c6"), Some(SeatState::Removed)),
        entry(
            "7@g.us",
            vec![seat("old", SeatState::Left, 1)],
            Some("c7"),
            70,
        ),
        entry(
            "8@g.us",
            vec![seat("old", SeatState::Pending, 1)],
            Some("c8"),
            80,
        ),
    ];
    // As the store hands them over: newest first.
    let mut entries = entries;
    entries.sort_by(newest_first);
    let plan = plan_recovery(&entries, "old", "new");
    assert_eq!(
        plan.items,
        vec![
            ("6@g.us".to_string(), "c6".to_string()),
            ("2@g.us".to_string(), "c2".to_string()),
            ("1@g.us".to_string(), "c1".to_string()),
        ]
    );
    assert_eq!(
        (
            plan.skipped_member,
            plan.skipped_no_invite,
            plan.skipped_over_limit
        ),
        (2, 1, 0),
        "a member without a code counts as a member"
    );
    assert_eq!(
        source_view("old", &plan),
        json!({ "from_session": "old", "skipped_no_invite": 1, "skipped_member": 2, "skipped_over_limit": 0 })
    );
    assert!(names_session(&entries, "old"));
    assert!(names_session(&entries, "new"));
    assert!(!names_session(&entries, "other"));
    assert_eq!(
        plan_recovery(&entries, "nobody", "new"),
        RecoveryPlan::default()
    );
}

#[test]
fn recovery_takes_at_most_500_the_newest() {
    let mut entries: Vec<Entry> = (0..510)
        .map(|n| member_of(&format!("{n}@g.us"), n, Some("c"), None))
        .chain([member_of("x1@g.us", 1, None, None)])
        .collect();
    entries.sort_by(newest_first);
    let plan = plan_recovery(&entries, "old", "new");
    assert_eq!(plan.items.len(), RECOVERY_MAX);
    assert_eq!(plan.items.first().map(|i| i.0.as_str()), Some("509@g.us"));
    assert_eq!(plan.items.last().map(|i| i.0.as_str()), Some("10@g.us"));
    assert_eq!((plan.skipped_over_limit, plan.skipped_no_invite), (10, 1));
}

#[test]
fn members_are_counted() {
    let counted = entry(
        G1,
        vec![
            seat("a", SeatState::Member, 1),
            seat("b", SeatState::Pending, 1),
            seat("c", SeatState::Member, 1),
            seat("d", SeatState::Left, 1),
        ],
        None,
        1,
    );
    assert_eq!(counted.members(), 2);
    assert_eq!(SeatState::parse("removed"), Some(SeatState::Removed));
    assert_eq!(SeatState::parse("Member"), None);
}

fn any_state() -> impl Strategy<Value = SeatState> {
    prop_oneof![
        Just(SeatState::Member),
        Just(SeatState::Pending),
        Just(SeatState::Left),
        Just(SeatState::Removed),
    ]
}

proptest! {
    /// Seats survive their column.
    #[test]
    fn seats_round_trip(seats in proptest::collection::vec(("[A-Za-z0-9_-]{1,64}", any_state(), any::<i64>()), 0..20)) {
        let seats: Vec<Seat> = seats.into_iter().map(|(session, state, since_ms)| Seat { session, state, since_ms }).collect();
        prop_assert_eq!(decode_seats(&encode_seats(&seats)), seats);
    }

    /// A cursor reads back as the entry it was made from.
    #[test]
    fn cursors_round_trip(ms in any::<i64>(), group in "[0-9]{1,20}(-[0-9]{1,10})?@g\\.us") {
        let text = cursor_of(&entry(&group, Vec::new(), None, ms));
        prop_assert_eq!(parse_list_query(&format!("cursor={text}")).map(|q| q.cursor), Ok(Some((ms, group))));
    }

    /// Whatever order updates arrive in, the seat ends as the newest update said.
    #[test]
    fn the_newest_update_wins(mut updates in proptest::collection::vec((0u8..4, 0i64..1000), 1..12)) {
        let changes = [Change::Member, Change::Pending, Change::Left, Change::Removed];
        let newest = updates.iter().max_by_key(|(_, at)| *at).map(|(c, at)| (*c, *at));
        // Another session's seat keeps the entry in the book, so no update of s1 is dropped
        // for want of an entry.
        let mut book_entry = Some(entry(G1, vec![seat("s2", SeatState::Member, 0)], None, 0));
        updates.reverse();
        for (change, at) in &updates {
            let next = apply(book_entry.clone(), &update(changes[usize::from(*change)], "s1", *at), None);
            if next.is_some() {
                book_entry = next;
            }
        }
        let seat_now = book_entry.as_ref().and_then(|e| e.seats.iter().find(|s| s.session == "s1").cloned());
        let newest_at = newest.map(|(_, at)| at);
        prop_assert_eq!(seat_now.as_ref().map(|s| s.since_ms), newest_at);
        prop_assert_eq!(book_entry.map(|e| e.updated_ms), newest_at);
    }

}

#[test]
fn events_tell_the_book_their_facts() {
    let fact = |t: &str, d: Value| from_event(t, &d, 7).map(|u| (u.change, u.session, u.group_jid));
    let ids = |c| Some((c, "s1".to_string(), "1@g.us".to_string()));
    let base = json!({ "session_id": "s1", "group_jid": "1@g.us" });
    let with = |k: &str, v: &str| {
        let mut d = base.clone();
        d[k] = Value::from(v);
        d
    };
    assert_eq!(
        fact("group.join", with("status", "joined")),
        ids(Change::Member)
    );
    assert_eq!(
        fact("group.join", with("status", "already_member")),
        ids(Change::Member)
    );
    assert_eq!(
        fact("group.join", with("status", "pending_approval")),
        ids(Change::Pending)
    );
    assert_eq!(
        fact("group.leave", with("reason", "removed")),
        ids(Change::Removed)
    );
    assert_eq!(
        fact("group.leave", with("reason", "left")),
        ids(Change::Left)
    );
    assert_eq!(fact("group.leave", base.clone()), ids(Change::Left));
    assert_eq!(
        fact("group.join_request.expired", base.clone()),
        ids(Change::Expired)
    );
    assert_eq!(fact("join_job.completed", base.clone()), None);
    assert_eq!(fact("group.join", json!({ "status": "joined" })), None);
    let update = from_event("group.join", &with("status", "joined"), 7).expect("a fact");
    assert_eq!((update.at_ms, update.code, update.subject), (7, None, None));
}
