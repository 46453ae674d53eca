//! Fault storm (issue 11): registrations, logins, bindings, unbindings and
//! cancellations from 16 concurrent clients against the real binary while
//! Prosody is SIGKILLed and restarted and jidgate is SIGKILLed and
//! restarted. Afterwards, once the reconciler has run: every acknowledged
//! operation took effect, nothing unacknowledged is half-done, no orphan
//! JID, no account without JID, no one-sided roster entry (every roster
//! read by logging in to Prosody as its account). Also measures how long
//! after Prosody is back jidgate registers again.
//!
//! Bounded: `JIDGATE_STORM_CYCLES` fault cycles of 8 s (default 4).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jidgate::crypto::JidCipher;
use jidgate::xmpp::roster;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::helpers::*;
use crate::process::{JidgateProcess, ProcessSettings};
use crate::scripted::{ProcUser, ScriptedProcess};

const WORKERS: usize = 16;

/// What the clients were told, per device: `Some(state)` while every
/// operation on it was acknowledged, `None` once one was not.
#[derive(Default)]
struct Model {
    registered: BTreeMap<String, Option<bool>>,
    bound: BTreeMap<String, Option<bool>>,
    acknowledged: usize,
    unacknowledged: usize,
}

/// A signed call that may fail in transport (jidgate down): `None` then,
/// or when the answer is not JSON (a 503 with an empty body).
async fn try_call(
    client: &reqwest::Client,
    base: &str,
    app_id: &str,
    path: &str,
    params: &[(&str, &str)],
) -> Option<Value> {
    let (query, _) = TestApp::sign(app_id, path, params);
    let r = client
        .get(format!("{base}{path}"))
        .query(&query)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

fn ok(v: &Option<Value>) -> bool {
    v.as_ref().is_some_and(|v| v["result"] == 0)
}

/// One client: devices one after another, each registered, logged in,
/// bound to the client's owner, sometimes unbound, sometimes cancelled.
async fn worker(
    w: usize,
    base: String,
    owner: Arc<ProcUser>,
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
) {
    let client = test_client(None);
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let name = format!("SN-STORM-{w}-{i}");
        let c = |path: &'static str, app: &'static str, params: Vec<(&'static str, String)>| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                try_call(&client, &base, app, path, &p).await
            }
        };
        let record = |m: &mut Model, acked: bool| {
            if acked {
                m.acknowledged += 1
            } else {
                m.unacknowledged += 1
            }
        };
        let dev = |extra: Vec<(&'static str, String)>| {
            let mut v = vec![("user_name", name.clone())];
            v.extend(extra);
            v
        };
        let r = c(
            "/register",
            DEVICE_APP_ID,
            dev(vec![
                ("password", "storm-pass-1".into()),
                ("type", "2".into()),
                ("device_type", "lamp".into()),
            ]),
        )
        .await;
        {
            let mut m = model.lock().unwrap();
            record(&mut m, ok(&r));
            m.registered.insert(name.clone(), ok(&r).then_some(true));
            m.bound.insert(name.clone(), Some(false));
        }
        if !ok(&r) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let login = c(
            "/login",
            DEVICE_APP_ID,
            dev(vec![
                ("password", "storm-pass-1".into()),
                ("type", "2".into()),
            ]),
        )
        .await;
        let Some(token) = login
            .as_ref()
            .filter(|_| ok(&login))
            .and_then(|l| l["access_token"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let code = c(
            "/get_bind_code",
            DEVICE_APP_ID,
            dev(vec![("access_token", token)]),
        )
        .await;
        let Some(code) = code
            .as_ref()
            .filter(|_| ok(&code))
            .and_then(|b| b["bind_code"].as_str().map(str::to_owned))
        else {
            continue;
        };
        let list = serde_json::to_string(&[&name]).unwrap();
        let owner_params = |extra: Vec<(&'static str, String)>| {
            let mut v = vec![
                ("user_name", owner.name.clone()),
                ("access_token", owner.token.clone()),
                ("user_name_ls", list.clone()),
            ];
            v.extend(extra);
            v
        };
        let b = c(
            "/set_user_banding",
            APP_ID,
            owner_params(vec![(
                "bind_code_ls",
                serde_json::to_string(&[&code]).unwrap(),
            )]),
        )
        .await;
        let item_ok =
            |b: &Option<Value>| b.as_ref().is_some_and(|b| b["result_ls"][0]["result"] == 0);
        {
            let mut m = model.lock().unwrap();
            record(&mut m, item_ok(&b));
            m.bound.insert(name.clone(), item_ok(&b).then_some(true));
        }
        if i % 3 == 0 {
            let u = c("/set_user_unbanding", APP_ID, owner_params(vec![])).await;
            let mut m = model.lock().unwrap();
            record(&mut m, item_ok(&u));
            m.bound.insert(name.clone(), item_ok(&u).then_some(false));
        }
        if i % 2 == 0 {
            let x = c(
                "/cancel",
                DEVICE_APP_ID,
                dev(vec![
                    ("password", "storm-pass-1".into()),
                    ("type", "2".into()),
                ]),
            )
            .await;
            let mut m = model.lock().unwrap();
            record(&mut m, ok(&x));
            let acked = ok(&x).then_some(false);
            m.registered.insert(name.clone(), acked);
            m.bound.insert(name.clone(), acked);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_storm_leaves_every_acknowledged_operation_done_and_both_sides_in_agreement() {
    let cycles: u32 = std::env::var("JIDGATE_STORM_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let prosody = Prosody::start().await;
    let mut proc = JidgateProcess::spawn_with(
        &prosody,
        ProcessSettings {
            // The reconciler: rows older than 3 s, every second; drift every 2 s.
            toml: "[reconcile]\ngrace = 3\ninterval = 1\ndrift_interval = 2\n".into(),
            ..Default::default()
        },
    )
    .await;
    // Owners, registered before the storm.
    let mut owners = Vec::new();
    {
        let s = ScriptedProcess::new(&proc);
        for w in 0..WORKERS {
            let phone = format!("1390000{w:04}");
            s.register_phone(&phone, "phone-pass-1").await;
            owners.push(Arc::new(s.login_phone(&phone, "phone-pass-1").await));
        }
    }
    let model = Arc::new(Mutex::new(Model::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let base = format!("http://{}", proc.addr);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(worker(
                w,
                base.clone(),
                owners[w].clone(),
                model.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // The storm: each cycle kills Prosody, brings it back and measures how
    // soon a registration succeeds, then kills and restarts jidgate.
    let mut recoveries = Vec::new();
    let client = test_client(None);
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_secs(2)).await;
        prosody.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        prosody.resume().await;
        let back = Instant::now();
        let probe = format!("SN-PROBE-{cycle}");
        loop {
            let r = try_call(
                &client,
                &base,
                DEVICE_APP_ID,
                "/register",
                &[
                    ("user_name", &probe),
                    ("password", "storm-pass-1"),
                    ("type", "2"),
                    ("device_type", "lamp"),
                ],
            )
            .await;
            if ok(&r) {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(15),
                "no registration 15 s after Prosody came back: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        recoveries.push(back.elapsed());
        model.lock().unwrap().registered.insert(probe, Some(true));
        tokio::time::sleep(Duration::from_secs(2)).await;
        proc.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        proc.restart();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    proc.wait_ready().await;
    let m = Arc::try_unwrap(model)
        .ok()
        .expect("the workers are done")
        .into_inner()
        .unwrap();

    // Afterwards: the reconciler settles it all.
    let deadline = Instant::now() + Duration::from_secs(40);
    let outcome = loop {
        let outcome = check(&proc, &prosody, &m).await;
        if outcome.is_ok() || Instant::now() > deadline {
            break outcome;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let worst = recoveries.iter().max().unwrap();
    eprintln!(
        "storm: {cycles} cycles, {} acknowledged and {} unacknowledged operations; \
         registrations again after Prosody's restart in {recoveries:?}",
        m.acknowledged, m.unacknowledged
    );
    outcome.unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            proc.log()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(
        m.acknowledged > 50 && m.unacknowledged > 0,
        "{} / {}",
        m.acknowledged,
        m.unacknowledged
    );
    assert!(*worst < Duration::from_secs(2), "{recoveries:?}");
}

/// The agreement, or what is wrong.
async fn check(proc: &JidgateProcess, prosody: &Prosody, m: &Model) -> Result<(), String> {
    let db = crate::helpers::connect_db(&proc.db_file).await;
    let accounts: Vec<(i64, String, String, String, Vec<u8>, i64)> = sqlx::query_as(
        "select id, user_name, state, jid_local, jid_pwd_enc, cast(type as bigint) from account",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let bindings: Vec<(i64, i64, String)> =
        sqlx::query_as("select owner_id, device_id, state from binding")
            .fetch_all(&db)
            .await
            .unwrap();
    db.close().await;
    if let Some(a) = accounts.iter().find(|a| a.2 != "active") {
        return Err(format!("account {} still {}", a.1, a.2));
    }
    if let Some(b) = bindings.iter().find(|b| b.2 != "bound") {
        return Err(format!("binding {b:?} still {}", b.2));
    }
    let mut locals: Vec<String> = accounts.iter().map(|a| a.3.clone()).collect();
    locals.push("admin".into());
    locals.sort();
    if prosody.accounts() != locals {
        return Err(format!(
            "JIDs {:?} but accounts {:?}",
            prosody.accounts(),
            locals
        ));
    }
    let by_name: BTreeMap<&str, i64> = accounts.iter().map(|a| (a.1.as_str(), a.0)).collect();
    let pairs: BTreeSet<(i64, i64)> = bindings.iter().map(|b| (b.0, b.1)).collect();
    for (name, want) in &m.registered {
        if let Some(want) = want
            && by_name.contains_key(name.as_str()) != *want
        {
            return Err(format!("acknowledged: {name} registered = {want}"));
        }
    }
    for (name, want) in &m.bound {
        if let (Some(want), Some(id)) = (want, by_name.get(name.as_str()))
            && pairs.iter().any(|p| p.1 == *id) != *want
        {
            return Err(format!("acknowledged: {name} bound = {want}"));
        }
    }
    // Every roster, from the XMPP side.
    let cipher = JidCipher::new(&hex::decode(JID_KEY).unwrap().try_into().unwrap());
    let by_jid: BTreeMap<String, i64> = accounts
        .iter()
        .map(|a| (format!("{}@{DOMAIN}", a.3), a.0))
        .collect();
    let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for (id, name, _, local, enc, ty) in &accounts {
        let jid = format!("{local}@{DOMAIN}");
        let pwd = cipher.decrypt(&jid, enc).map_err(|e| e.to_string())?;
        let session = prosody
            .login(&jid, pwd.expose_secret())
            .await
            .map_err(|e| format!("{name} cannot log in: {e}"))?;
        let items = roster::get(&session).await.map_err(|e| e.to_string())?;
        session.close().await;
        for item in items {
            let Some(other) = by_jid.get(&item.jid.to_string()) else {
                return Err(format!("{name} has {} of no account", item.jid));
            };
            let pair = if *ty == 2 {
                (*other, *id)
            } else {
                (*id, *other)
            };
            if !pairs.contains(&pair) || roster::subscription_name(&item.subscription) != "both" {
                return Err(format!(
                    "{name} has {} as {}, not a bound pair",
                    item.jid,
                    roster::subscription_name(&item.subscription)
                ));
            }
            *seen.entry(pair).or_default() += 1;
        }
    }
    match pairs.iter().find(|p| seen.get(p) != Some(&2)) {
        Some(p) => Err(format!("one-sided or missing roster entries for {p:?}")),
        None => Ok(()),
    }
}
