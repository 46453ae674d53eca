//! The reconciler's decision table as a property: any sequence of
//! registrations, bindings, unbindings and cancellations, each possibly
//! crashing at one of its fault points (the request stopped there, as a
//! crash would) and/or with the XMPP server SIGKILLed there, leaves the
//! database and the XMPP server in agreement once the reconciler has run.
//!
//! The decision logic is not separable from the XMPP side (the sweeps read
//! rosters through real sessions), so the real reconciler runs against a
//! real Prosody; sequences are drawn by proptest with a fixed seed, without
//! shrinking (each case is a real server), and printed on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use jidgate::binding::Sessions;
use jidgate::db::account as accounts;
use jidgate::xmpp::roster;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::binding::{User, bind, bind_code, device, phone, unbind};
use crate::helpers::*;

/// What happens at the operation's fault point.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The request stops there (no compensation runs).
    Crash,
    /// The XMPP server is SIGKILLed there; the request goes on.
    Kill,
    /// Both.
    KillAndCrash,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Register(usize, Fault, bool),
    Bind(usize, Fault),
    Unbind(usize),
    Cancel(usize, Fault),
}

const SLOTS: usize = 3;

fn fault() -> impl Strategy<Value = Fault> {
    prop::sample::select(vec![
        Fault::None,
        Fault::None,
        Fault::Crash,
        Fault::Kill,
        Fault::KillAndCrash,
    ])
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => (slot.clone(), fault(), any::<bool>()).prop_map(|(s, f, after)| Op::Register(s, f, after)),
        3 => (slot.clone(), fault()).prop_map(|(s, f)| Op::Bind(s, f)),
        1 => slot.clone().prop_map(Op::Unbind),
        2 => (slot, fault()).prop_map(|(s, f)| Op::Cancel(s, f)),
    ]
}

fn serial(slot: usize) -> String {
    format!("SN-PROP-{slot}")
}

/// The point each operation's fault fires at.
fn point_of(op: &Op) -> &'static str {
    match op {
        Op::Register(_, _, false) => "register.before_provision",
        Op::Register(_, _, true) => "register.after_provision",
        Op::Bind(..) => "bind.half_way",
        Op::Unbind(_) => "none",
        Op::Cancel(..) => "cancel.after_delete",
    }
}

type Armed = Arc<Mutex<Option<(&'static str, Fault)>>>;

/// Runs one sequence and checks the agreement afterwards.
async fn run_case(ops: &[Op]) {
    let prosody = Prosody::start().await;
    let armed: Armed = Arc::new(Mutex::new(None));
    let (a, p) = (armed.clone(), prosody.clone());
    let faults = hook(move |point| {
        let fire = {
            let mut armed = a.lock().unwrap();
            match *armed {
                Some((at, f)) if at == point => armed.take().map(|_| f),
                _ => None,
            }
        };
        if matches!(fire, Some(Fault::Kill | Fault::KillAndCrash)) {
            p.kill();
        }
        let crash = matches!(fire, Some(Fault::Crash | Fault::KillAndCrash));
        async move {
            if crash {
                Err("simulated crash".to_owned())
            } else {
                Ok(())
            }
        }
        .boxed()
    });
    let app = TestApp::spawn_with(
        &prosody,
        Settings {
            faults: Some(faults),
            ..Default::default()
        },
    )
    .await;
    // To start: an owner, every device registered, the first bound.
    let owner: User = phone(&app, "13900000001", "owner").await;
    for s in 0..SLOTS {
        let d = device(&app, &serial(s), "").await;
        if s == 0 {
            let code = bind_code(&app, &d).await;
            let body = bind(&app, &owner, &[&d.name], &[&code]).await;
            assert_eq!(body["result_ls"][0]["result"], 0, "{body}");
        }
    }
    // Per slot: Some(state) while the last operation on it was
    // acknowledged (or left it as it was); None once unknown.
    let mut registered: BTreeMap<usize, Option<bool>> =
        (0..SLOTS).map(|s| (s, Some(true))).collect();
    let mut bound: BTreeMap<usize, Option<bool>> = (0..SLOTS).map(|s| (s, Some(s == 0))).collect();

    for op in ops {
        let fault = match *op {
            Op::Register(_, f, _) | Op::Bind(_, f) | Op::Cancel(_, f) => f,
            Op::Unbind(_) => Fault::None,
        };
        *armed.lock().unwrap() = (fault != Fault::None).then_some((point_of(op), fault));
        match *op {
            Op::Register(s, ..) => {
                let body = app
                    .try_register_device(&serial(s), "device-pass-1", "")
                    .await;
                match body["result"].as_i64() {
                    Some(0) => {
                        registered.insert(s, Some(true));
                        bound.insert(s, Some(false));
                    }
                    // Already registered: nothing changes.
                    Some(103) => {}
                    // Not acknowledged: the reconciler undoes a half-made one.
                    _ if registered[&s] == Some(false) => {}
                    _ => {
                        registered.insert(s, None);
                    }
                }
            }
            Op::Bind(s, _) => {
                let login = app.login_device(&serial(s), "device-pass-1").await;
                if login["result"] == 0 {
                    let d = User {
                        name: serial(s),
                        password: "device-pass-1".into(),
                        token: login["access_token"].as_str().unwrap().into(),
                        jid: String::new(),
                        jid_pwd: String::new(),
                        is_device: true,
                    };
                    let code = bind_code(&app, &d).await;
                    let body = bind(&app, &owner, &[&d.name], &[&code]).await;
                    let ok = body["result_ls"][0]["result"] == 0;
                    bound.insert(s, if ok { Some(true) } else { None });
                }
            }
            Op::Unbind(s) => {
                let body = unbind(&app, &owner, &[&serial(s)]).await;
                let ok = body["result_ls"][0]["result"] == 0;
                if ok {
                    bound.insert(s, Some(false));
                } else if bound[&s] != Some(false) {
                    bound.insert(s, None);
                }
            }
            Op::Cancel(s, _) => {
                let body = app.cancel_device(&serial(s), "device-pass-1").await;
                if body["result"] == 0 {
                    registered.insert(s, Some(false));
                    bound.insert(s, Some(false));
                } else if registered[&s] != Some(false) {
                    registered.insert(s, None);
                    bound.insert(s, None);
                }
            }
        }
        *armed.lock().unwrap() = None;
        // The server comes back before the next operation.
        if !prosody_is_up(&prosody).await {
            prosody.resume().await;
        }
        app.wait_ready().await;
    }

    // The reconciler runs (pending rows, then drift) until a pass finds
    // nothing left to do; a repair that fails is retried on the next pass,
    // as the background loop would.
    let mut passes = Vec::new();
    loop {
        let p = jidgate::reconcile::sweep_pending(&app.app).await.unwrap();
        let d = jidgate::reconcile::sweep_drift(&app.app).await.unwrap();
        let quiet = p == Default::default() && d == Default::default();
        passes.push((p, d));
        if quiet {
            break;
        }
        assert!(
            passes.len() < 5,
            "the reconciler does not settle: {passes:?}\n{ops:?}"
        );
    }
    if std::env::var_os("JIDGATE_RECONCILE_TRACE").is_some() {
        eprintln!("{ops:?}\n  {passes:?}\n  -> {}", app.snapshot().await);
    }
    check_agreement(&app, &prosody, ops, &registered, &bound).await;
    app.stop().await;
}

async fn prosody_is_up(p: &Prosody) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", p.port))
        .await
        .is_ok()
}

/// Database and XMPP server agree, and every acknowledged operation holds.
async fn check_agreement(
    app: &TestApp,
    prosody: &Prosody,
    ops: &[Op],
    registered: &BTreeMap<usize, Option<bool>>,
    bound: &BTreeMap<usize, Option<bool>>,
) {
    let snapshot = app.snapshot().await;
    let ctx = format!("{ops:?}\n{snapshot}");
    assert_eq!(
        app.count("select count(*) from account where state <> 'active'")
            .await,
        0,
        "{ctx}"
    );
    assert_eq!(
        app.count("select count(*) from binding where state <> 'bound'")
            .await,
        0,
        "{ctx}"
    );
    // No orphan JID, no account without JID.
    let rows = accounts::active_page(&app.app.db, 0, 100).await.unwrap();
    let mut locals: Vec<String> = rows.iter().map(|a| a.jid_local.clone()).collect();
    locals.push("admin".into());
    locals.sort();
    assert_eq!(prosody.accounts(), locals, "{ctx}");

    // Every roster, read from the XMPP server: each entry between accounts
    // is a bound pair, `both`, and each bound pair is on both sides.
    let domain = app.app.domain().to_owned();
    let by_jid: BTreeMap<String, i64> = rows
        .iter()
        .map(|a| (format!("{}@{domain}", a.jid_local), a.id))
        .collect();
    let db_pairs: BTreeSet<(i64, i64)> =
        sqlx::query_as::<_, (i64, i64)>("select owner_id, device_id from binding")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let sessions = Sessions::new(&app.app);
    for a in &rows {
        for item in sessions.roster(a).await.unwrap() {
            let other = by_jid.get(&item.jid.to_string());
            let other =
                *other.unwrap_or_else(|| panic!("roster entry {} of nobody\n{ctx}", item.jid));
            let pair = if a.is_device() {
                (other, a.id)
            } else {
                (a.id, other)
            };
            assert!(db_pairs.contains(&pair), "stray {pair:?}\n{ctx}");
            assert_eq!(
                roster::subscription_name(&item.subscription),
                "both",
                "{ctx}"
            );
            *seen.entry(pair).or_default() += 1;
        }
    }
    sessions.close().await;
    for pair in &db_pairs {
        assert_eq!(seen.get(pair), Some(&2), "one-sided {pair:?}\n{ctx}");
    }
    // Acknowledged operations took effect.
    for s in 0..SLOTS {
        let row = rows.iter().find(|a| a.user_name == serial(s));
        if let Some(want) = registered[&s] {
            assert_eq!(row.is_some(), want, "slot {s} registered\n{ctx}");
        }
        if let (Some(want), Some(d)) = (bound[&s], row) {
            let is_bound = db_pairs.iter().any(|(_, dev)| *dev == d.id);
            assert_eq!(is_bound, want, "slot {s} bound\n{ctx}");
        }
    }
}

#[tokio::test]
async fn any_interleaving_of_crash_points_leaves_db_and_xmpp_in_agreement_after_reconciling() {
    let cases: u32 = std::env::var("JIDGATE_RECONCILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        rng_seed: proptest::test_runner::RngSeed::Fixed(11),
        ..Config::default()
    });
    let strategy = prop::collection::vec(op(), 3..8);
    for _ in 0..cases {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        run_case(&ops).await;
    }
}
