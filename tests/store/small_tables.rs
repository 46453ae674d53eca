//! Nonces, captchas, bind codes, repair attempts, rate limits, unread
//! counts and the facade's catch-up cursors.

use jidgate::config::AppKind;
use jidgate::db::{self, UserType};
use jidgate::error::Error;
use jidgate::signing::{SigningKey, Verified};

use crate::accounts::active;
use crate::backends::{TestDb, on_each_backend};

on_each_backend!(
    a_nonce_is_spent_once_per_scope_and_pruned,
    a_captcha_is_taken_once_and_pruned,
    a_bind_code_allows_max_guesses_and_is_taken_once,
    repair_attempts_are_counted_listed_and_cleared,
    a_shared_rate_limit_lets_its_capacity_through_and_refills,
    an_unread_message_counts_once_however_often_it_is_delivered,
    a_catch_up_cursor_is_one_per_account_and_moves,
);

pub fn verified(scope: &str, nonce: &str, expires_at: i64) -> Verified {
    Verified {
        app_id: "app".into(),
        kind: AppKind::App,
        key: SigningKey::from_bytes(b"k".to_vec()),
        nonce_scope: scope.into(),
        nonce: nonce.into(),
        nonce_expires_at: expires_at,
    }
}

async fn a_nonce_is_spent_once_per_scope_and_pruned(t: &TestDb) {
    let db = &t.db;
    db::nonce::spend(db, &verified("a", "n1", 100))
        .await
        .unwrap();
    let again = db::nonce::spend(db, &verified("a", "n1", 100)).await;
    assert!(matches!(again, Err(Error::NonceReused)), "{again:?}");
    db::nonce::spend(db, &verified("b", "n1", 100))
        .await
        .unwrap();
    db::nonce::spend(db, &verified("a", "n2", 200))
        .await
        .unwrap();
    assert_eq!(db::nonce::prune(db, 150).await.unwrap(), 2);
    db::nonce::spend(db, &verified("a", "n1", 300))
        .await
        .unwrap();
}

async fn a_captcha_is_taken_once_and_pruned(t: &TestDb) {
    let db = &t.db;
    db::captcha::insert(db, "c1", "abcd", 100).await.unwrap();
    db::captcha::insert(db, "c2", "efgh", 10).await.unwrap();
    let c = db::captcha::take(db, "c1").await.unwrap().unwrap();
    assert_eq!((c.answer.as_str(), c.expires_at), ("abcd", 100));
    assert!(db::captcha::take(db, "c1").await.unwrap().is_none());
    assert_eq!(db::captcha::prune(db, 50).await.unwrap(), 1);
    assert!(db::captcha::take(db, "c2").await.unwrap().is_none());
}

async fn a_bind_code_allows_max_guesses_and_is_taken_once(t: &TestDb) {
    let db = &t.db;
    let dev = active(db, "d", UserType::Device).await;
    db::bind_code::put(db, dev, b"h1", 100).await.unwrap();
    for n in 1..=3 {
        let c = db::bind_code::attempt(db, dev, 3, 50)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.code_hash.as_slice(), c.attempts), (&b"h1"[..], n));
    }
    assert!(
        db::bind_code::attempt(db, dev, 3, 50)
            .await
            .unwrap()
            .is_none()
    );
    // A new code starts its guesses again; an expired one allows none.
    db::bind_code::put(db, dev, b"h2", 100).await.unwrap();
    assert!(
        db::bind_code::attempt(db, dev, 3, 100)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db::bind_code::attempt(db, dev, 3, 99)
            .await
            .unwrap()
            .is_some()
    );
    assert!(!db::bind_code::take(db, dev, b"h1").await.unwrap());
    assert!(db::bind_code::take(db, dev, b"h2").await.unwrap());
    assert!(!db::bind_code::take(db, dev, b"h2").await.unwrap());
    db::bind_code::put(db, dev, b"h3", 10).await.unwrap();
    assert_eq!(db::bind_code::prune(db, 10).await.unwrap(), 1);
}

async fn repair_attempts_are_counted_listed_and_cleared(t: &TestDb) {
    let db = &t.db;
    let e = Error::Xmpp("down".into());
    for n in 1..=3 {
        let attempts =
            db::repair_attempt::record_failure(db, "account #1", "undo_create", &e, 10 + n)
                .await
                .unwrap();
        assert_eq!(attempts, n);
    }
    db::repair_attempt::record_failure(db, "binding #2", "rebind", &e, 20)
        .await
        .unwrap();
    assert_eq!(db::repair_attempt::all(db).await.unwrap().len(), 2);
    let (count, stuck) = db::repair_attempt::stuck(db, 2, 10).await.unwrap();
    assert_eq!(count, 1);
    assert_eq!(
        (stuck[0].row.as_str(), stuck[0].attempts),
        ("account #1", 3)
    );
    assert_eq!(
        (stuck[0].first_failed_at, stuck[0].last_failed_at),
        (11, 13)
    );
    assert_eq!(stuck[0].last_code, e.code());
    db::repair_attempt::clear(db, "account #1", "undo_create")
        .await
        .unwrap();
    assert_eq!(db::repair_attempt::all(db).await.unwrap().len(), 1);
}

async fn a_shared_rate_limit_lets_its_capacity_through_and_refills(t: &TestDb) {
    let db = &t.db;
    let (capacity, unit) = (3, 1000);
    for _ in 0..3 {
        assert_eq!(
            db::rate_limit::take(db, "k", capacity, unit, 10_000)
                .await
                .unwrap(),
            None
        );
    }
    let wait = db::rate_limit::take(db, "k", capacity, unit, 10_000)
        .await
        .unwrap();
    assert_eq!(wait, Some(1000));
    // Another key has its own budget; one unit comes back per unit of time.
    assert_eq!(
        db::rate_limit::take(db, "other", capacity, unit, 10_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db::rate_limit::take(db, "k", capacity, unit, 10_500)
            .await
            .unwrap(),
        Some(500)
    );
    assert_eq!(
        db::rate_limit::take(db, "k", capacity, unit, 11_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(db::rate_limit::prune(db, 13_000).await.unwrap(), 1);
    assert_eq!(db::rate_limit::prune(db, 14_000).await.unwrap(), 1);
}

async fn an_unread_message_counts_once_however_often_it_is_delivered(t: &TestDb) {
    use db::facade::UNREAD_IDS_KEPT;
    let db = &t.db;
    let me = active(db, "unread1", UserType::Phone).await;
    let counts = || db::facade::unread(db, me, 10);
    let add = |peer: &'static str, id: &'static str, at: i64| {
        db::facade::add_unread(db, me, peer, id, at)
    };
    assert!(add("ann", "m1", 1_000).await.unwrap());
    assert!(!add("ann", "m1", 1_001).await.unwrap());
    assert!(add("ann", "m2", 1_002).await.unwrap());
    assert!(add("bob", "m3", 1_003).await.unwrap());
    assert_eq!(
        counts().await.unwrap(),
        [("ann".to_owned(), 2), ("bob".to_owned(), 1)]
    );
    db::facade::clear_unread(db, me, "ann", 2_000)
        .await
        .unwrap();
    assert_eq!(counts().await.unwrap(), [("bob".to_owned(), 1)]);
    // Read, then delivered again: not unread again.
    assert!(!add("ann", "m1", 2_001).await.unwrap());
    assert!(!add("bob", "m3", 2_002).await.unwrap());
    assert_eq!(counts().await.unwrap(), [("bob".to_owned(), 1)]);
    // A mark_read past the keeping time prunes that contact's older ids
    // only: a delivery after that counts anew.
    let later = 1_001 + UNREAD_IDS_KEPT;
    db::facade::clear_unread(db, me, "ann", later)
        .await
        .unwrap();
    assert!(add("ann", "m1", later).await.unwrap());
    assert!(!add("ann", "m2", later).await.unwrap());
    assert!(!add("bob", "m3", later).await.unwrap());
    assert_eq!(
        counts().await.unwrap(),
        [("ann".to_owned(), 1), ("bob".to_owned(), 1)]
    );
}

async fn a_catch_up_cursor_is_one_per_account_and_moves(t: &TestDb) {
    use db::facade::{Cursor, end_cursor_clean, set_cursor, start_cursor};
    let db = &t.db;
    let me = active(db, "cursor1", UserType::Phone).await;
    let other = active(db, "cursor2", UserType::Phone).await;
    let at = |archive_id: &str, clean| Cursor {
        archive_id: Some(archive_id.to_owned()),
        clean,
    };
    // The first session: nothing before; it moves the cursor.
    assert_eq!(start_cursor(db, me, "s1", 100).await.unwrap(), None);
    set_cursor(db, me, "a1", 101).await.unwrap();
    assert_eq!(start_cursor(db, other, "o1", 101).await.unwrap(), None);
    set_cursor(db, other, "b1", 101).await.unwrap();
    // A second session starts before the first ended: the first may no
    // longer call the account clean.
    assert_eq!(
        start_cursor(db, me, "s2", 102).await.unwrap(),
        Some(at("a1", false))
    );
    end_cursor_clean(db, me, "s1", Some("stale"), 103)
        .await
        .unwrap();
    end_cursor_clean(db, me, "s2", None, 104).await.unwrap();
    assert_eq!(
        start_cursor(db, me, "s3", 105).await.unwrap(),
        Some(at("a1", true))
    );
    end_cursor_clean(db, me, "s3", Some("a2"), 106)
        .await
        .unwrap();
    assert_eq!(
        start_cursor(db, me, "s4", 107).await.unwrap(),
        Some(at("a2", true))
    );
    assert_eq!(
        start_cursor(db, other, "o2", 108).await.unwrap(),
        Some(at("b1", false))
    );
}
