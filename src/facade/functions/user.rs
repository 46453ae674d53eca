//! `user.info(uid)`: public information of a user (online state and last
//! seen only for friends). Never anyone's password, JID password or token.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Parm;
use crate::db::account;
use crate::facade::envelope::{Failure, errno};
use crate::facade::live::{Live, lock};

/// The session's own user.
pub async fn own_info(live: &Arc<Live>) -> Result<Value, Failure> {
    let a = &live.account;
    Ok(json!({
        "uid": a.user_name,
        "type": a.type_,
        "des": a.des,
        "jid": live.me.to_string(),
    }))
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
    if live.is_friend(&jid) {
        let (on, seen) = lock(&live.online).get(&jid).copied().unwrap_or((false, 0));
        out["online"] = json!(on);
        out["last_seen"] = json!(seen);
    }
    Ok(out)
}
