//! XEP-0054: vcard-temp, the profile any XMPP client reads. The facade's
//! fields map to `NICKNAME`, `PHOTO/EXTVAL` (avatar URL), `BDAY`
//! (YYYY-MM-DD), `DESC` (signature) and `X-SEX` (0 unknown, 1 male,
//! 2 female; vcard-temp has no gender field). Updating keeps every other
//! field a client may have set.

use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::stanza_error::DefinedCondition;

use super::{IqRequest, SessionHandle, XmppError};

pub const NS: &str = "vcard-temp";

/// The profile fields the facade reads and writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub nick: Option<String>,
    pub avatar: Option<String>,
    pub sex: Option<String>,
    pub birthday: Option<String>,
    pub signature: Option<String>,
}

/// (field, vcard element) for the simple text fields.
const TEXT_FIELDS: [&str; 4] = ["NICKNAME", "BDAY", "DESC", "X-SEX"];

fn text_of(v: &Element, name: &str) -> Option<String> {
    v.get_child(name, NS)
        .map(|e| e.text())
        .filter(|t| !t.is_empty())
}

impl Profile {
    /// The profile a vCard element says.
    pub fn from_vcard(v: &Element) -> Profile {
        Profile {
            nick: text_of(v, "NICKNAME"),
            avatar: v.get_child("PHOTO", NS).and_then(|p| text_of(p, "EXTVAL")),
            sex: text_of(v, "X-SEX"),
            birthday: text_of(v, "BDAY"),
            signature: text_of(v, "DESC"),
        }
    }

    fn value(&self, field: &str) -> Option<&String> {
        match field {
            "NICKNAME" => self.nick.as_ref(),
            "BDAY" => self.birthday.as_ref(),
            "DESC" => self.signature.as_ref(),
            "X-SEX" => self.sex.as_ref(),
            _ => None,
        }
    }
}

/// The vCard of `who` (`None`: our own), as its raw element; an empty one
/// if there is none.
async fn fetch(session: &SessionHandle, who: Option<&BareJid>) -> Result<Element, XmppError> {
    let query = Element::builder("vCard", NS).build();
    let to = who.map(|j| Jid::from(j.clone()));
    match session.iq(to, IqRequest::Get(query)).await {
        Ok(Some(el)) if el.is("vCard", NS) => Ok(el),
        Ok(_) => Ok(Element::builder("vCard", NS).build()),
        Err(XmppError::Stanza(e))
            if matches!(
                e.defined_condition,
                DefinedCondition::ItemNotFound | DefinedCondition::ServiceUnavailable
            ) =>
        {
            Ok(Element::builder("vCard", NS).build())
        }
        Err(e) => Err(e),
    }
}

/// The profile of `who` (`None`: our own).
pub async fn get(session: &SessionHandle, who: Option<&BareJid>) -> Result<Profile, XmppError> {
    Ok(Profile::from_vcard(&fetch(session, who).await?))
}

/// Sets the given fields of our own vCard (`None` fields stay as they
/// are); returns the profile as stored.
pub async fn update(session: &SessionHandle, changes: &Profile) -> Result<Profile, XmppError> {
    let current = fetch(session, None).await?;
    let vcard = merge(&current, changes);
    let stored = Profile::from_vcard(&vcard);
    session.iq(None, IqRequest::Set(vcard)).await?;
    Ok(stored)
}

/// The vCard `current` with `changes` applied (every text goes in as
/// text); what else it holds stays.
pub fn merge(current: &Element, changes: &Profile) -> Element {
    let mut builder = Element::builder("vCard", NS);
    for child in current.children() {
        let ours = TEXT_FIELDS.contains(&child.name()) && changes.value(child.name()).is_some();
        let photo = child.name() == "PHOTO" && changes.avatar.is_some();
        if !(ours || photo) {
            builder = builder.append(child.clone());
        }
    }
    for field in TEXT_FIELDS {
        if let Some(v) = changes.value(field) {
            builder = builder.append(Element::builder(field, NS).append(v.as_str()));
        }
    }
    if let Some(url) = &changes.avatar {
        builder = builder.append(
            Element::builder("PHOTO", NS)
                .append(Element::builder("EXTVAL", NS).append(url.as_str())),
        );
    }
    builder.build()
}
