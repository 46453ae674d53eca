//! RFC 6121: rosters and presence subscriptions, done the standard way, by
//! logging in as each side. This works on every XMPP server, unlike
//! server-specific roster APIs (Openfire's REST roster calls change one
//! side only).
//!
//! A mutual subscription (`both`) between A and B is made of two one-way
//! subscriptions: A sends `subscribe`, B answers `subscribed`, and the same
//! the other way round. A roster get after each step is a barrier: the
//! server processes one stream's stanzas in order, so when the result comes
//! back the presence before it has been handled.
//!
//! Every function takes a [`SessionHandle`] (a [`super::Session`] derefs to
//! its own): many of them may run at once on one stream, their IQs
//! pipelined.

use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::roster::{Group, Item, Roster, Subscription};

use super::{IqRequest, SessionHandle, XmppError};

/// Fetches the roster. RFC 6121 §2.1.3.
pub async fn get(session: &SessionHandle) -> Result<Vec<Item>, XmppError> {
    let query = Roster {
        ver: None,
        items: vec![],
    };
    let reply = session.iq(None, IqRequest::Get(query.into())).await?;
    let Some(payload) = reply else {
        // An empty result means "unchanged since ver", which we never send.
        return Ok(vec![]);
    };
    let roster = Roster::try_from(payload)
        .map_err(|e| XmppError::Protocol(format!("bad roster result: {e}")))?;
    Ok(roster.items)
}

fn one_item(item: Item) -> Element {
    Roster {
        ver: None,
        items: vec![item],
    }
    .into()
}

/// Adds or updates an item's name and groups. RFC 6121 §2.1.5.
pub async fn set_item(
    session: &SessionHandle,
    jid: &BareJid,
    name: &str,
    group: &str,
) -> Result<(), XmppError> {
    session
        .iq(None, IqRequest::Set(set_item_query(jid, name, group)))
        .await?;
    Ok(())
}

/// The roster query [`set_item`] sends: the nickname and group go out as
/// text (the fuzz target `stanza` checks they come back identical).
pub fn set_item_query(jid: &BareJid, name: &str, group: &str) -> Element {
    one_item(Item {
        jid: jid.clone(),
        name: (!name.is_empty()).then(|| name.to_owned()),
        subscription: Subscription::None,
        ask: Default::default(),
        groups: vec![Group(group.to_owned())],
        approved: None,
    })
}

/// Sets an item as given (name and groups; the subscription is the
/// server's). RFC 6121 §2.1.5.
pub async fn set(session: &SessionHandle, item: Item) -> Result<(), XmppError> {
    session.iq(None, IqRequest::Set(one_item(item))).await?;
    Ok(())
}

/// Removes an item; the server cancels both subscriptions. RFC 6121 §2.5.
/// Removing an item that is not there is not an error.
pub async fn remove_item(session: &SessionHandle, jid: &BareJid) -> Result<(), XmppError> {
    let item = Item {
        jid: jid.clone(),
        name: None,
        subscription: Subscription::Remove,
        ask: Default::default(),
        groups: vec![],
        approved: None,
    };
    match session.iq(None, IqRequest::Set(one_item(item))).await {
        Ok(_) => Ok(()),
        Err(XmppError::Stanza(e))
            if e.defined_condition
                == xmpp_parsers::stanza_error::DefinedCondition::ItemNotFound =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn presence(
    session: &SessionHandle,
    to: &BareJid,
    type_: PresenceType,
) -> Result<(), XmppError> {
    let mut p = Presence::new(type_);
    p.to = Some(to.clone().into());
    session.send(p).await
}

/// `a` subscribes to `b`'s presence and `b` approves (RFC 6121 §3.1): after
/// this, `a` has `b` as `to` (or `both`) and `b` has `a` as `from` (or
/// `both`). A roster get after each presence is a barrier, so the server has
/// handled the request before the approval arrives from the other stream.
pub async fn subscribe_one_way(
    a: &SessionHandle,
    a_jid: &BareJid,
    b: &SessionHandle,
    b_jid: &BareJid,
) -> Result<(), XmppError> {
    presence(a, b_jid, PresenceType::Subscribe).await?;
    get(a).await?;
    presence(b, a_jid, PresenceType::Subscribed).await?;
    get(b).await?;
    Ok(())
}

/// What a roster says about one contact, reduced to what bindings care for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    pub subscription: String,
    pub nickname: String,
    pub groups: Vec<String>,
}

impl ItemState {
    pub fn of(item: &Item) -> ItemState {
        ItemState {
            subscription: subscription_name(&item.subscription).to_owned(),
            nickname: item.name.clone().unwrap_or_default(),
            groups: item.groups.iter().map(|g| g.0.clone()).collect(),
        }
    }

    /// A complete binding entry: mutual subscription in the expected group.
    pub fn is_bound_in(&self, group: &str) -> bool {
        self.subscription == "both" && self.groups.iter().any(|g| g == group)
    }
}

/// The RFC 6121 name of a subscription state.
pub fn subscription_name(s: &Subscription) -> &'static str {
    match s {
        Subscription::None => "none",
        Subscription::From => "from",
        Subscription::To => "to",
        Subscription::Both => "both",
        Subscription::Remove => "remove",
    }
}

/// Finds `jid` in a roster.
pub fn find<'i>(items: &'i [Item], jid: &BareJid) -> Option<&'i Item> {
    items.iter().find(|i| &i.jid == jid)
}
