//! Users as the facade names them: `uid` = a jidgate `user_name`, or the
//! bare JID of a contact with no jidgate account. Anything else in a `to`
//! or `uid` (a resource, markup, an unknown name) is refused, so a client
//! can only ever address a bare JID.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xmpp_parsers::jid::BareJid;

use super::envelope::{Failure, errno};
use crate::app::App;
use crate::db::account;
use crate::fields::UserName;

/// Longest `uid` accepted (a bare JID is at most 3 × 1023 bytes; ours are
/// far shorter).
const MAX_UID: usize = 512;

/// Entries each map keeps at most (past it, it starts again empty).
const MAX_ENTRIES: usize = 10_000;

/// How long a uid found in the database is taken to name the same JID
/// without asking again: a chat sends many messages to one uid, and the
/// look-up would otherwise cost a database round trip per message. An
/// account cancelled meanwhile is still addressed for at most this long;
/// the XMPP server then answers for it (its JID is gone).
const UID_TTL: Duration = Duration::from_secs(30);

/// Maps uids and JIDs both ways, remembering what it looked up.
#[derive(Default)]
pub struct Names {
    by_jid: Mutex<HashMap<BareJid, String>>,
    by_uid: Mutex<HashMap<String, (BareJid, Instant)>>,
}

impl Names {
    fn remember(&self, jid: &BareJid, uid: &str) {
        let mut m = self.by_jid.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > MAX_ENTRIES {
            m.clear();
        }
        m.insert(jid.clone(), uid.to_owned());
    }

    /// `uid` as a client wrote it, looked up within [`UID_TTL`].
    fn recent(&self, uid: &str) -> Option<BareJid> {
        let m = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        m.get(uid)
            .filter(|(_, at)| at.elapsed() < UID_TTL)
            .map(|(jid, _)| jid.clone())
    }

    fn found(&self, uid: &str, jid: &BareJid, user_name: &str) {
        self.remember(jid, user_name);
        let mut m = self.by_uid.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > MAX_ENTRIES {
            m.clear();
        }
        m.insert(uid.to_owned(), (jid.clone(), Instant::now()));
    }

    /// The JID a client-given `uid` names: 3 if no such user, a parameter
    /// error if it is not a uid at all.
    pub async fn jid_of(&self, app: &App, uid: &str) -> Result<BareJid, Failure> {
        if uid.is_empty() || uid.len() > MAX_UID {
            return Err(Failure::parm("uid: a user name or a bare JID"));
        }
        if let Some(jid) = self.recent(uid) {
            return Ok(jid);
        }
        if uid.contains('@') {
            let jid = BareJid::new(uid)
                .ok()
                .filter(|j| j.node().is_some() && j.as_str() == uid)
                .ok_or_else(|| Failure::parm("uid: a bare JID, without resource"))?;
            if jid.domain().as_str() == app.domain() {
                // Ours: only an account's JID.
                let local = jid.node().map(|n| n.as_str()).unwrap_or_default();
                let acc = account::by_jid_local(&app.db, local)
                    .await?
                    .filter(|a| a.is_active())
                    .ok_or_else(|| Failure::new(errno::NO_TARGET, "no such user"))?;
                self.found(uid, &jid, &acc.user_name);
            }
            return Ok(jid);
        }
        let name = UserName::parse_any(uid).map_err(|_| Failure::parm("uid: not a user name"))?;
        let acc = account::active_by_name(&app.db, name.as_str())
            .await?
            .ok_or_else(|| Failure::new(errno::NO_TARGET, "no such user"))?;
        let jid = acc.jid(app.domain())?;
        self.found(uid, &jid, &acc.user_name);
        Ok(jid)
    }

    /// The uid of a JID: its account's user name, else the bare JID.
    pub async fn uid_of(&self, app: &App, jid: &BareJid) -> String {
        if let Some(uid) = self
            .by_jid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(jid)
        {
            return uid.clone();
        }
        let uid = match jid.node() {
            Some(local) if jid.domain().as_str() == app.domain() => {
                match account::by_jid_local(&app.db, local.as_str()).await {
                    Ok(Some(acc)) => acc.user_name,
                    _ => jid.to_string(),
                }
            }
            _ => jid.to_string(),
        };
        self.remember(jid, &uid);
        uid
    }
}
