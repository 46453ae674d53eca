//! `user.block(uid)`, `user.unblock(uid)`, `user.block_list()`: XEP-0191
//! on the XMPP server, so a blocked user's messages stop there, for every
//! client of the user.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Parm;
use crate::facade::envelope::Failure;
use crate::facade::live::Live;
use crate::xmpp::blocking;

pub async fn block(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let jid = live.names.jid_of(live.app(), uid).await?;
    blocking::block(&live.xmpp()?, &jid).await?;
    Ok(json!({"uid": uid}))
}

pub async fn unblock(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let uid = p.text("uid")?;
    let jid = live.names.jid_of(live.app(), uid).await?;
    blocking::unblock(&live.xmpp()?, &jid).await?;
    Ok(json!({"uid": uid}))
}

pub async fn list(live: &Arc<Live>) -> Result<Value, Failure> {
    let mut uids = Vec::new();
    for jid in blocking::list(&live.xmpp()?).await? {
        uids.push(live.names.uid_of(live.app(), &jid).await);
    }
    Ok(json!({"uids": uids}))
}
