use super::*;
use crate::tencent::credentials::{BaseSource, SecretIdFrom, SourceSpec};
use proptest::prelude::*;
use std::sync::Arc;

/// Runs `calls` (start delay, round trip) in `lanes` concurrent lanes against a budget of
/// `limit`; returns each call's (sent, back).
async fn run_calls(limit: u32, lanes: usize, calls: Vec<(u64, u64)>) -> Vec<(Instant, Instant)> {
    let budget = Arc::new(Budget::new(limit));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, (delay, rtt)) in calls.into_iter().enumerate() {
        let (budget, log) = (budget.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let permit = budget.acquire(&format!("lane{}", i % lanes)).await;
            let sent = Instant::now();
            tokio::time::sleep(Duration::from_millis(rtt)).await;
            let back = Instant::now();
            drop(permit);
            log.lock().unwrap().push((sent, back));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any send/answer timings, no one-second window can receive more than the limit,
    /// wherever in its span each call arrives.
    #[test]
    fn no_window_can_receive_more_than_the_limit(
        limit in 1u32..8,
        lanes in 1usize..4,
        calls in proptest::collection::vec((0u64..3_000, 0u64..1_500), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let n = calls.len();
        let spans = rt.block_on(run_calls(limit, lanes, calls));
        prop_assert_eq!(spans.len(), n);
        let worst = max_possible_in_any_window(&spans, Duration::from_secs(1));
        prop_assert!(worst <= limit as usize, "{} calls could arrive in one second at a limit of {}", worst, limit);
    }
}

#[test]
fn the_adversary_count_sees_overlapping_spans() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    // Sent at 0 and back at 500 / sent at 1400: the first may arrive at 500, the second at
    // 1400, 900 ms apart: both in one window.
    assert_eq!(
        max_possible_in_any_window(
            &[(ms(0), ms(500)), (ms(1400), ms(1400))],
            Duration::from_secs(1)
        ),
        2
    );
    // Back at 0, sent at 1000 exactly: never in one half-open window.
    assert_eq!(
        max_possible_in_any_window(
            &[(ms(0), ms(0)), (ms(1000), ms(1000))],
            Duration::from_secs(1)
        ),
        1
    );
    assert_eq!(max_possible_in_any_window(&[], Duration::from_secs(1)), 0);
}

#[tokio::test(start_paused = true)]
async fn three_concurrent_pollers_never_exceed_the_budget() {
    let budget = Arc::new(Budget::new(10));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..3 {
        let (budget, log) = (budget.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                let _permit = budget.acquire(&format!("lane{lane}")).await;
                log.lock().unwrap().push(Instant::now());
                // Some work between calls, as a real poller has.
                tokio::time::sleep(Duration::from_millis(7)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let times = log.lock().unwrap().clone();
    assert_eq!(times.len(), 120);
    assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 10);
    // No slower than the budget requires: 12 rounds of (7 ms + WINDOW).
    let took = times.iter().max().unwrap().duration_since(start);
    assert!(
        took <= (WINDOW + Duration::from_millis(7)) * 12,
        "took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_up_to_the_limit_goes_at_once_and_the_next_waits_for_the_answer() {
    let budget = Budget::new(20);
    let start = Instant::now();
    let mut permits = Vec::new();
    for _ in 0..20 {
        permits.push(budget.acquire("a").await);
    }
    assert_eq!(Instant::now(), start);
    // Answers come back after 300 ms: the 21st call waits for one WINDOW after that.
    tokio::time::sleep(Duration::from_millis(300)).await;
    permits.clear();
    let _p = budget.acquire("a").await;
    assert_eq!(
        Instant::now().duration_since(start),
        Duration::from_millis(300) + WINDOW
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_holds_its_permit_until_its_answer_is_back() {
    let budget = Arc::new(Budget::new(1));
    let slow = budget.acquire("a").await;
    let b = budget.clone();
    let waiter = tokio::spawn(async move {
        let _p = b.acquire("b").await;
        Instant::now()
    });
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !waiter.is_finished(),
        "no permit while the only call is in flight"
    );
    drop(slow);
    let got = waiter.await.unwrap();
    assert_eq!(got.duration_since(start), Duration::from_secs(5) + WINDOW);
}

/// A call abandoned in flight (its poll failed on another page, or was stopped) may still
/// arrive: its permit is held as if it had run to its timeout, never less.
#[tokio::test(start_paused = true)]
async fn an_abandoned_call_holds_its_permit_as_if_it_ran_to_its_timeout() {
    let budget = Arc::new(Budget::new(1));
    let start = Instant::now();
    let mut sent = budget.acquire("a").await;
    sent.sending(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(sent);
    let _p = budget.acquire("a").await;
    assert_eq!(
        Instant::now().duration_since(start),
        Duration::from_secs(10) + WINDOW
    );
    // Answered: one WINDOW from the answer, whatever the timeout.
    let budget = Budget::new(1);
    let start = Instant::now();
    let mut answered = budget.acquire("a").await;
    answered.sending(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    answered.done();
    let _p = budget.acquire("a").await;
    assert_eq!(
        Instant::now().duration_since(start),
        Duration::from_millis(100) + WINDOW
    );
    // Dropped before it was sent: nothing left the host.
    let budget = Budget::new(1);
    let start = Instant::now();
    drop(budget.acquire("a").await);
    let _p = budget.acquire("a").await;
    assert_eq!(Instant::now().duration_since(start), WINDOW);
}

#[tokio::test(start_paused = true)]
async fn lanes_are_served_round_robin() {
    let budget = Arc::new(Budget::new(1));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    // Lane "traffic" queues 10 calls before the others queue one each.
    let mut tasks = Vec::new();
    for (lane, n) in [("traffic", 10), ("transcode", 1), ("coanchor", 1)] {
        for _ in 0..n {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _p = budget.acquire(lane).await;
                order.lock().unwrap().push(lane);
            }));
            tokio::task::yield_now().await;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let pos = |lane| order.iter().position(|l| *l == lane).unwrap();
    // The first traffic call went at once; then one of each waiting lane in turn.
    assert_eq!(pos("transcode"), 2, "{order:?}");
    assert_eq!(pos("coanchor"), 3, "{order:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_limit_applies_at_once_and_keeps_the_history() {
    let budget = Budget::new(10);
    let start = Instant::now();
    let mut sent = Vec::new();
    for _ in 0..10 {
        drop(budget.acquire("a").await);
        sent.push(Instant::now());
    }
    budget.set_limit(20);
    for _ in 0..20 {
        drop(budget.acquire("a").await);
        sent.push(Instant::now());
    }
    // The 10 calls before the change still count against the 20.
    assert_eq!(max_in_any_window(&sent, Duration::from_secs(1)), 20);
    assert_eq!(sent[19].duration_since(start), Duration::ZERO);
    assert_eq!(sent[20].duration_since(start), WINDOW);
    assert_eq!(sent[29].duration_since(start), WINDOW);
    // Lowered: nothing goes until fewer than 5 are held.
    budget.set_limit(5);
    let before = Instant::now();
    drop(budget.acquire("a").await);
    assert!(Instant::now().duration_since(before) >= WINDOW - Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_waiter_gives_its_place_back() {
    let budget = Arc::new(Budget::new(1));
    let held = budget.acquire("a").await;
    let b = budget.clone();
    let gave_up = tokio::spawn(async move {
        let _p = b.acquire("a").await;
    });
    tokio::task::yield_now().await;
    gave_up.abort();
    let _ = gave_up.await;
    drop(held);
    tokio::time::sleep(WINDOW).await;
    assert_eq!(budget.held(), 0);
    let start = Instant::now();
    let _p = budget.acquire("b").await;
    assert_eq!(Instant::now(), start);
}

#[test]
fn window_counting_is_half_open() {
    let t0 = Instant::now();
    let times = [
        t0,
        t0 + Duration::from_millis(999),
        t0 + Duration::from_secs(1),
    ];
    assert_eq!(max_in_any_window(&times, Duration::from_secs(1)), 2);
    assert_eq!(max_in_any_window(&[], Duration::from_secs(1)), 0);
}

fn spec(secret_id: &str) -> SourceSpec {
    SourceSpec {
        base: BaseSource::Static {
            secret_id: SecretIdFrom::Inline(secret_id.to_owned()),
            secret_key: crate::tencent::credentials::SecretKeyFrom::Inline(
                secrecy::SecretString::from("k".to_owned()),
            ),
        },
        assume_role: None,
    }
}

/// A plan of (account name, SecretId, rate_limit_group).
fn plan_of(accounts: &[(String, String, Option<String>)]) -> Plan {
    let specs: Vec<SourceSpec> = accounts.iter().map(|(_, id, _)| spec(id)).collect();
    Plan::new(
        accounts
            .iter()
            .zip(&specs)
            .map(|((name, _, group), credentials)| PlanAccount {
                name,
                credentials,
                rate_limit_group: group.as_deref(),
            }),
    )
}

/// One step of an operator's history, at `at` ms after the previous one.
#[derive(Clone, Debug)]
enum Step {
    /// Account `account` (modulo the accounts configured) polls: `calls` calls in a row,
    /// each answered after `rtt` ms.
    Poll {
        at: u64,
        account: usize,
        calls: usize,
        rtt: u64,
    },
    /// A reload to these accounts: (name generation, key, group), and a limit.
    Reload {
        at: u64,
        accounts: Vec<(u8, usize, Option<u8>)>,
        limit: u32,
    },
    /// The process stops (calls in flight abandoned), waits for quiet, and a new one starts.
    Restart { at: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u64..800, 0usize..4, 1usize..12, 0u64..900)
            .prop_map(|(at, account, calls, rtt)| Step::Poll { at, account, calls, rtt }),
        2 => (
            0u64..800,
            proptest::collection::vec((0u8..3, 0usize..3, proptest::option::of(0u8..2)), 1..4),
            1u32..8,
        )
            .prop_map(|(at, accounts, limit)| Step::Reload { at, accounts, limit }),
        1 => (0u64..800).prop_map(|at| Step::Restart { at }),
    ]
}

const KEYS: [&str; 3] = ["AKIDzero", "AKIDone", "AKIDtwo"];
const TIMEOUT: Duration = Duration::from_secs(2);

/// Plays `steps` in virtual time; gives each SecretId's call spans (sent, latest arrival) and
/// the highest limit in force.
async fn play(steps: Vec<Step>) -> (HashMap<String, Vec<(Instant, Instant)>>, u32) {
    let log = Arc::new(std::sync::Mutex::new(HashMap::<String, Vec<_>>::new()));
    let mut limit = 4;
    let mut max_limit = limit;
    let mut accounts: Vec<(String, String, Option<String>)> =
        vec![("a0".into(), KEYS[0].into(), None)];
    let mut budgets = Budgets::new(limit, Duration::ZERO);
    budgets.apply(&plan_of(&accounts), limit);
    let mut tasks = tokio::task::JoinSet::new();
    for step in steps {
        match step {
            Step::Poll {
                at,
                account,
                calls,
                rtt,
            } => {
                tokio::time::sleep(Duration::from_millis(at)).await;
                let Some((name, key, _)) = accounts.get(account % accounts.len()) else {
                    continue;
                };
                let (budget, key, log) = (budgets.account(name), key.clone(), log.clone());
                let lane = format!("{name}/{account}");
                tasks.spawn(async move {
                    for _ in 0..calls {
                        let mut permit = budget.acquire_signed(&lane, &key, false).await;
                        permit.sending(TIMEOUT);
                        let sent = Instant::now();
                        // Logged before the answer: a call abandoned in flight may still
                        // arrive up to its timeout.
                        let i = {
                            let mut log = log.lock().unwrap();
                            let spans = log.entry(key.clone()).or_default();
                            spans.push((sent, sent + TIMEOUT));
                            spans.len() - 1
                        };
                        tokio::time::sleep(Duration::from_millis(rtt)).await;
                        log.lock().unwrap().get_mut(&key).unwrap()[i].1 = Instant::now();
                        permit.done();
                    }
                });
            }
            Step::Reload {
                at,
                accounts: new,
                limit: l,
            } => {
                tokio::time::sleep(Duration::from_millis(at)).await;
                accounts = new
                    .iter()
                    .enumerate()
                    .map(|(i, (generation, key, group))| {
                        (
                            format!("a{i}g{generation}"),
                            KEYS[*key].to_owned(),
                            group.map(|g| format!("g{g}")),
                        )
                    })
                    .collect();
                limit = l;
                max_limit = max_limit.max(limit);
                budgets.apply(&plan_of(&accounts), limit);
            }
            Step::Restart { at } => {
                tokio::time::sleep(Duration::from_millis(at)).await;
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                budgets.quiet().await;
                budgets = Budgets::new(limit, WINDOW);
                budgets.apply(&plan_of(&accounts), limit);
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let log = std::mem::take(&mut *log.lock().unwrap());
    (log, max_limit)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the operator does (reloads that rename, merge, split and change the limit;
    /// restarts mid-poll), no SecretId can receive more than the limit in any one second.
    #[test]
    fn no_window_can_receive_more_than_the_limit_across_reloads_and_restarts(
        steps in proptest::collection::vec(step(), 1..24),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (log, limit) = rt.block_on(play(steps));
        for (key, spans) in log {
            let worst = max_possible_in_any_window(&spans, Duration::from_secs(1));
            prop_assert!(worst <= limit as usize, "{} calls of {} could arrive in one second at a limit of {}", worst, key, limit);
        }
    }
}

/// The plan keys budgets by what Tencent counts: one SecretId, however it is read, is one
/// budget; a group joins two keys; a role is its own identity.
#[test]
fn the_plan_keys_budgets_by_secret_id_and_joins_groups() {
    let dir = std::env::temp_dir().join(format!("tle-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let id_file = dir.join("secret_id");
    std::fs::write(&id_file, "AKIDsame\n").unwrap();
    let profile = dir.join("credentials");
    std::fs::write(&profile, "[team]\nsecret_id = AKIDsame\nsecret_key = k\n").unwrap();
    let inline = spec("AKIDsame");
    let mut from_file = spec("unused");
    from_file.base = BaseSource::Static {
        secret_id: SecretIdFrom::File(id_file),
        secret_key: crate::tencent::credentials::SecretKeyFrom::Inline(
            secrecy::SecretString::from("k".to_owned()),
        ),
    };
    let from_profile = SourceSpec {
        base: BaseSource::Profile {
            file: profile,
            profile: "team".into(),
        },
        assume_role: None,
    };
    let other = spec("AKIDother");
    let rotated = spec("AKIDsecond");
    let plan = Plan::new([
        PlanAccount {
            name: "inline",
            credentials: &inline,
            rate_limit_group: None,
        },
        PlanAccount {
            name: "file",
            credentials: &from_file,
            rate_limit_group: None,
        },
        PlanAccount {
            name: "profile",
            credentials: &from_profile,
            rate_limit_group: None,
        },
        PlanAccount {
            name: "other",
            credentials: &other,
            rate_limit_group: None,
        },
        PlanAccount {
            name: "old",
            credentials: &other,
            rate_limit_group: Some("sub"),
        },
        PlanAccount {
            name: "new",
            credentials: &rotated,
            rate_limit_group: Some("sub"),
        },
    ]);
    let names: Vec<(&str, Vec<&str>, Vec<&str>)> = plan
        .budgets
        .iter()
        .map(|b| {
            (
                b.name.as_str(),
                b.identities.iter().map(String::as_str).collect(),
                b.accounts.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "SecretId AKIDsame",
                vec!["SecretId AKIDsame"],
                vec!["inline", "file", "profile"]
            ),
            (
                "rate_limit_group \"sub\"",
                vec!["SecretId AKIDother", "SecretId AKIDsecond"],
                vec!["other", "old", "new"]
            ),
        ]
    );
    let mut role = spec("AKIDsame");
    role.assume_role = Some(crate::tencent::credentials::AssumeRoleSpec {
        role_arn: "qcs::cam::uin/1:roleName/r".into(),
        session_name: "s".into(),
        sts_endpoint: "https://sts.tencentcloudapi.com".parse().unwrap(),
        duration_seconds: 7200,
        external_id: None,
    });
    assert_eq!(identity(&role), "role qcs::cam::uin/1:roleName/r");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rename, a merge and a split carry the permits of each SecretId into its new budget.
#[tokio::test(start_paused = true)]
async fn a_reload_carries_every_permit_of_a_secret_id_into_its_new_budget() {
    let acc =
        |n: &str, k: &str, g: Option<&str>| (n.to_owned(), k.to_owned(), g.map(str::to_owned));
    let budgets = Budgets::new(4, Duration::ZERO);
    budgets.apply(
        &plan_of(&[acc("a", "AKIDa", None), acc("b", "AKIDb", None)]),
        4,
    );
    // Four calls of AKIDa in flight, two of AKIDb answered (cooling).
    let a = budgets.account("a");
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        in_flight.push(a.acquire("x").await);
    }
    let b = budgets.account("b");
    for _ in 0..2 {
        b.acquire("x").await.done();
    }
    // Renamed: "a" is now "team", same key: nothing more may go.
    budgets.apply(
        &plan_of(&[acc("team", "AKIDa", None), acc("b", "AKIDb", None)]),
        4,
    );
    assert_eq!(budgets.held("SecretId AKIDa"), 4);
    // Merged by a group: the 4 + 2 already exceed the limit; a call waits for the cool-down.
    budgets.apply(
        &plan_of(&[
            acc("team", "AKIDa", Some("g")),
            acc("b", "AKIDb", Some("g")),
        ]),
        4,
    );
    assert_eq!(budgets.held("SecretId AKIDb"), 6);
    let start = Instant::now();
    drop(in_flight);
    let _p = budgets.account("b").acquire("y").await;
    assert_eq!(Instant::now().duration_since(start), WINDOW);
    // Split again: each key keeps its own ledger.
    budgets.apply(
        &plan_of(&[acc("team", "AKIDa", None), acc("b", "AKIDb", None)]),
        4,
    );
    assert_eq!(budgets.held("SecretId AKIDb"), 1);
    assert_eq!(budgets.held("SecretId AKIDa"), 0);
}

/// A key rotated under an account (its file rewritten) joins the account's budget next to
/// the old key's calls.
#[tokio::test(start_paused = true)]
async fn a_rotated_key_keeps_the_calls_of_the_last_second() {
    let budgets = Budgets::new(3, Duration::ZERO);
    budgets.apply(&plan_of(&[("a".into(), "AKIDold".into(), None)]), 3);
    let a = budgets.account("a");
    let start = Instant::now();
    for _ in 0..3 {
        a.acquire_signed("x", "AKIDold", false).await.done();
    }
    let _p = a.acquire_signed("x", "AKIDnew", false).await;
    assert_eq!(Instant::now().duration_since(start), WINDOW);
    assert_eq!(budgets.held("SecretId AKIDnew"), 1);
}

/// A new process holds its first call for its hold; the stopping one is quiet once its
/// abandoned calls' timeouts have passed.
#[tokio::test(start_paused = true)]
async fn a_new_process_holds_its_first_call_and_a_stopping_one_waits_for_quiet() {
    let old = Budget::new(5);
    let mut abandoned = old.acquire("x").await;
    abandoned.sending(Duration::from_secs(3));
    let start = Instant::now();
    drop(abandoned);
    let shared = Budgets {
        shared: old.shared.clone(),
    };
    shared.quiet().await;
    assert_eq!(Instant::now().duration_since(start), Duration::from_secs(3));
    let budgets = Budgets::new(5, WINDOW);
    budgets.apply(&plan_of(&[("a".into(), "AKIDa".into(), None)]), 5);
    let start = Instant::now();
    let _p = budgets.account("a").acquire("x").await;
    assert_eq!(Instant::now().duration_since(start), WINDOW);
}

/// A freed permit wakes one waiter: the work to serve n queued calls grows linearly.
#[tokio::test(start_paused = true)]
async fn serving_queued_calls_takes_linear_work() {
    async fn locks(n: usize) -> u64 {
        let budgets = Budgets::new(20, Duration::ZERO);
        let budget = budgets.account("a");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let budget = budget.clone();
            tasks.spawn(async move { budget.acquire(&format!("l{}", i % 30)).await.done() });
        }
        while tasks.join_next().await.is_some() {}
        budgets.lock_count()
    }
    let (small, large) = (locks(100).await, locks(1_000).await);
    // Quadratic work (every waiter woken per freed permit) was ~100x for 10x the calls.
    assert!(
        large < small * 15,
        "100 calls: {small} locks, 1000 calls: {large}"
    );
}
