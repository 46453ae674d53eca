//! XEP-0050: Ad-Hoc Commands, and the XEP-0133: Service Administration
//! commands jidgate uses (add-user, delete-user, change-user-password).
//!
//! xmpp-parsers has no XEP-0050 type, so the `<command/>` element is built
//! with minidom; the data form inside is xmpp-parsers' [`DataForm`].
//!
//! Servers differ in how they answer:
//! - Prosody accepts the filled form in the first `execute` (one step) and
//!   reports failure as `<note type='error'/>` in a *completed* command;
//! - ejabberd accepts one step too and reports failure as an IQ error:
//!   `conflict` for add-user of an existing account (ejabberd 23.01, which
//!   keeps the existing password), and `item-not-found` ("No hook has
//!   processed this command") for any command that failed inside, such as
//!   delete-user or change-user-password of a missing account;
//! - Openfire (untested here) may answer the first `execute` with the empty
//!   form (`status='executing'`); then the form is submitted again with
//!   `action='complete'` and the session id (two steps).

use xmpp_parsers::data_forms::DataForm;
use xmpp_parsers::disco::{DiscoItemsQuery, DiscoItemsResult};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;
use xmpp_parsers::ns;

use super::{IqRequest, SessionHandle, XmppError};

/// XEP-0050 namespace.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// A command's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReply {
    pub status: String,
    pub session_id: Option<String>,
    /// `(type, text)` of every `<note/>`.
    pub notes: Vec<(String, String)>,
}

impl CommandReply {
    /// The text of the first error note, if any.
    pub fn error_note(&self) -> Option<&str> {
        self.notes
            .iter()
            .find(|(t, _)| t == "error")
            .map(|(_, text)| text.as_str())
    }

    pub fn parse(el: &Element) -> Result<CommandReply, XmppError> {
        if !el.is("command", NS_COMMANDS) {
            return Err(XmppError::Protocol(format!(
                "expected a command, got <{}/>",
                el.name()
            )));
        }
        Ok(CommandReply {
            status: el.attr("status").unwrap_or("").to_owned(),
            session_id: el.attr("sessionid").map(str::to_owned),
            notes: el
                .children()
                .filter(|c| c.is("note", NS_COMMANDS))
                .map(|c| (c.attr("type").unwrap_or("info").to_owned(), c.text()))
                .collect(),
        })
    }
}

fn ncname(s: &str) -> NcName {
    NcName::try_from(s).expect("static attribute names are NCNames")
}

/// Builds `<command xmlns=... node=... action=...>` with an optional form.
pub fn command_element(
    node: &str,
    action: &str,
    session_id: Option<&str>,
    form: Option<DataForm>,
) -> Element {
    let mut builder = Element::builder("command", NS_COMMANDS)
        .attr(ncname("node"), node)
        .attr(ncname("action"), action);
    if let Some(sid) = session_id {
        builder = builder.attr(ncname("sessionid"), sid);
    }
    if let Some(form) = form {
        builder = builder.append(Element::from(form));
    }
    builder.build()
}

/// Runs a command with a filled form: one step, or two when the server
/// first answers with an empty form.
pub async fn execute(
    session: &SessionHandle,
    to: Jid,
    node: &str,
    form: DataForm,
) -> Result<CommandReply, XmppError> {
    let first = command_element(node, "execute", None, Some(form.clone()));
    let reply = run(session, to.clone(), first).await?;
    if reply.status != "executing" {
        return Ok(reply);
    }
    let second = command_element(node, "complete", reply.session_id.as_deref(), Some(form));
    let reply = run(session, to, second).await?;
    if reply.status == "executing" {
        return Err(XmppError::Protocol(format!(
            "command {node} still executing after completion"
        )));
    }
    Ok(reply)
}

async fn run(
    session: &SessionHandle,
    to: Jid,
    command: Element,
) -> Result<CommandReply, XmppError> {
    let payload = session
        .iq(Some(to), IqRequest::Set(command))
        .await?
        .ok_or_else(|| XmppError::Protocol("empty command result".into()))?;
    CommandReply::parse(&payload)
}

/// The XEP-0050 commands the server offers to this session at `domain`
/// (disco#items of the commands node, XEP-0050 §2.2), as node names.
pub async fn offered_commands(
    session: &SessionHandle,
    domain: &BareJid,
) -> Result<Vec<String>, XmppError> {
    let query = DiscoItemsQuery {
        node: Some(NS_COMMANDS.to_owned()),
        rsm: None,
    };
    let reply = session
        .iq(
            Some(Jid::from(domain.clone())),
            IqRequest::Get(query.into()),
        )
        .await?
        .ok_or_else(|| XmppError::Protocol("empty disco#items result".into()))?;
    let items = DiscoItemsResult::try_from(reply)
        .map_err(|e| XmppError::Protocol(format!("bad disco#items result: {e}")))?;
    Ok(items.items.into_iter().filter_map(|i| i.node).collect())
}

/// The data-forms namespace, for tests that inspect built commands.
pub const NS_DATA_FORMS: &str = ns::DATA_FORMS;

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::data_forms::{DataFormType, Field, FieldType};

    #[test]
    fn command_element_carries_node_action_and_form() {
        let mut field = Field::new("accountjid", FieldType::JidSingle);
        field.values = vec!["d.x@localhost".into()];
        let form = DataForm::new(DataFormType::Submit, "urn:example:form", vec![field]);
        let el = command_element("n#add-user", "complete", Some("s1"), Some(form));
        assert!(el.is("command", NS_COMMANDS));
        assert_eq!(el.attr("node"), Some("n#add-user"));
        assert_eq!(el.attr("action"), Some("complete"));
        assert_eq!(el.attr("sessionid"), Some("s1"));
        let x = el.get_child("x", NS_DATA_FORMS).expect("form");
        assert_eq!(x.attr("type"), Some("submit"));
        let text = String::from(&el);
        assert!(text.contains("d.x@localhost"), "{text}");
        assert!(text.contains("urn:example:form"), "{text}");
    }

    #[test]
    fn prosody_error_note_is_found() {
        let el: Element = "<command xmlns='http://jabber.org/protocol/commands' node='n' \
                           status='completed' sessionid='1'><note type='error'>Account already exists</note></command>"
            .parse()
            .unwrap();
        let reply = CommandReply::parse(&el).unwrap();
        assert_eq!(reply.status, "completed");
        assert_eq!(reply.error_note(), Some("Account already exists"));
    }

    #[test]
    fn a_non_command_payload_is_a_protocol_error() {
        let el: Element = "<query xmlns='jabber:iq:roster'/>".parse().unwrap();
        assert!(matches!(
            CommandReply::parse(&el),
            Err(XmppError::Protocol(_))
        ));
    }
}
