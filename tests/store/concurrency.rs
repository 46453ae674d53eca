//! What several instances rely on, with two pools on one database racing:
//! a nonce is spent once, a user name taken once, a refresh token renews
//! once, a bind code is guessed at most its maximum.

use std::sync::Arc;

use jidgate::config::AppKind;
use jidgate::db::session::{self, Refreshed};
use jidgate::db::{self, Db, UserType};
use jidgate::error::Error;

use crate::accounts::{active, new_account};
use crate::backends::{TestDb, on_each_backend};
use crate::sessions::pair;
use crate::small_tables::verified;

on_each_backend!(
    a_nonce_raced_on_two_pools_is_spent_once,
    a_user_name_raced_on_two_pools_is_taken_once,
    a_refresh_token_raced_on_two_pools_renews_once,
    bind_code_guesses_raced_never_exceed_the_maximum,
    a_shared_rate_limit_raced_on_two_pools_lets_only_its_capacity_through,
);

const RACERS: usize = 8;

/// Runs `f(pool, i)` `RACERS` times at once, alternating the two pools.
async fn race<T, F, Fut>(t: &TestDb, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Db, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let pools = [t.db.clone(), t.another().await];
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = vec![];
    for i in 0..RACERS {
        let (fut, start) = (f(pools[i % 2].clone(), i), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            fut.await
        }));
    }
    let mut out = vec![];
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn a_nonce_raced_on_two_pools_is_spent_once(t: &TestDb) {
    let results = race(t, |db, _| async move {
        db::nonce::spend(&db, &verified("app", "same", 100)).await
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(Error::NonceReused)))
    );
}

async fn a_user_name_raced_on_two_pools_is_taken_once(t: &TestDb) {
    let results = race(t, |db, i| async move {
        let local = format!("d{i}");
        db::account::insert_creating(&db, &new_account("same", UserType::Device, &local), 1).await
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(Error::UserExists)))
    );
}

async fn a_refresh_token_raced_on_two_pools_renews_once(t: &TestDb) {
    let id = active(&t.db, "p", UserType::Phone).await;
    session::open(
        &t.db,
        id,
        "app",
        AppKind::App,
        1,
        1000,
        &pair(b"a0", b"r0", 500),
        9,
    )
    .await
    .unwrap();
    let results = race(t, |db, i| async move {
        let (a, r) = (format!("a{}", i + 1), format!("r{}", i + 1));
        session::refresh(
            &db,
            b"r0",
            2,
            &pair(a.as_bytes(), r.as_bytes(), 600),
            2000,
            |_| true,
        )
        .await
    })
    .await;
    let renewed = results
        .iter()
        .filter(|r| matches!(r, Ok(Refreshed::Renewed { .. })))
        .count();
    assert_eq!(renewed, 1, "{results:?}");
}

async fn bind_code_guesses_raced_never_exceed_the_maximum(t: &TestDb) {
    let dev = active(&t.db, "d", UserType::Device).await;
    db::bind_code::put(&t.db, dev, b"h", 100).await.unwrap();
    let results = race(t, |db, _| async move {
        db::bind_code::attempt(&db, dev, 3, 50)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 3);
}

async fn a_shared_rate_limit_raced_on_two_pools_lets_only_its_capacity_through(t: &TestDb) {
    let results = race(t, |db, _| async move {
        db::rate_limit::take(&db, "k", 3, 60_000, 1_000_000)
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert_eq!(results.iter().filter(|&&ok| ok).count(), 3);
}
