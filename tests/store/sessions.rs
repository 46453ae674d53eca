//! Sessions and tokens: opening with a cap, verifying, refreshing (once),
//! ending, pruning.

use jidgate::config::AppKind;
use jidgate::db::session::{self, NewPair, Refreshed};
use jidgate::db::{self, AccountState, UserType};

use crate::accounts::active;
use crate::backends::{TestDb, on_each_backend};

on_each_backend!(
    a_session_opens_with_a_pair_and_the_cap_ends_the_oldest,
    a_refresh_token_renews_once_and_its_reuse_ends_the_session,
    sessions_end_and_expired_ones_are_pruned,
);

pub fn pair<'a>(access: &'a [u8], refresh: &'a [u8], expires_at: i64) -> NewPair<'a> {
    NewPair {
        access_hash: access,
        access_expires_at: expires_at,
        refresh_hash: refresh,
        refresh_expires_at: expires_at + 100,
    }
}

async fn a_session_opens_with_a_pair_and_the_cap_ends_the_oldest(t: &TestDb) {
    let db = &t.db;
    let id = active(db, "p", UserType::Phone).await;
    let (s1, ended) = session::open(
        db,
        id,
        "app",
        AppKind::App,
        10,
        1000,
        &pair(b"a1", b"r1", 500),
        2,
    )
    .await
    .unwrap();
    assert!(ended.is_empty());
    let tok = session::access_token(db, b"a1").await.unwrap().unwrap();
    assert_eq!(
        (tok.session_id, tok.account_id, tok.expires_at),
        (s1, id, 500)
    );
    assert_eq!((tok.app_id.as_str(), tok.app_kind), ("app", AppKind::App));
    assert_eq!((tok.user_name.as_str(), tok.type_), ("p", UserType::Phone));
    // A refresh token is not an access token.
    assert!(session::access_token(db, b"r1").await.unwrap().is_none());
    let (s2, _) = session::open(
        db,
        id,
        "dev",
        AppKind::Device,
        11,
        1001,
        &pair(b"a2", b"r2", 501),
        2,
    )
    .await
    .unwrap();
    let (_, ended) = session::open(
        db,
        id,
        "app",
        AppKind::App,
        12,
        1002,
        &pair(b"a3", b"r3", 502),
        2,
    )
    .await
    .unwrap();
    assert_eq!(ended, [s1]);
    assert!(session::access_token(db, b"a1").await.unwrap().is_none());
    assert_eq!(
        session::access_token(db, b"a2")
            .await
            .unwrap()
            .unwrap()
            .session_id,
        s2
    );
    // Only active accounts' tokens verify.
    db::account::transition(db, id, AccountState::Active, AccountState::Deleting, 13)
        .await
        .unwrap();
    assert!(session::access_token(db, b"a2").await.unwrap().is_none());
}

async fn a_refresh_token_renews_once_and_its_reuse_ends_the_session(t: &TestDb) {
    let db = &t.db;
    let id = active(db, "p", UserType::Phone).await;
    let (s, _) = session::open(
        db,
        id,
        "app",
        AppKind::App,
        10,
        1000,
        &pair(b"a1", b"r1", 500),
        5,
    )
    .await
    .unwrap();
    let not_owned = session::refresh(db, b"r1", 20, &pair(b"a2", b"r2", 600), 2000, |_| false)
        .await
        .unwrap();
    assert_eq!(not_owned, Refreshed::NotOwned);
    let renewed = session::refresh(db, b"r1", 20, &pair(b"a2", b"r2", 600), 2000, |r| {
        r.app_id == "app" && r.user_name == "p"
    })
    .await
    .unwrap();
    assert_eq!(
        renewed,
        Refreshed::Renewed {
            session_id: s,
            account_id: id
        }
    );
    assert!(session::access_token(db, b"a1").await.unwrap().is_none());
    assert_eq!(
        session::access_token(db, b"a2")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        600
    );
    let reused = session::refresh(db, b"r1", 21, &pair(b"a3", b"r3", 700), 2000, |_| true)
        .await
        .unwrap();
    assert_eq!(reused, Refreshed::Ended { session_id: s });
    assert!(session::access_token(db, b"a2").await.unwrap().is_none());
    let unknown = session::refresh(db, b"zz", 21, &pair(b"a4", b"r4", 700), 2000, |_| true)
        .await
        .unwrap();
    assert_eq!(unknown, Refreshed::Unknown);
}

async fn sessions_end_and_expired_ones_are_pruned(t: &TestDb) {
    let db = &t.db;
    let id = active(db, "p", UserType::Phone).await;
    let (s1, _) = session::open(
        db,
        id,
        "app",
        AppKind::App,
        10,
        100,
        &pair(b"a1", b"r1", 50),
        9,
    )
    .await
    .unwrap();
    session::open(
        db,
        id,
        "app",
        AppKind::App,
        10,
        1000,
        &pair(b"a2", b"r2", 500),
        9,
    )
    .await
    .unwrap();
    session::open(
        db,
        id,
        "app",
        AppKind::App,
        10,
        1000,
        &pair(b"a3", b"r3", 500),
        9,
    )
    .await
    .unwrap();
    session::prune(db, 60).await.unwrap();
    assert!(session::access_token(db, b"a1").await.unwrap().is_none());
    session::end(db, s1).await.unwrap();
    assert!(session::access_token(db, b"a2").await.unwrap().is_some());
    session::end_all(db, id).await.unwrap();
    assert!(session::access_token(db, b"a2").await.unwrap().is_none());
    assert!(session::access_token(db, b"a3").await.unwrap().is_none());
}
