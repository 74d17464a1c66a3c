//! Join jobs: pacing and order, outcomes, pause/resume/cancel, views (a recovery's too), and
//! a property test over any sequence of outcomes.

use super::*;
use crate::core::job_views::Holds;
use crate::core::protection::WaitReason;
use proptest::prelude::*;

const CODE: &str = "AbCdEfGhIjKlMnOpQrStUv";

fn join_item(code: &str) -> SubmitItem {
    SubmitItem {
        op: Op::Join { code: code.into() },
        expected_group_jid: None,
    }
}

fn book_of(items: usize) -> Book {
    book(items, 5)
}

fn book(items: usize, interval_s: u32) -> Book {
    let submit = Submit {
        items: (0..items)
            .map(|n| join_item(&format!("{CODE}{n}")))
            .collect(),
        label: None,
        interval_s,
        from_session: None,
    };
    Book {
        jobs: vec![Job::new(
            "job_0000000000000001".into(),
            "acme".into(),
            submit,
            0,
        )],
        next_item_ms: 0,
    }
}

/// One attempt of an item: counted, then recorded, as the session object does.
fn run(
    book: &mut Book,
    job: usize,
    item: usize,
    outcome: Outcome,
    cooldown_until: Option<i64>,
    now_ms: i64,
    random: u32,
) -> Recorded {
    assert!(book.begin_attempt(job, item));
    let interval_s = book.jobs[job].interval_s;
    let next = crate::core::protection::next_item_after(interval_s, None, None, now_ms, random);
    book.record(job, item, outcome, cooldown_until, now_ms, next)
}

fn done(status: &str) -> Outcome {
    Outcome::Done(json!({ "group_jid": "1@g.us", "status": status }))
}

#[test]
fn items_run_in_order_at_the_pace() {
    let mut book = book(3, 20);
    assert_eq!(book.next(0, None), Next::Run { job: 0, item: 0 });
    run(&mut book, 0, 0, done("joined"), None, 0, 0);
    // 1 x 20 s at the lowest draw.
    assert_eq!(book.next(1, None), Next::At(20_000));
    assert_eq!(book.next(20_000, None), Next::Run { job: 0, item: 1 });
    run(&mut book, 0, 1, done("pending_approval"), None, 20_000, 500);
    assert_eq!(book.next(20_001, None), Next::At(50_000), "1.5 x 20 s");
    let recorded = run(&mut book, 0, 2, done("already_member"), None, 50_000, 250);
    assert!(recorded.completed);
    assert_eq!(book.jobs[0].status, JobStatus::Completed);
    assert_eq!(book.next(100_000, None), Next::Idle);
    assert_eq!(counts(&book.jobs[0])["pending_approval"], json!(1));
}

#[test]
fn transient_failures_retry_then_fail_definite_ones_fail_at_once() {
    let mut book = book(2, 5);
    for attempt in 1..=MAX_ATTEMPTS {
        let Next::Run { item, .. } = book.next(i64::MAX / 2, None) else {
            panic!("runs")
        };
        assert_eq!(item, 0);
        run(
            &mut book,
            0,
            0,
            Outcome::Failed(ApiError::new(ErrorCode::BackendTimeout)),
            None,
            0,
            0,
        );
        let entry = &book.jobs[0].items[0];
        assert_eq!(entry.attempts, attempt);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(entry.not_before_ms, backoff_ms(attempt));
        }
    }
    assert_eq!(book.jobs[0].items[0].status, ItemStatus::Failed);
    assert_eq!(
        book.jobs[0].items[0]
            .error
            .as_ref()
            .map(|e| e["code"].clone()),
        Some(json!("backend_timeout"))
    );
    let revoked = ApiError::new(ErrorCode::InviteRevoked).with_detail("wa_code", 410);
    run(&mut book, 0, 1, Outcome::Failed(revoked), None, 1, 0);
    assert_eq!(
        book.jobs[0].items[1]
            .error
            .as_ref()
            .map(|e| e["wa_code"].clone()),
        Some(json!(410))
    );
    assert_eq!(book.jobs[0].status, JobStatus::Completed);
}

#[test]
fn not_connected_pauses_and_resumes_by_itself() {
    let mut book = book(1, 5);
    let recorded = run(
        &mut book,
        0,
        0,
        Outcome::Failed(ApiError::new(ErrorCode::SessionNotConnected)),
        None,
        0,
        0,
    );
    assert!(recorded.paused);
    assert_eq!(
        book.jobs[0].pause_reason.as_deref(),
        Some(PAUSE_NOT_CONNECTED)
    );
    assert_eq!(book.jobs[0].items[0].attempts, 0, "no attempt spent");
    assert_eq!(
        book.next(1, None),
        Next::At(BACKOFF_BASE_MS.max(book.next_item_ms))
    );
    let at = match book.next(1, None) {
        Next::At(at) => at,
        other => panic!("{other:?}"),
    };
    run(&mut book, 0, 0, done("joined"), None, at, 0);
    assert_eq!(book.jobs[0].status, JobStatus::Completed);
}

#[test]
fn pause_resume_cancel() {
    let mut book = book(3, 5);
    assert!(book.jobs[0].pause(0).is_ok());
    assert_eq!(book.next(0, None), Next::Idle, "a paused job does not run");
    assert!(book.jobs[0].resume(1).is_ok());
    assert_eq!(book.jobs[0].status, JobStatus::Queued);
    assert_eq!(book.next(1, None), Next::Run { job: 0, item: 0 });
    // Cancelling while item 0 runs: the others are cancelled, item 0 finishes.
    assert!(book.jobs[0].cancel(Some(0), CANCEL_REQUESTED, 2).is_ok());
    run(&mut book, 0, 0, done("joined"), None, 3, 0);
    let statuses: Vec<_> = book.jobs[0].items.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            ItemStatus::Joined,
            ItemStatus::Cancelled,
            ItemStatus::Cancelled
        ]
    );
    assert_eq!(
        book.jobs[0].pause(4).err().map(|e| e.code),
        Some(ErrorCode::JobFinished)
    );
    // Cancelled while its item ran, and that item's answer is transient, a pause or a
    // cooldown: the item ends cancelled and the job stays cancelled.
    for code in [
        ErrorCode::BackendTimeout,
        ErrorCode::SessionNotConnected,
        ErrorCode::UpstreamRateLimited,
    ] {
        let mut fresh = book_of(2);
        assert!(fresh.jobs[0].cancel(Some(0), CANCEL_REQUESTED, 1).is_ok());
        run(
            &mut fresh,
            0,
            0,
            Outcome::Failed(ApiError::new(code)),
            None,
            2,
            0,
        );
        assert_eq!(fresh.jobs[0].status, JobStatus::Cancelled, "{code:?}");
        assert_eq!(fresh.jobs[0].items[0].status, ItemStatus::Cancelled);
        assert_eq!(counts(&fresh.jobs[0])["pending"], json!(0));
    }
}

#[test]
fn a_definite_answer_ends_a_not_connected_pause() {
    let mut book = book_of(2);
    let not_connected = ApiError::new(ErrorCode::SessionNotConnected);
    run(&mut book, 0, 0, Outcome::Failed(not_connected), None, 0, 0);
    assert_eq!(book.jobs[0].status, JobStatus::Paused);
    let revoked = ApiError::new(ErrorCode::InviteRevoked);
    run(&mut book, 0, 0, Outcome::Failed(revoked), None, 20_000, 0);
    assert_eq!(book.jobs[0].status, JobStatus::Running);
    assert_eq!(book.jobs[0].pause_reason, None);
}

#[test]
fn attempts_cut_off_before_their_outcome_are_counted_and_end_the_item() {
    let mut book = book(2, 5);
    // Five attempts stored before their calls, none recorded (the instance died each time).
    for _ in 0..MAX_ATTEMPTS {
        assert!(book.begin_attempt(0, 0));
    }
    assert!(!book.begin_attempt(0, 0), "no sixth call");
    let recorded = book.record(0, 0, Outcome::Failed(interrupted()), None, 1, 1);
    assert!(!recorded.completed);
    let entry = &book.jobs[0].items[0];
    assert_eq!(entry.status, ItemStatus::Failed);
    assert_eq!(entry.attempts, MAX_ATTEMPTS);
    assert_eq!(
        entry.error.as_ref().map(|e| e["code"].clone()),
        Some(json!("backend_timeout"))
    );
    assert_eq!(book.jobs[0].counts.failed, 1);
    assert_eq!(book.jobs[0].counts.pending, 1);
}

#[test]
fn cancel_with_a_partial_load_moves_the_counts_of_every_pending_item() {
    // The store cancels the items it did not load; the counts say so all the same.
    let mut job = book(5, 5).jobs.remove(0);
    job.items.truncate(1);
    assert!(job.cancel(None, CANCEL_REASSIGNED, 1).is_ok());
    assert_eq!(job.counts.pending, 0);
    assert_eq!(job.counts.cancelled, 5);
    assert_eq!(job.cancel_reason.as_deref(), Some(CANCEL_REASSIGNED));
    let mut running = book(5, 5).jobs.remove(0);
    assert!(running.cancel(Some(2), CANCEL_REQUESTED, 1).is_ok());
    assert_eq!((running.counts.pending, running.counts.cancelled), (1, 4));
}

#[test]
fn a_cooldown_holds_every_item() {
    let mut book = book(2, 5);
    assert_eq!(book.next(0, Some(60_000)), Next::At(60_000));
    run(
        &mut book,
        0,
        0,
        Outcome::Failed(ApiError::new(ErrorCode::UpstreamRateLimited)),
        Some(900_000),
        0,
        0,
    );
    assert_eq!(book.jobs[0].items[0].attempts, 0);
    assert_eq!(book.next(10_000, Some(900_000)), Next::At(900_000));
}

#[test]
fn views_hide_codes_and_estimate_completion() {
    let book = book(3, 20);
    // An estimate that takes 20 s an item.
    let estimate = |start: i64, interval_s: u32, items: u32| {
        start + i64::from(interval_s) * 1000 * i64::from(items - 1)
    };
    let standing = standings(&book, 0, &Holds::default(), &estimate);
    assert_eq!(standing[0].estimated_completion_ms, Some(40_000));
    let view = job_view("s1", &book.jobs[0], standing[0], true);
    assert_eq!(view["items"][0]["invite"], json!("AbCd…"));
    assert!(!view.to_string().contains(CODE));
    assert_eq!(view["status"], json!("queued"));
    let cooling = Holds {
        cooldown_until: Some(100_000),
        wait: None,
    };
    let cooling = standings(&book, 0, &cooling, &estimate);
    assert_eq!(
        job_view("s1", &book.jobs[0], cooling[0], false)["status"],
        json!("cooling_down")
    );
    assert_eq!(cooling[0].next_attempt_ms, Some(100_000));
    let capped = Holds {
        cooldown_until: None,
        wait: Some((200_000, WaitReason::DayCap)),
    };
    let waiting = standings(&book, 0, &capped, &estimate);
    let view = job_view("s1", &book.jobs[0], waiting[0], false);
    assert_eq!(view["status"], json!("waiting"));
    assert_eq!(view["wait_reason"], json!("day_cap"));
    assert_eq!(waiting[0].next_attempt_ms, Some(200_000));
}

#[test]
fn five_bad_invites_in_a_row_pause_the_job_until_it_is_resumed() {
    let mut book = book(8, 5);
    let bad = [
        ErrorCode::InviteInvalid,
        ErrorCode::InviteRevoked,
        ErrorCode::GroupNotFound,
    ];
    // A good one in between starts the count again.
    run(
        &mut book,
        0,
        0,
        Outcome::Failed(ApiError::new(bad[0])),
        None,
        0,
        0,
    );
    run(&mut book, 0, 1, done("joined"), None, 1, 0);
    for i in 2..6 {
        let recorded = run(
            &mut book,
            0,
            i,
            Outcome::Failed(ApiError::new(bad[i % 3])),
            None,
            2,
            0,
        );
        assert!(!recorded.paused);
    }
    let recorded = run(
        &mut book,
        0,
        6,
        Outcome::Failed(ApiError::new(bad[0])),
        None,
        3,
        0,
    );
    assert!(recorded.paused);
    assert_eq!(
        book.jobs[0].pause_reason.as_deref(),
        Some(PAUSE_BAD_INVITES)
    );
    assert_eq!(
        book.next(i64::MAX / 2, None),
        Next::Idle,
        "only resume goes on"
    );
    assert!(book.jobs[0].resume(10).is_ok());
    assert_eq!(book.jobs[0].bad_streak, 0);
    assert!(matches!(
        book.next(i64::MAX / 2, None),
        Next::Run { item: 7, .. }
    ));
}

proptest! {
    /// For any sequence of outcomes: items of the session run one at a time, in order, no
    /// two closer than the pace allows; no item runs during a cooldown; every item ends in
    /// exactly one final state.
    #[test]
    fn jobs_keep_pace_order_and_end(
        outcomes in proptest::collection::vec((0u8..8, any::<u32>()), 1..300),
        interval_s in 5u32..60,
        sizes in proptest::collection::vec(1usize..6, 1..4),
    ) {
        let mut book = Book::default();
        for (n, size) in sizes.iter().enumerate() {
            let submit = Submit { items: (0..*size).map(|k| join_item(&format!("{CODE}{n}x{k}"))).collect(), label: None, interval_s, from_session: None };
            book.jobs.push(Job::new(format!("job_{n:016x}"), "acme".into(), submit, 0));
        }
        let mut now = 0i64;
        let mut cooldown: Option<i64> = None;
        let mut last_run: Option<i64> = None;
        let mut order: Vec<(usize, usize)> = Vec::new();
        for (outcome, random) in outcomes {
            let step = book.next(now, cooldown.filter(|c| *c > now));
            let (job, item) = match step {
                Next::Idle => break,
                Next::At(at) => { prop_assert!(at > now); now = at; continue; }
                Next::Run { job, item } => (job, item),
            };
            prop_assert!(cooldown.is_none_or(|c| c <= now), "ran during a cooldown");
            if let Some(last) = last_run {
                prop_assert!(now - last >= i64::from(interval_s) * 1000, "too close: {} ms", now - last);
            }
            if let Some(&(pj, pi)) = order.last() {
                prop_assert!((job, item) >= (pj, pi), "out of order");
            }
            order.push((job, item));
            last_run = Some(now);
            let result = match outcome {
                0 => done("joined"),
                1 => done("pending_approval"),
                2 => Outcome::Failed(ApiError::new(ErrorCode::BackendTimeout)),
                3 => Outcome::Failed(ApiError::new(ErrorCode::InviteRevoked)),
                4 => Outcome::Failed(ApiError::new(ErrorCode::SessionNotConnected)),
                5 => { cooldown = Some(now + 900_000); Outcome::Failed(ApiError::new(ErrorCode::UpstreamRateLimited)) }
                6 => Outcome::Failed(ApiError::new(ErrorCode::BackendError)),
                _ => done("already_member"),
            };
            run(&mut book, job, item, result, cooldown, now, random);
            now += 1;
        }
        for job in &book.jobs {
            prop_assert_eq!(job.counts, Counts::of(job.items.iter().map(|i| &i.status)), "counts move with the items");
            for item in &job.items {
                let final_state = ItemStatus::FINAL.contains(&item.status);
                prop_assert_eq!(final_state, item.finished_ms.is_some());
                prop_assert!(item.attempts <= MAX_ATTEMPTS);
            }
            prop_assert_eq!(job.status == JobStatus::Completed, job.items.iter().all(|i| i.status != ItemStatus::Pending));
        }
    }
}

#[test]
fn policy_refusals_and_mismatches_fail_the_item_without_a_bad_invite_streak() {
    for code in [ErrorCode::JoinRefusedByPolicy, ErrorCode::InviteMismatch] {
        let mut book = book(8, 5);
        for i in 0..6 {
            let error = ApiError::new(code).with_detail("rule", "max_size");
            run(&mut book, 0, i, Outcome::Failed(error), None, 0, 0);
            assert_eq!(book.jobs[0].items[i].status, ItemStatus::Failed, "{code:?}");
            assert_eq!(book.jobs[0].items[i].attempts, 1, "one attempt, no retry");
        }
        assert_eq!(book.jobs[0].bad_streak, 0, "{code:?}");
        assert_eq!(book.jobs[0].status, JobStatus::Running, "{code:?}");
    }
}

#[test]
fn a_recovery_job_shows_its_groups_and_source_but_no_code() {
    let items = [
        ("1@g.us", "AbCdEfGhIjKlMnOpQrStUv"),
        ("2@g.us", "BbCdEfGhIjKlMnOpQrStUv"),
    ]
    .into_iter()
    .map(|(group, code)| SubmitItem {
        op: Op::Join { code: code.into() },
        expected_group_jid: Some(group.into()),
    })
    .collect();
    let submit = Submit {
        items,
        label: None,
        interval_s: 60,
        from_session: Some("old".into()),
    };
    let source = json!({ "from_session": "old", "skipped_no_invite": 1, "skipped_member": 0, "skipped_over_limit": 0 });
    let job = Job::new(
        "job_0000000000000002".into(),
        "acme".into(),
        submit.clone(),
        0,
    )
    .with_source(source.clone());
    let view = job_view("new", &job, Standing::default(), true);
    assert_eq!(view["source"], source);
    assert_eq!(view["items"][0]["invite"], json!("…"));
    assert_eq!(view["items"][0]["group_jid"], json!("1@g.us"));
    assert_eq!(view["items"][1]["group_jid"], json!("2@g.us"));
    assert!(!view.to_string().contains("AbCd"));
    assert_eq!(job.items[1].expected_group_jid.as_deref(), Some("2@g.us"));
    assert_eq!(
        job_view("new", &job, Standing::default(), false)["source"],
        source
    );
    // Without a source, an expected group shows only once the join names it.
    let plain = Job::new("job_0000000000000003".into(), "acme".into(), submit, 0);
    let view = job_view("new", &plain, Standing::default(), true);
    assert_eq!(view["items"][0]["invite"], json!("AbCd…"));
    assert_eq!(view["items"][0].get("group_jid"), None);
    assert_eq!(view.get("source"), None);
}
