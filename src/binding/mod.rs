//! Binding phones (and WeChat users) to the devices they own, as real XMPP
//! roster entries: a mutual presence subscription (`both`), the device in
//! the owner's group `devices`, the owner in the device's group `owners`.
//!
//! Endpoints (the seed's spellings and the correct ones):
//! `/get_bind_code`, `/set_user_banding` (`/set_user_binding`),
//! `/set_user_unbanding` (`/set_user_unbinding`), `/get_user_banding`
//! (`/get_user_binding`).
//!
//! The database says who is bound; both rosters are made to match, by
//! logging in as each side (RFC 6121), and checked with a roster get rather
//! than trusting pushes. Rows are `binding` before the XMPP work and `bound`
//! after; unbinding marks them `unbinding` and deletes them after. A failure
//! half-way leaves a row the reconciler undoes (`binding`) or finishes
//! (`unbinding`).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use xmpp_parsers::jid::BareJid;

use crate::api::{ClientIp, Reply, Signed};
use crate::app::App;
use crate::config::{AppKind, BindProof};
use crate::crypto::{ct_eq, random_bytes, sha256};
use crate::db::account as accounts;
use crate::db::binding as store;
use crate::db::{Account, AccountState, Binding, BindingState, bind_code};
use crate::error::{Error, Outcome};
use crate::fields::{UserName, check_text, parse_name_list, parse_string_list};
use crate::ratelimit::address_key;
use crate::xmpp::adhoc::AdminOutcome;
use crate::xmpp::roster::{self, ItemState};
use crate::xmpp::{Session, XmppError};
use secrecy::{ExposeSecret, SecretString};

/// The owner's group for its devices.
pub const GROUP_DEVICES: &str = "devices";
/// The device's group for its owners.
pub const GROUP_OWNERS: &str = "owners";

/// Wrong guesses after which a bind code is void.
const MAX_CODE_ATTEMPTS: i64 = 5;
/// Crockford's base32: no I, L, O, U.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 8;

pub fn router() -> Router<App> {
    Router::new()
        .route("/get_bind_code", get(get_bind_code).post(get_bind_code))
        .route("/set_user_banding", get(set_binding).post(set_binding))
        .route("/set_user_binding", get(set_binding).post(set_binding))
        .route(
            "/set_user_unbanding",
            get(set_unbinding).post(set_unbinding),
        )
        .route(
            "/set_user_unbinding",
            get(set_unbinding).post(set_unbinding),
        )
        .route("/get_user_banding", get(get_binding).post(get_binding))
        .route("/get_user_binding", get(get_binding).post(get_binding))
}

/// The account of `user_name`, proven by its `access_token`, acting through
/// the app its token was issued to (code 4 otherwise). A device's requests
/// are signed with the key derived from this very `user_name`, so whatever
/// acts as a device is signed with that device's own key.
async fn authorized(app: &App, signed: &Signed) -> Result<Account, Error> {
    if signed.kind == AppKind::Service {
        return Err(Error::UnknownApp);
    }
    let p = &signed.params;
    let name = UserName::parse_any(p.required("user_name")?)?;
    let token = p.required("access_token")?;
    let info = app
        .tokens
        .authorize(
            token,
            signed.caller(),
            Some(name.as_str()),
            crate::clock::now(),
        )
        .await?;
    accounts::active_by_id(&app.db, info.account_id)
        .await?
        .ok_or(Error::AccessToken)
}

/// How one side names the other in its roster: its `des`, or its user name
/// when `des` is empty or holds characters the text rules refuse (a row
/// stored before they existed: such a nickname would break the XML stream or
/// show reversed).
fn nickname(a: &Account) -> &str {
    if a.des.is_empty() || check_text("des", &a.des).is_err() {
        &a.user_name
    } else {
        &a.des
    }
}

// ---------------------------------------------------------------- bind codes

fn new_code() -> String {
    random_bytes::<CODE_LEN>()
        .iter()
        .map(|b| CODE_ALPHABET[(b & 31) as usize] as char)
        .collect()
}

fn code_hash(code: &str) -> [u8; 32] {
    sha256(code.trim().to_ascii_uppercase().as_bytes())
}

async fn get_bind_code(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    let device = authorized(&app, &signed).await?;
    if !device.is_device() {
        return Err(Error::NotPermitted("only devices have bind codes"));
    }
    app.limits.bind_code.check(&device.id)?;
    let code = new_code();
    let ttl = app.config.binding.bind_code_ttl as i64;
    let expires_at = crate::clock::now() + ttl;
    bind_code::put(&app.db, device.id, &code_hash(&code), expires_at).await?;
    let uri = format!(
        "jidgate://bind?user_name={}&bind_code={code}&expires_at={expires_at}",
        crate::signing::encode(&device.user_name)
    );
    Ok(Reply::ok()
        .field("bind_code", &code)
        .field("expires_in", ttl)
        .field("expires_at", expires_at)
        .field("bind_uri", uri))
}

/// Checks a device's bind code without using it up (code 111 if wrong).
///
/// Every guess is paid for before it is compared, so that concurrent
/// guesses cannot overspend either limit: it takes a share of its client
/// address's budget (`failed_bind_code_per_ip_per_minute`, given back if the
/// code is right; 9 once spent) and one of the code's own five attempts.
async fn check_code(
    app: &App,
    ip: IpAddr,
    device_id: i64,
    code: Option<&str>,
) -> Result<[u8; 32], Error> {
    let share = app.limits.bind_code_fail_ip.reserve(&address_key(ip), 1)?;
    let code = code
        .filter(|c| !c.is_empty() && c.len() <= 16)
        .ok_or(Error::BindCode)?;
    let hash = code_hash(code);
    let now = crate::clock::now();
    let stored = match bind_code::attempt(&app.db, device_id, MAX_CODE_ATTEMPTS, now).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(Error::BindCode),
        Err(e) => {
            // Nothing was compared.
            share.refund();
            return Err(e);
        }
    };
    if !ct_eq(&hash, &stored.code_hash) {
        return Err(Error::BindCode);
    }
    share.refund();
    Ok(hash)
}

/// Logs in to the XMPP server as an account, with its stored password.
/// A refused password is 105; an unreachable server 112.
///
/// If the server refuses the stored JID password (someone changed it
/// behind jidgate's back, e.g. over XEP-0077 before in-band registration
/// was turned off), jidgate puts its own back with the admin
/// change-user-password command, logs a warning and logs in again: see
/// `repair_jid_password`.
pub async fn login_as(app: &App, account: &Account) -> Result<Session, Error> {
    let jid = account.jid(app.domain())?;
    let password = app
        .jid_cipher
        .decrypt(jid.as_str(), &account.jid_pwd_enc)
        .map_err(Error::Internal)?;
    let resource = format!(
        "{}-{}",
        app.config.xmpp.resource,
        crate::crypto::random_token::<6>()
    );
    let as_error = |e: XmppError| {
        if e.is_auth() {
            Error::JidPassword
        } else {
            Error::from(e)
        }
    };
    match app
        .xmpp
        .login(&jid, password.expose_secret(), &resource)
        .await
    {
        Ok(session) => return Ok(session),
        Err(e) if e.is_refused_password() => {}
        Err(e) => return Err(as_error(e)),
    }
    let password = repair_jid_password(app, account.id, &jid).await?;
    app.xmpp
        .login(&jid, password.expose_secret(), &resource)
        .await
        .map_err(as_error)
}

/// Sets the XMPP server's password of an account back to what jidgate
/// holds, and returns it.
///
/// What jidgate holds is read afresh: the pending `jid_pwd_next` if a
/// password change is being pushed (the server is about to get it
/// anyway, and whoever pushes it commits it), else the stored
/// `jid_pwd_enc`. Only active accounts are repaired (a `deleting`
/// account's JID is meant to be gone). If a concurrent change commits
/// or rolls back in between, the next refused login repairs again: the
/// server always converges on what the database says.
async fn repair_jid_password(app: &App, id: i64, jid: &BareJid) -> Result<SecretString, Error> {
    let fresh = accounts::by_id(&app.db, id)
        .await?
        .filter(Account::is_active)
        .ok_or(Error::JidPassword)?;
    let pending = fresh.jid_pwd_next.is_some();
    let blob = fresh.jid_pwd_next.as_ref().unwrap_or(&fresh.jid_pwd_enc);
    let password = app
        .jid_cipher
        .decrypt(jid.as_str(), blob)
        .map_err(Error::Internal)?;
    match app.provisioner.change_password(jid, &password).await {
        Ok(AdminOutcome::Done) => {
            tracing::warn!(
                account = id,
                %jid,
                pending,
                "the XMPP server refused the stored JID password (changed behind jidgate's \
                 back?); reset it with change-user-password"
            );
            Ok(password)
        }
        Ok(outcome) => {
            tracing::error!(
                account = id,
                %jid,
                ?outcome,
                "the XMPP server refused the stored JID password and could not reset it"
            );
            Err(Error::JidPassword)
        }
        Err(e) => {
            tracing::warn!(account = id, %jid, error = %e, "resetting a refused JID password failed");
            Err(e.into())
        }
    }
}

// ---------------------------------------------------------- XMPP pair work

/// XMPP sessions as accounts, opened on first use and reused within one
/// operation (a phone binding ten devices logs in once).
pub struct Sessions<'a> {
    app: &'a App,
    live: HashMap<i64, Session>,
}

impl<'a> Sessions<'a> {
    pub fn new(app: &'a App) -> Sessions<'a> {
        Sessions {
            app,
            live: HashMap::new(),
        }
    }

    async fn open(&mut self, account: &Account) -> Result<&Session, Error> {
        if self
            .live
            .get(&account.id)
            .is_some_and(|s| s.handle().is_closed())
        {
            self.live.remove(&account.id);
        }
        if !self.live.contains_key(&account.id) {
            let session = login_as(self.app, account).await?;
            self.live.insert(account.id, session);
        }
        Ok(&self.live[&account.id])
    }

    /// The roster of an account.
    pub async fn roster(
        &mut self,
        account: &Account,
    ) -> Result<Vec<xmpp_parsers::roster::Item>, Error> {
        let session = self.open(account).await?;
        Ok(roster::get(session).await?)
    }

    pub async fn close(self) {
        for (_, s) in self.live {
            s.close().await;
        }
    }
}

/// What a pair's rosters say, from both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairState {
    /// The owner's item for the device.
    pub owner_side: Option<ItemState>,
    /// The device's item for the owner.
    pub device_side: Option<ItemState>,
}

impl PairState {
    pub fn is_bound(&self) -> bool {
        self.owner_side
            .as_ref()
            .is_some_and(|s| s.is_bound_in(GROUP_DEVICES))
            && self
                .device_side
                .as_ref()
                .is_some_and(|s| s.is_bound_in(GROUP_OWNERS))
    }

    pub fn is_absent(&self) -> bool {
        self.owner_side.is_none() && self.device_side.is_none()
    }
}

/// Reads both rosters of a pair.
pub async fn pair_state(
    app: &App,
    sessions: &mut Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<PairState, Error> {
    let (oj, dj) = (owner.jid(app.domain())?, device.jid(app.domain())?);
    let owner_items = sessions.roster(owner).await?;
    let device_items = sessions.roster(device).await?;
    Ok(PairState {
        owner_side: roster::find(&owner_items, &dj).map(ItemState::of),
        device_side: roster::find(&device_items, &oj).map(ItemState::of),
    })
}

/// Makes both rosters of a pair bound: items with names and groups, then
/// the two one-way subscriptions; checked with roster gets on both sides.
/// Idempotent.
pub async fn establish(
    app: &App,
    sessions: &mut Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<(), Error> {
    let (oj, dj) = (owner.jid(app.domain())?, device.jid(app.domain())?);
    sessions.open(owner).await?;
    sessions.open(device).await?;
    let os = &sessions.live[&owner.id];
    let ds = &sessions.live[&device.id];
    roster::set_item(os, &dj, nickname(device), GROUP_DEVICES).await?;
    roster::set_item(ds, &oj, nickname(owner), GROUP_OWNERS).await?;
    roster::subscribe_one_way(os, &oj, ds, &dj).await?;
    app.faults.point("bind.half_way").await?;
    roster::subscribe_one_way(ds, &dj, os, &oj).await?;
    let state = pair_state(app, sessions, owner, device).await?;
    if !state.is_bound() {
        tracing::warn!(
            ?state,
            "roster handshake did not end in a mutual subscription"
        );
        return Err(Error::RosterRefused);
    }
    Ok(())
}

/// Removes both roster items of a pair (each removal cancels both
/// subscriptions). A side whose account is being deleted and whose JID no
/// longer logs in is already clean. Checked with roster gets.
pub async fn dissolve(
    app: &App,
    sessions: &mut Sessions<'_>,
    owner: &Account,
    device: &Account,
) -> Result<(), Error> {
    for (me, other) in [(owner, device), (device, owner)] {
        let other_jid = other.jid(app.domain())?;
        match sessions.open(me).await {
            Ok(session) => {
                roster::remove_item(session, &other_jid).await?;
                let items = roster::get(session).await?;
                if roster::find(&items, &other_jid).is_some() {
                    return Err(Error::Xmpp("roster item not removed".into()));
                }
            }
            Err(Error::JidPassword) if me.state == AccountState::Deleting => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The two accounts of a binding row (in any state).
pub async fn accounts_of(app: &App, b: &Binding) -> Result<(Account, Account), Error> {
    let owner = accounts::by_id(&app.db, b.owner_id).await?;
    let device = accounts::by_id(&app.db, b.device_id).await?;
    match (owner, device) {
        (Some(o), Some(d)) => Ok((o, d)),
        _ => Err(Error::internal(anyhow::anyhow!(
            "binding {} without its accounts",
            b.id
        ))),
    }
}

/// Unbinds a row fully: rosters, then the row.
pub async fn unbind_row(app: &App, sessions: &mut Sessions<'_>, b: &Binding) -> Result<(), Error> {
    let (owner, device) = accounts_of(app, b).await?;
    store::mark_unbinding(&app.db, b.id, crate::clock::now()).await?;
    dissolve(app, sessions, &owner, &device).await?;
    store::delete(&app.db, b.id).await
}

/// Removes a deleted account from every roster it was bound into. True when
/// no binding is left.
pub async fn forget_account(app: &App, account: &Account) -> Result<bool, Error> {
    let rows = store::of_account(&app.db, account.id).await?;
    let mut sessions = Sessions::new(app);
    let mut all = true;
    for b in &rows {
        if let Err(e) = unbind_row(app, &mut sessions, b).await {
            tracing::warn!(error = %e, binding = b.id, "unbinding a deleted account left for the reconciler");
            all = false;
        }
    }
    sessions.close().await;
    Ok(all)
}

// ------------------------------------------------------------ the handlers

/// One name's outcome in a list call.
#[derive(Debug, Serialize)]
pub struct ItemResult {
    pub user_name: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl ItemResult {
    fn of(name: &str, r: Result<(), Error>) -> ItemResult {
        if let Err(e @ (Error::Db(_) | Error::Internal(_))) = &r {
            tracing::error!(error = ?e, "binding item failed");
        }
        ItemResult {
            user_name: name.to_owned(),
            outcome: Outcome::of(&r),
        }
    }
}

/// `result` of a list call: 0 if every item succeeded, else the first
/// failing item's code; `result_ls` has every item.
fn list_reply(items: Vec<ItemResult>) -> Reply {
    let overall = items
        .iter()
        .map(|i| i.outcome.result)
        .find(|c| *c != 0)
        .unwrap_or(0);
    Reply::with_result(overall).field("result_ls", items)
}

async fn set_binding(
    State(app): State<App>,
    ClientIp(ip): ClientIp,
    signed: Signed,
) -> Result<Reply, Error> {
    let p = &signed.params;
    let names = parse_name_list(p.required("user_name_ls")?, app.config.binding.max_names)?;
    let codes: Vec<Option<String>> = match app.config.binding.proof {
        BindProof::BindCode => {
            let codes = parse_string_list(
                p.required("bind_code_ls")?,
                "bind_code_ls",
                app.config.binding.max_names,
            )?;
            if codes.len() != names.len() {
                return Err(Error::Params(
                    "bind_code_ls must have one code per name in user_name_ls".into(),
                ));
            }
            codes.into_iter().map(Some).collect()
        }
        BindProof::None => vec![None; names.len()],
    };
    let owner = authorized(&app, &signed).await?;
    if owner.is_device() {
        return Err(Error::NotPermitted("devices do not bind; their owners do"));
    }
    let mut sessions = Sessions::new(&app);
    let mut items = Vec::with_capacity(names.len());
    for (name, code) in names.iter().zip(&codes) {
        let r = bind_one(&app, &mut sessions, ip, &owner, name, code.as_deref()).await;
        items.push(ItemResult::of(name, r));
    }
    sessions.close().await;
    Ok(list_reply(items))
}

async fn bind_one(
    app: &App,
    sessions: &mut Sessions<'_>,
    ip: IpAddr,
    owner: &Account,
    name: &str,
    code: Option<&str>,
) -> Result<(), Error> {
    let device = accounts::active_by_name(&app.db, name)
        .await?
        .ok_or(Error::UnknownUser)?;
    if device.id == owner.id {
        return Err(Error::NotPermitted("cannot bind oneself"));
    }
    if !device.is_device() {
        return Err(Error::NotPermitted("only devices can be bound"));
    }
    if store::of_pair(&app.db, owner.id, device.id)
        .await?
        .is_some_and(|b| b.state == BindingState::Bound)
    {
        return Err(Error::AlreadyBound);
    }
    if app.config.binding.proof == BindProof::BindCode {
        let hash = check_code(app, ip, device.id, code).await?;
        if !bind_code::take(&app.db, device.id, &hash).await? {
            return Err(Error::BindCode);
        }
    }
    let id = store::begin(&app.db, owner.id, device.id, crate::clock::now()).await?;
    if let Err(e) = establish(app, sessions, owner, &device).await {
        // Leave nothing half-done if the server lets us; else the row stays
        // `binding` and the reconciler removes what was made.
        if !matches!(e, Error::Internal(_)) && dissolve(app, sessions, owner, &device).await.is_ok()
        {
            store::delete(&app.db, id).await?;
        }
        return Err(e);
    }
    store::transition(
        &app.db,
        id,
        BindingState::Binding,
        BindingState::Bound,
        crate::clock::now(),
    )
    .await?;
    tracing::info!(binding = id, "bound");
    Ok(())
}

async fn set_unbinding(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    let p = &signed.params;
    let names = parse_name_list(p.required("user_name_ls")?, app.config.binding.max_names)?;
    let me = authorized(&app, &signed).await?;
    let mut sessions = Sessions::new(&app);
    let mut items = Vec::with_capacity(names.len());
    for name in &names {
        let r = unbind_one(&app, &mut sessions, &me, name).await;
        items.push(ItemResult::of(name, r));
    }
    sessions.close().await;
    Ok(list_reply(items))
}

async fn unbind_one(
    app: &App,
    sessions: &mut Sessions<'_>,
    me: &Account,
    name: &str,
) -> Result<(), Error> {
    let other = accounts::active_by_name(&app.db, name)
        .await?
        .ok_or(Error::UnknownUser)?;
    if other.id == me.id {
        return Err(Error::NotPermitted("cannot unbind oneself"));
    }
    let (owner_id, device_id) = if me.is_device() {
        (other.id, me.id)
    } else {
        (me.id, other.id)
    };
    let b = store::of_pair(&app.db, owner_id, device_id)
        .await?
        .ok_or(Error::NotBound)?;
    unbind_row(app, sessions, &b).await?;
    tracing::info!(binding = b.id, "unbound");
    Ok(())
}

/// A roster item as the seed's `roster_item` template has it.
#[derive(Debug, Serialize)]
pub struct RosterItem {
    pub jid: String,
    #[serde(rename = "subscriptionType")]
    pub subscription_type: String,
    pub nickname: String,
    pub groups: Vec<String>,
    pub user_name: String,
}

/// A disagreement between the database and the XMPP server.
#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct Drift {
    pub user_name: String,
    pub jid: String,
    /// `bound`, `binding`, `unbinding`, or `none` (not in the database).
    pub database: String,
    /// The item's subscription on this account's roster, or `missing`.
    pub xmpp: String,
}

async fn get_binding(State(app): State<App>, signed: Signed) -> Result<Reply, Error> {
    let me = authorized(&app, &signed).await?;
    // Each call logs in to the XMPP server as the user.
    app.limits.roster_read.check(&me.id)?;
    let mut sessions = Sessions::new(&app);
    let items = sessions.roster(&me).await;
    sessions.close().await;
    let items = items?;
    let my_group = if me.is_device() {
        GROUP_OWNERS
    } else {
        GROUP_DEVICES
    };

    // Every binding row of mine, by the other side's JID.
    let mut rows: HashMap<BareJid, (Account, BindingState)> = HashMap::new();
    for b in store::of_account(&app.db, me.id).await? {
        let (owner, device) = accounts_of(&app, &b).await?;
        let other = if owner.id == me.id { device } else { owner };
        rows.insert(other.jid(app.domain())?, (other, b.state));
    }

    let mut roster_items = Vec::new();
    let mut drift = Vec::new();
    for item in &items {
        let state = ItemState::of(item);
        let counterpart = counterpart_of(&app, &me, &item.jid).await?;
        let managed = counterpart.is_some() || state.groups.iter().any(|g| g == my_group);
        if !managed {
            continue;
        }
        let user_name = counterpart
            .as_ref()
            .map(|a| a.user_name.clone())
            .unwrap_or_default();
        match rows.get(&item.jid) {
            Some((_, BindingState::Bound)) if state.is_bound_in(my_group) => {}
            Some((_, db_state)) => drift.push(Drift {
                user_name: user_name.clone(),
                jid: item.jid.to_string(),
                database: db_state.as_str().to_owned(),
                xmpp: state.subscription.clone(),
            }),
            None => drift.push(Drift {
                user_name: user_name.clone(),
                jid: item.jid.to_string(),
                database: "none".into(),
                xmpp: state.subscription.clone(),
            }),
        }
        roster_items.push(RosterItem {
            jid: item.jid.to_string(),
            subscription_type: state.subscription,
            nickname: state.nickname,
            groups: state.groups,
            user_name,
        });
    }
    for (jid, (other, db_state)) in &rows {
        if roster::find(&items, jid).is_none() {
            drift.push(Drift {
                user_name: other.user_name.clone(),
                jid: jid.to_string(),
                database: db_state.as_str().to_owned(),
                xmpp: "missing".into(),
            });
        }
    }
    drift.sort_by(|a, b| a.jid.cmp(&b.jid));
    Ok(Reply::ok()
        .field("consistent", drift.is_empty())
        .field("roster_item", roster_items)
        .field("drift_ls", drift))
}

/// The account behind a roster JID, if it is one jidgate manages as the
/// other side of a binding with `me` (a device for owners, an owner for
/// devices).
pub async fn counterpart_of(
    app: &App,
    me: &Account,
    jid: &BareJid,
) -> Result<Option<Account>, Error> {
    if jid.domain().as_str() != app.config.xmpp.domain {
        return Ok(None);
    }
    let Some(node) = jid.node() else {
        return Ok(None);
    };
    let Some(other) = accounts::by_jid_local(&app.db, node.as_str()).await? else {
        return Ok(None);
    };
    Ok((other.is_device() != me.is_device()).then_some(other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_alphabet_and_compare_case_insensitively() {
        let c = new_code();
        assert_eq!(c.len(), CODE_LEN);
        assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{c}");
        assert_eq!(code_hash(&c), code_hash(&c.to_ascii_lowercase()));
        assert_ne!(code_hash(&c), code_hash(&new_code()));
    }

    #[test]
    fn list_result_is_the_first_failure() {
        let items = vec![
            ItemResult::of("a", Ok(())),
            ItemResult::of("b", Err(Error::AlreadyBound)),
            ItemResult::of("c", Err(Error::UnknownUser)),
        ];
        let r = list_reply(items).into_map();
        assert_eq!(r["result"], 109);
        assert_eq!(r["result_ls"][2]["result"], 104);
        assert_eq!(r["result_ls"][0]["result"], 0);
    }
}
