//! XEP-0191: Blocking Command. The server drops what blocked JIDs send
//! and hides our presence from them.

use xmpp_parsers::blocking::{Block, BlocklistRequest, BlocklistResult, Unblock};
use xmpp_parsers::jid::{BareJid, Jid};

use super::{IqRequest, SessionHandle, XmppError};

/// Blocks `jid`.
pub async fn block(session: &SessionHandle, jid: &BareJid) -> Result<(), XmppError> {
    let b = Block {
        items: vec![Jid::from(jid.clone())],
    };
    session.iq(None, IqRequest::Set(b.into())).await?;
    Ok(())
}

/// Unblocks `jid`.
pub async fn unblock(session: &SessionHandle, jid: &BareJid) -> Result<(), XmppError> {
    let u = Unblock {
        items: vec![Jid::from(jid.clone())],
    };
    session.iq(None, IqRequest::Set(u.into())).await?;
    Ok(())
}

/// The blocked JIDs.
pub async fn list(session: &SessionHandle) -> Result<Vec<BareJid>, XmppError> {
    let reply = session
        .iq(None, IqRequest::Get(BlocklistRequest.into()))
        .await?;
    let items = reply
        .and_then(|el| BlocklistResult::try_from(el).ok())
        .map(|r| r.items)
        .unwrap_or_default();
    Ok(items.into_iter().map(|j| j.to_bare()).collect())
}
