//! `user.info(uid)`: public information of a user, with the profile from
//! their vCard (online state and last seen only for friends);
//! `user.update(...)` writes the user's own vCard (XEP-0054) so plain
//! XMPP clients see it; `user.search(q, count)`. Never anyone's
//! password, JID password or token.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Parm;
use crate::db::{account, facade as store};
use crate::facade::envelope::{Failure, errno};
use crate::facade::live::{Live, lock};
use crate::fields::UserName;
use crate::xmpp::vcard::{self, Profile};

fn profile_json(out: &mut Value, p: Profile) {
    for (k, v) in [
        ("nick", p.nick),
        ("avatar", p.avatar),
        ("sex", p.sex),
        ("birthday", p.birthday),
        ("signature", p.signature),
    ] {
        out[k] = json!(v);
    }
}

/// The session's own user.
pub async fn own_info(live: &Arc<Live>) -> Result<Value, Failure> {
    let a = &live.account;
    let mut out = json!({
        "uid": a.user_name,
        "type": a.type_,
        "des": a.des,
        "jid": live.me.to_string(),
    });
    profile_json(&mut out, vcard::get(&live.xmpp()?, None).await?);
    Ok(out)
}

/// `user.info(uid)`; without `uid`, the session's own user.
pub async fn info(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let Some(uid) = p.opt_text("uid")?.filter(|u| !u.is_empty()) else {
        return own_info(live).await;
    };
    let app = live.app();
    let jid = live.names.jid_of(app, uid).await?;
    if jid == live.me {
        return own_info(live).await;
    }
    let mut out = json!({"uid": uid, "jid": jid.to_string()});
    if let Some(local) = jid.node().filter(|_| jid.domain().as_str() == app.domain()) {
        let acc = account::by_jid_local(&app.db, local.as_str())
            .await?
            .filter(|a| a.is_active())
            .ok_or_else(|| Failure::new(errno::NO_TARGET, "no such user"))?;
        out["type"] = json!(acc.type_);
        out["des"] = json!(acc.des);
    }
    profile_json(&mut out, vcard::get(&live.xmpp()?, Some(&jid)).await?);
    if live.is_friend(&jid) {
        let (on, seen) = lock(&live.online).get(&jid).copied().unwrap_or((false, 0));
        out["online"] = json!(on);
        out["last_seen"] = json!(seen);
    }
    Ok(out)
}

/// `user.update(nick, avatar, sex, birthday, signature)`: the given
/// fields; the others stay.
pub async fn update(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    // The profile read at login is no longer the one to show.
    lock(&live.first_user).take();
    let sex = match p.opt_u64("sex")? {
        None => None,
        Some(s @ 0..=2) => Some(s.to_string()),
        Some(_) => return Err(Failure::parm("sex: 0, 1 or 2")),
    };
    let birthday = p.opt_text("birthday")?;
    if let Some(b) = birthday {
        let ok = b.len() == 10
            && b.bytes().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !ok {
            return Err(Failure::parm("birthday: YYYY-MM-DD"));
        }
    }
    let avatar = p.opt_text("avatar")?;
    if avatar.is_some_and(|a| !(a.starts_with("https://") || a.starts_with("http://"))) {
        return Err(Failure::parm("avatar: an http or https URL"));
    }
    let changes = Profile {
        nick: p.opt_text("nick")?.map(str::to_owned),
        avatar: avatar.map(str::to_owned),
        sex,
        birthday: birthday.map(str::to_owned),
        signature: p.opt_text("signature")?.map(str::to_owned),
    };
    let stored = vcard::update(&live.xmpp()?, &changes).await?;
    let mut out = json!({"uid": live.uid});
    profile_json(&mut out, stored);
    Ok(out)
}

/// Shortest prefix `user.search` looks up (with `facade.search_prefix`).
const MIN_PREFIX: usize = 4;
/// Most users one search returns.
const MAX_SEARCH: i64 = 20;

/// `user.search(q, count)`: the user named exactly `q` (a user name or
/// phone number); with `facade.search_prefix`, names starting with `q`.
pub async fn search(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let q = p.text("q")?;
    let name = UserName::parse_any(q).map_err(|_| Failure::parm("q: a user name"))?;
    let app = live.app();
    let count = p.count(live, 10)?.min(MAX_SEARCH);
    let names = if app.config.facade.search_prefix && q.len() >= MIN_PREFIX {
        store::names_with_prefix(&app.db, name.as_str(), count).await?
    } else {
        account::active_by_name(&app.db, name.as_str())
            .await?
            .map(|a| a.user_name)
            .into_iter()
            .collect()
    };
    let users: Vec<Value> = names.into_iter().map(|n| json!({"uid": n})).collect();
    Ok(json!({"users": users}))
}
