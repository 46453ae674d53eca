//! `message.read(with, before, after, count)`: history from the XMPP
//! server's archive (XEP-0313), backwards from `before` (default: the
//! newest) or forwards from `after`, at most `count`. Paging ids are the
//! archive's (`mamid` of each item). The query runs on a short session of
//! its own (see `xmpp::mam`).

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};
use xmpp_parsers::jid::BareJid;

use super::Parm;
use crate::binding::login_with;
use crate::crypto::random_token;
use crate::facade::envelope::Failure;
use crate::facade::live::Live;
use crate::facade::newmsg::message_json;
use crate::xmpp::chat::{self, Incoming};
use crate::xmpp::mam::{self, Archived, Page};
use crate::xmpp::{Session, SessionOptions};

pub async fn read(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let with = p.text("with")?;
    let before = p.opt_text("before")?;
    let after = p.opt_text("after")?;
    let page = match (before, after) {
        (Some(_), Some(_)) => return Err(Failure::parm("before or after, not both")),
        (None, Some(a)) => Page::After(a.to_owned()),
        (b, None) => Page::Before(b.filter(|b| !b.is_empty()).map(str::to_owned)),
    };
    let count = p.count(live, 20)? as usize;
    let app = live.app();
    let jid = live.names.jid_of(app, with).await?;
    let resource = format!("facade-history-{}", random_token::<6>());
    let mut session = login_with(app, &live.account, &resource, SessionOptions::default()).await?;
    let found = collect(live, &mut session, &jid, page, count).await;
    session.close().await;
    let (messages, complete) = found?;
    let first = messages.first().map(|m| m["mamid"].clone());
    let last = messages.last().map(|m| m["mamid"].clone());
    Ok(json!({"messages": messages, "complete": complete, "first": first, "last": last}))
}

/// Archive pages a query reads at most for one call (receipts, markers
/// and chat states are archived by some servers and count in a page).
const MAX_ROUNDS: usize = 5;

/// Chat messages (oldest first) until `count` or the archive's end.
async fn collect(
    live: &Arc<Live>,
    session: &mut Session,
    jid: &BareJid,
    mut page: Page,
    count: usize,
) -> Result<(Vec<Value>, bool), Failure> {
    let backwards = matches!(page, Page::Before(_));
    let mut out: VecDeque<Value> = VecDeque::new();
    let mut complete = false;
    for _ in 0..MAX_ROUNDS {
        let found = mam::query(session, Some(jid), page.clone(), count).await?;
        let (Some(first), Some(last)) = (found.items.first(), found.items.last()) else {
            complete = true;
            break;
        };
        page = if backwards {
            Page::Before(Some(first.archive_id.clone()))
        } else {
            Page::After(last.archive_id.clone())
        };
        let mut chats = Vec::new();
        for item in &found.items {
            if let Some(m) = to_json(live, item).await {
                chats.push(m);
            }
        }
        if backwards {
            for m in chats.into_iter().rev() {
                out.push_front(m);
            }
        } else {
            out.extend(chats);
        }
        complete = found.complete;
        if complete || out.len() >= count {
            break;
        }
    }
    while out.len() > count {
        complete = false;
        if backwards {
            out.pop_front();
        } else {
            out.pop_back();
        }
    }
    Ok((out.into(), complete))
}

/// A chat message of the archive as history shows it (`None` for
/// receipts, markers, chat states).
async fn to_json(live: &Arc<Live>, item: &Archived) -> Option<Value> {
    let Some(Incoming::Chat { chat, .. }) = chat::read(&item.message, || item.archive_id.clone())
    else {
        return None;
    };
    let from = item.message.from.as_ref().map(|f| f.to_bare());
    let uid = match from {
        Some(f) if f != live.me => live.names.uid_of(live.app(), &f).await,
        _ => live.uid.clone(),
    };
    let mut m = message_json(&chat, &uid, item.stamp.unwrap_or(0), false);
    m["mamid"] = json!(item.archive_id);
    Some(m)
}
