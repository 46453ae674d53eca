//! An account's bindings as `/get_user_banding` shows them: its roster read
//! from the XMPP server, beside the database, with every disagreement.

use std::collections::HashMap;

use serde::Serialize;
use tracing::instrument;
use xmpp_parsers::jid::BareJid;

use super::pair::{GROUP_DEVICES, GROUP_OWNERS, accounts_of, counterpart_of};
use super::sessions::Sessions;
use crate::app::App;
use crate::db::binding as store;
use crate::db::{Account, BindingState};
use crate::error::Error;
use crate::xmpp::roster::{self, ItemState};

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

/// An account's bindings, both sides of the story.
#[derive(Debug, Serialize)]
pub struct View {
    /// No disagreement.
    pub consistent: bool,
    pub roster_item: Vec<RosterItem>,
    pub drift_ls: Vec<Drift>,
}

/// What `me`'s roster and the database say about its bindings: the
/// roster items jidgate manages (the other side of a binding, or an item in
/// the binding group), and where the two disagree.
#[instrument(name = "roster_view", skip_all, err(level = "debug"))]
pub async fn of(app: &App, me: &Account) -> Result<View, Error> {
    let sessions = Sessions::new(app);
    let items = sessions.roster(me).await;
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
        let (owner, device) = accounts_of(app, &b).await?;
        let other = if owner.id == me.id { device } else { owner };
        rows.insert(other.jid(app.domain())?, (other, b.state));
    }

    let mut roster_items = Vec::new();
    let mut drift = Vec::new();
    for item in &items {
        let state = ItemState::of(item);
        let counterpart = counterpart_of(app, me, &item.jid).await?;
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
    Ok(View {
        consistent: drift.is_empty(),
        roster_item: roster_items,
        drift_ls: drift,
    })
}
