//! XEP-0313: Message Archive Management, the one-to-one archive of the
//! logged-in user, paged with XEP-0059 result set management.
//!
//! Results arrive as messages before the IQ result, so a query runs on a
//! session of its own ([`query`] reads them from the session's events):
//! a session that reads its archive changes how some servers treat its
//! unacknowledged messages (Prosody's mod_smacks leaves them in the
//! archive instead of offline storage), which the facade's delivery
//! session must not risk.

use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::mam::{Fin, Query, QueryId, Result_};
use xmpp_parsers::message::Message;
use xmpp_parsers::rsm::SetQuery;
use xmpp_parsers::stanza::Stanza;

use super::{IqRequest, Session, XmppError, iq};

/// Where a page starts.
#[derive(Debug, Clone)]
pub enum Page {
    /// The newest messages before this archive id (`None`: the newest).
    Before(Option<String>),
    /// The oldest messages after this archive id.
    After(String),
    /// The oldest messages of the archive.
    Oldest,
    /// The oldest messages stored at or after this Unix time (the form's
    /// `start`).
    Since(i64),
}

/// One archived message: its archive id, when it was stored, the message.
#[derive(Debug)]
pub struct Archived {
    pub archive_id: String,
    pub stamp: Option<i64>,
    pub message: Message,
}

/// A page of the archive, oldest first.
#[derive(Debug)]
pub struct Found {
    pub items: Vec<Archived>,
    /// The archive has nothing beyond this page in the paging direction.
    pub complete: bool,
}

/// The messages exchanged with `with` (every correspondent: `None`), one
/// page of at most `max`.
pub async fn query(
    session: &mut Session,
    with: Option<&BareJid>,
    page: Page,
    max: usize,
) -> Result<Found, XmppError> {
    let queryid = iq::new_id();
    let mut fields: Vec<Field> = with
        .map(|w| vec![Field::text_single("with", w.as_str())])
        .unwrap_or_default();
    if let Page::Since(t) = page
        && let Some(t) = chrono::DateTime::from_timestamp(t, 0)
    {
        let stamp = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        fields.push(Field::text_single("start", &stamp));
    }
    let form = DataForm::new(DataFormType::Submit, xmpp_parsers::ns::MAM, fields);
    let (before, after) = match page {
        Page::Before(b) => (Some(b.unwrap_or_default()), None),
        Page::After(a) => (None, Some(a)),
        Page::Oldest | Page::Since(_) => (None, None),
    };
    let q = Query {
        queryid: Some(QueryId(queryid.clone())),
        node: None,
        form: Some(form),
        set: Some(SetQuery {
            max: Some(max),
            after,
            before,
            index: None,
        }),
        flip_page: false,
    };
    let reply = session.iq(None, IqRequest::Set(q.into())).await?;
    let fin = reply
        .and_then(|el| Fin::try_from(el).ok())
        .ok_or_else(|| XmppError::Protocol("MAM query without <fin/>".into()))?;
    // Every result came before the IQ result, in order: they are queued.
    let mut items = Vec::new();
    while let Ok(Some(st)) =
        tokio::time::timeout(std::time::Duration::from_millis(1), session.next_event()).await
    {
        let Stanza::Message(m) = st else { continue };
        // Only from our own archive (no from, or our bare JID).
        if m.from
            .as_ref()
            .is_some_and(|f| f.to_bare() != session.jid().to_bare())
        {
            continue;
        }
        for p in m.payloads {
            let Ok(r) = Result_::try_from(p) else {
                continue;
            };
            if r.queryid.as_ref().map(|q| q.0.as_str()) != Some(queryid.as_str()) {
                continue;
            }
            items.push(Archived {
                archive_id: r.id,
                stamp: r.forwarded.delay.as_ref().map(|d| d.stamp.0.timestamp()),
                message: r.forwarded.message,
            });
        }
    }
    Ok(Found {
        items,
        complete: fin.complete,
    })
}
