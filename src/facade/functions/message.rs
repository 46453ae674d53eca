//! `message.*`: 1:1 chat over XMPP. `message.send` (text, image, voice,
//! video, file, location; `xmpp::chat` says how each is carried),
//! `message.typing` (XEP-0085), `message.mark_read` (XEP-0333, and the
//! unread count goes to zero).

use std::sync::Arc;

use serde_json::{Value, json};
use xmpp_parsers::chatstates::ChatState;

use super::Parm;
use crate::clock::now;
use crate::crypto::random_token;
use crate::facade::envelope::{Failure, errno};
use crate::facade::live::Live;
use crate::xmpp::chat::{self, Chat, Kind, Media};

/// `message.send(to, type, content, size, duration, width, height, name,
/// lat, lng)`: returns `msgid` (the stanza id) and the server `time`.
pub async fn send(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let to = p.text("to")?;
    let kind = match p.opt_text("type")? {
        None => Kind::Text,
        Some(t) => Kind::parse(t)
            .ok_or_else(|| Failure::parm("type: text, image, voice, video, file or location"))?,
    };
    let location = match kind {
        Kind::Location => {
            let lat = p.opt_f64("lat")?.filter(|v| (-90.0..=90.0).contains(v));
            let lng = p.opt_f64("lng")?.filter(|v| (-180.0..=180.0).contains(v));
            match (lat, lng) {
                (Some(lat), Some(lng)) => Some((lat, lng)),
                _ => return Err(Failure::parm("lat, lng: a location needs both")),
            }
        }
        _ => None,
    };
    let content = match kind {
        Kind::Location => p.opt_text("content")?.unwrap_or("").to_owned(),
        Kind::Text => p.text("content")?.to_owned(),
        _ => {
            let url = p.text("content")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(Failure::parm("content: the media URL (http or https)"));
            }
            url.to_owned()
        }
    };
    let jid = live.names.jid_of(live.app(), to).await?;
    if live.app().config.facade.friends_only && !live.is_friend(&jid) {
        return Err(Failure::new(errno::NOT_FRIEND, "not a friend"));
    }
    let chat = Chat {
        id: random_token::<12>(),
        kind,
        content,
        media: Media {
            size: p.opt_u64("size")?,
            duration: p.opt_u64("duration")?,
            width: p.opt_u64("width")?,
            height: p.opt_u64("height")?,
            name: p.opt_text("name")?.map(str::to_owned),
        },
        location,
    };
    live.xmpp()?.send(chat::build(&jid, &chat)).await?;
    Ok(json!({"msgid": chat.id, "time": now()}))
}

/// `message.typing(to, state)`: composing, paused, active, inactive, gone.
pub async fn typing(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let to = p.text("to")?;
    let state = match p.opt_text("state")?.unwrap_or("composing") {
        "composing" => ChatState::Composing,
        "paused" => ChatState::Paused,
        "active" => ChatState::Active,
        "inactive" => ChatState::Inactive,
        "gone" => ChatState::Gone,
        _ => {
            return Err(Failure::parm(
                "state: composing, paused, active, inactive or gone",
            ));
        }
    };
    let jid = live.names.jid_of(live.app(), to).await?;
    live.xmpp()?.send(chat::state(&jid, state)).await?;
    Ok(json!({}))
}

/// `message.mark_read(with, msgid)`: everything from `with` up to `msgid`
/// is read; the sender gets a displayed marker.
pub async fn mark_read(live: &Arc<Live>, p: &Parm<'_>) -> Result<Value, Failure> {
    let with = p.text("with")?;
    let msgid = p.text("msgid")?;
    let jid = live.names.jid_of(live.app(), with).await?;
    live.xmpp()?.send(chat::displayed(&jid, msgid)).await?;
    live.facade.unread.clear(live.account.id, with).await?;
    Ok(json!({}))
}
