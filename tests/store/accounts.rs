//! Accounts and bindings: states, unique names, JID password changes,
//! pages, pending rows.

use jidgate::db::{self, AccountState, BindingState, NewAccount, UserType};
use jidgate::error::Error;

use crate::backends::{TestDb, on_each_backend};

on_each_backend!(
    an_account_goes_from_creating_to_active_and_a_taken_name_is_103,
    a_jid_password_change_is_begun_finished_and_abandoned,
    accounts_and_bindings_are_paged_and_found_pending,
    a_binding_is_begun_bound_and_a_bound_pair_is_109,
);

pub fn new_account<'a>(name: &'a str, type_: UserType, jid_local: &'a str) -> NewAccount<'a> {
    NewAccount {
        user_name: name,
        type_,
        device_type: (type_ == UserType::Device).then_some("lamp"),
        des: "d",
        password_hash: "hash",
        jid_local,
        jid_pwd_enc: b"enc",
    }
}

/// An active account; its id.
pub async fn active(db: &db::Db, name: &str, type_: UserType) -> i64 {
    let local = format!("{}{name}", type_.jid_prefix());
    let id = db::account::insert_creating(db, &new_account(name, type_, &local), 100)
        .await
        .unwrap();
    assert!(
        db::account::transition(db, id, AccountState::Creating, AccountState::Active, 101)
            .await
            .unwrap()
    );
    id
}

async fn an_account_goes_from_creating_to_active_and_a_taken_name_is_103(t: &TestDb) {
    let db = &t.db;
    let id = db::account::insert_creating(db, &new_account("dev1", UserType::Device, "d1"), 100)
        .await
        .unwrap();
    assert!(
        db::account::active_by_name(db, "dev1")
            .await
            .unwrap()
            .is_none()
    );
    let again =
        db::account::insert_creating(db, &new_account("dev1", UserType::Phone, "p1"), 100).await;
    assert!(matches!(again, Err(Error::UserExists)), "{again:?}");
    assert!(
        !db::account::transition(db, id, AccountState::Active, AccountState::Deleting, 101)
            .await
            .unwrap()
    );
    assert!(
        db::account::transition(db, id, AccountState::Creating, AccountState::Active, 101)
            .await
            .unwrap()
    );
    let a = db::account::active_by_name(db, "dev1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.id, a.type_, a.state),
        (id, UserType::Device, AccountState::Active)
    );
    assert_eq!(a.device_type.as_deref(), Some("lamp"));
    assert_eq!(a.jid_pwd_enc, b"enc");
    assert_eq!(a.jid_pwd_next, None);
    assert_eq!(a.updated_at, 101);
    assert_eq!(
        db::account::by_jid_local(db, "d1")
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    assert_eq!(
        db::account::active_by_id(db, id)
            .await
            .unwrap()
            .unwrap()
            .user_name,
        "dev1"
    );
    db::account::delete(db, id).await.unwrap();
    assert!(db::account::by_id(db, id).await.unwrap().is_none());
    // The name is free again.
    db::account::insert_creating(db, &new_account("dev1", UserType::Device, "d2"), 102)
        .await
        .unwrap();
}

async fn a_jid_password_change_is_begun_finished_and_abandoned(t: &TestDb) {
    let db = &t.db;
    let id = active(db, "p", UserType::Phone).await;
    let a = db::account::by_id(db, id).await.unwrap().unwrap();
    assert!(
        db::account::begin_jid_pwd_change(db, &a, b"next", 200)
            .await
            .unwrap()
    );
    // One change at a time.
    assert!(
        !db::account::begin_jid_pwd_change(db, &a, b"other", 200)
            .await
            .unwrap()
    );
    assert_eq!(
        db::account::with_pending_jid_pwd(db, 200)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        db::account::with_pending_jid_pwd(db, 199)
            .await
            .unwrap()
            .is_empty()
    );
    db::account::finish_jid_pwd_change(db, id, b"next", Some("hash2"), 201)
        .await
        .unwrap();
    let a = db::account::by_id(db, id).await.unwrap().unwrap();
    assert_eq!(
        (a.jid_pwd_enc.as_slice(), a.jid_pwd_next.as_deref()),
        (&b"next"[..], None)
    );
    assert_eq!(a.password_hash, "hash2");
    assert!(
        db::account::begin_jid_pwd_change(db, &a, b"third", 202)
            .await
            .unwrap()
    );
    db::account::abandon_jid_pwd_change(db, id, b"third", 203)
        .await
        .unwrap();
    let a = db::account::by_id(db, id).await.unwrap().unwrap();
    assert_eq!(
        (a.jid_pwd_enc.as_slice(), a.jid_pwd_next.as_deref()),
        (&b"next"[..], None)
    );
    assert!(
        db::account::begin_jid_pwd_change(db, &a, b"fourth", 204)
            .await
            .unwrap()
    );
    db::account::commit_jid_pwd(db, id, 205).await.unwrap();
    let a = db::account::by_id(db, id).await.unwrap().unwrap();
    assert_eq!(a.jid_pwd_enc, b"fourth");
    assert_eq!(a.password_hash, "hash2");
}

async fn accounts_and_bindings_are_paged_and_found_pending(t: &TestDb) {
    let db = &t.db;
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(active(db, &format!("u{i}"), UserType::Phone).await);
    }
    let pending = db::account::insert_creating(db, &new_account("x", UserType::Phone, "px"), 50)
        .await
        .unwrap();
    let page = db::account::active_page(db, 0, 3).await.unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), ids[..3]);
    let page = db::account::active_page(db, ids[2], 3).await.unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), ids[3..]);
    let stale = db::account::in_state_before(db, AccountState::Creating, 60)
        .await
        .unwrap();
    assert_eq!(stale.iter().map(|a| a.id).collect::<Vec<_>>(), [pending]);
    assert!(
        db::account::in_state_before(db, AccountState::Creating, 49)
            .await
            .unwrap()
            .is_empty()
    );
    let dev = active(db, "dev", UserType::Device).await;
    let b = db::binding::begin(db, ids[0], dev, 300).await.unwrap();
    assert!(
        db::binding::transition(db, b, BindingState::Binding, BindingState::Bound, 301)
            .await
            .unwrap()
    );
    assert_eq!(db::binding::bound_page(db, 0, 10).await.unwrap()[0].id, b);
    assert_eq!(db::binding::of_account(db, dev).await.unwrap().len(), 1);
    assert_eq!(db::binding::of_account(db, ids[0]).await.unwrap().len(), 1);
    db::binding::mark_unbinding(db, b, 302).await.unwrap();
    let pending = db::binding::in_state_before(db, BindingState::Unbinding, 302)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    db::binding::delete(db, b).await.unwrap();
    assert!(
        db::binding::of_pair(db, ids[0], dev)
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_binding_is_begun_bound_and_a_bound_pair_is_109(t: &TestDb) {
    let db = &t.db;
    let owner = active(db, "o", UserType::Phone).await;
    let dev = active(db, "d", UserType::Device).await;
    let id = db::binding::begin(db, owner, dev, 10).await.unwrap();
    // A pending row is taken over.
    assert_eq!(db::binding::begin(db, owner, dev, 11).await.unwrap(), id);
    assert!(
        db::binding::transition(db, id, BindingState::Binding, BindingState::Bound, 12)
            .await
            .unwrap()
    );
    let again = db::binding::begin(db, owner, dev, 13).await;
    assert!(matches!(again, Err(Error::AlreadyBound)), "{again:?}");
    let b = db::binding::of_pair(db, owner, dev).await.unwrap().unwrap();
    assert_eq!((b.id, b.state, b.updated_at), (id, BindingState::Bound, 12));
    // An account with a binding cannot go from under it.
    assert!(db::account::delete(db, dev).await.is_err());
}
