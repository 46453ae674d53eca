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

use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::disco::{DiscoItemsQuery, DiscoItemsResult};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::minidom::rxml::NcName;
use xmpp_parsers::ns;
use xmpp_parsers::stanza_error::DefinedCondition;

use super::{IqRequest, SessionHandle, XmppError};

/// The XEP-0133 commands jidgate runs.
pub const ADMIN_COMMANDS: [&str; 3] = ["add-user", "delete-user", "change-user-password"];

/// XEP-0050 namespace.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// XEP-0133 form type and node prefix.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";

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

fn admin_form(fields: Vec<Field>) -> DataForm {
    DataForm::new(DataFormType::Submit, NS_ADMIN, fields)
}

fn field(var: &str, type_: FieldType, values: Vec<String>) -> Field {
    let mut f = Field::new(var, type_);
    f.values = values;
    f
}

/// How a command for one account ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    Done,
    /// add-user: the account already existed.
    AlreadyExists,
    /// delete-user / change-user-password: there was no such account.
    NoSuchUser,
}

/// Runs the XEP-0133 command `name` (e.g. `add-user`) about `jid`, sent to
/// the account's domain (the XMPP server's virtual host): its reply is then
/// accepted only from that domain (see [`super::iq`]), never from a user who
/// addressed a result to the admin session.
async fn admin_command(
    session: &SessionHandle,
    jid: &BareJid,
    name: &str,
    fields: Vec<Field>,
) -> Result<CommandReply, XmppError> {
    let to = Jid::from(jid.domain().to_owned());
    execute(
        session,
        to,
        &format!("{NS_ADMIN}#{name}"),
        admin_form(fields),
    )
    .await
}

/// XEP-0133 §4.1 add-user.
pub async fn add_user(
    session: &SessionHandle,
    jid: &BareJid,
    password: &str,
) -> Result<AdminOutcome, XmppError> {
    let fields = vec![
        field("accountjid", FieldType::JidSingle, vec![jid.to_string()]),
        field(
            "password",
            FieldType::TextPrivate,
            vec![password.to_owned()],
        ),
        field(
            "password-verify",
            FieldType::TextPrivate,
            vec![password.to_owned()],
        ),
    ];
    add_user_outcome(admin_command(session, jid, "add-user", fields).await)
}

/// What an add-user answer means. A success says only that the server
/// believes it made the account: some servers answer success for an
/// existing account, so the provisioner checks the new account itself
/// (`crate::provisioner`).
pub fn add_user_outcome(
    answer: Result<CommandReply, XmppError>,
) -> Result<AdminOutcome, XmppError> {
    match answer {
        Ok(reply) => match reply.error_note() {
            None => Ok(AdminOutcome::Done),
            Some(text) if text.to_ascii_lowercase().contains("exist") => {
                Ok(AdminOutcome::AlreadyExists)
            }
            Some(text) => Err(XmppError::Protocol(format!("add-user refused: {text}"))),
        },
        Err(XmppError::Stanza(e)) if e.defined_condition == DefinedCondition::Conflict => {
            Ok(AdminOutcome::AlreadyExists)
        }
        Err(e) => Err(e),
    }
}

/// XEP-0133 §4.2 delete-user. Deleting an account that does not exist is
/// [`AdminOutcome::NoSuchUser`], not an error, so retries are harmless.
pub async fn delete_user(
    session: &SessionHandle,
    jid: &BareJid,
) -> Result<AdminOutcome, XmppError> {
    let fields = vec![field(
        "accountjids",
        FieldType::JidMulti,
        vec![jid.to_string()],
    )];
    delete_user_outcome(admin_command(session, jid, "delete-user", fields).await)
}

/// What a delete-user answer means. `item-not-found` is "no such account"
/// only because the admin session checked at login that the server offers
/// delete-user (`command_is_missing`): the same error also means "no such
/// command".
pub fn delete_user_outcome(
    answer: Result<CommandReply, XmppError>,
) -> Result<AdminOutcome, XmppError> {
    match answer {
        Ok(reply) => {
            if let Some(text) = reply.error_note() {
                return Err(XmppError::Protocol(format!("delete-user refused: {text}")));
            }
            // Prosody lists accounts it could not delete in an info note.
            let failed = reply
                .notes
                .iter()
                .any(|(_, text)| text.contains("could not be deleted"));
            Ok(if failed {
                AdminOutcome::NoSuchUser
            } else {
                AdminOutcome::Done
            })
        }
        Err(XmppError::Stanza(e)) if e.defined_condition == DefinedCondition::ItemNotFound => {
            Ok(AdminOutcome::NoSuchUser)
        }
        Err(e) => Err(e),
    }
}

/// XEP-0133 §4.7 change-user-password.
pub async fn change_user_password(
    session: &SessionHandle,
    jid: &BareJid,
    password: &str,
) -> Result<AdminOutcome, XmppError> {
    let fields = vec![
        field("accountjid", FieldType::JidSingle, vec![jid.to_string()]),
        field(
            "password",
            FieldType::TextPrivate,
            vec![password.to_owned()],
        ),
    ];
    change_password_outcome(admin_command(session, jid, "change-user-password", fields).await)
}

/// What a change-user-password answer means (`item-not-found`: see
/// [`delete_user_outcome`]).
pub fn change_password_outcome(
    answer: Result<CommandReply, XmppError>,
) -> Result<AdminOutcome, XmppError> {
    match answer {
        Ok(reply) => match reply.error_note() {
            None => Ok(AdminOutcome::Done),
            Some(text) if text.to_ascii_lowercase().contains("not exist") => {
                Ok(AdminOutcome::NoSuchUser)
            }
            Some(text) => Err(XmppError::Protocol(format!(
                "change-user-password refused: {text}"
            ))),
        },
        Err(XmppError::Stanza(e)) if e.defined_condition == DefinedCondition::ItemNotFound => {
            Ok(AdminOutcome::NoSuchUser)
        }
        Err(e) => Err(e),
    }
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

/// The first of [`ADMIN_COMMANDS`] missing from `offered` (node names).
pub fn command_is_missing(offered: &[String]) -> Option<&'static str> {
    ADMIN_COMMANDS
        .into_iter()
        .find(|c| !offered.iter().any(|n| *n == format!("{NS_ADMIN}#{c}")))
}

/// The data-forms namespace, for tests that inspect built commands.
pub const NS_DATA_FORMS: &str = ns::DATA_FORMS;

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::stanza_error::{ErrorType, StanzaError};

    #[test]
    fn command_element_carries_node_action_and_form() {
        let form = admin_form(vec![field(
            "accountjid",
            FieldType::JidSingle,
            vec!["d.x@localhost".into()],
        )]);
        let el = command_element("n#add-user", "complete", Some("s1"), Some(form));
        assert!(el.is("command", NS_COMMANDS));
        assert_eq!(el.attr("node"), Some("n#add-user"));
        assert_eq!(el.attr("action"), Some("complete"));
        assert_eq!(el.attr("sessionid"), Some("s1"));
        let x = el.get_child("x", NS_DATA_FORMS).expect("form");
        assert_eq!(x.attr("type"), Some("submit"));
        let text = String::from(&el);
        assert!(text.contains("d.x@localhost"), "{text}");
        assert!(text.contains(NS_ADMIN), "{text}");
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

    fn command(xml: &str) -> Result<CommandReply, XmppError> {
        CommandReply::parse(&xml.parse::<Element>().unwrap())
    }

    fn iq_error(condition: DefinedCondition, text: &str) -> Result<CommandReply, XmppError> {
        Err(XmppError::Stanza(Box::new(StanzaError::new(
            ErrorType::Cancel,
            condition,
            "en",
            text,
        ))))
    }

    const COMPLETED: &str = "<command xmlns='http://jabber.org/protocol/commands' \
        node='http://jabber.org/protocol/admin#add-user' \
        sessionid='2026-11-25T15:37:18.693387Z' status='completed' xml:lang='en'/>";

    #[test]
    fn ejabberd_answers_are_understood() {
        // Shapes recorded from Debian's ejabberd 23.01.
        assert_eq!(
            add_user_outcome(command(COMPLETED)).unwrap(),
            AdminOutcome::Done
        );
        // add-user of an existing account: conflict (its password is kept).
        assert_eq!(
            add_user_outcome(iq_error(DefinedCondition::Conflict, "")).unwrap(),
            AdminOutcome::AlreadyExists
        );
        // delete-user / change-user-password of a missing account: a
        // failure inside the command, reported as item-not-found.
        let missing = || {
            iq_error(
                DefinedCondition::ItemNotFound,
                "No hook has processed this command",
            )
        };
        assert_eq!(
            delete_user_outcome(missing()).unwrap(),
            AdminOutcome::NoSuchUser
        );
        assert_eq!(
            change_password_outcome(missing()).unwrap(),
            AdminOutcome::NoSuchUser
        );
        assert_eq!(
            delete_user_outcome(command(COMPLETED)).unwrap(),
            AdminOutcome::Done
        );
        assert_eq!(
            change_password_outcome(command(COMPLETED)).unwrap(),
            AdminOutcome::Done
        );
        // The same item-not-found from add-user (a refused form, another
        // host, no mod_configure) is a failure, never "done".
        assert!(add_user_outcome(missing()).is_err());
        // Not an admin.
        let forbidden = || {
            iq_error(
                DefinedCondition::Forbidden,
                "Access denied by service policy",
            )
        };
        assert!(add_user_outcome(forbidden()).is_err());
        assert!(delete_user_outcome(forbidden()).is_err());
        assert!(change_password_outcome(forbidden()).is_err());
    }

    #[test]
    fn prosody_answers_are_understood() {
        let note = |kind: &str, text: &str| {
            command(&format!(
                "<command xmlns='http://jabber.org/protocol/commands' node='n' \
                 status='completed' sessionid='1'><note type='{kind}'>{text}</note></command>"
            ))
        };
        assert_eq!(
            add_user_outcome(note("info", "Account successfully created")).unwrap(),
            AdminOutcome::Done
        );
        assert_eq!(
            add_user_outcome(note("error", "Account already exists")).unwrap(),
            AdminOutcome::AlreadyExists
        );
        assert!(add_user_outcome(note("error", "Invalid JID")).is_err());
        assert_eq!(
            delete_user_outcome(note(
                "info",
                "The following accounts could not be deleted:\nd.x@localhost"
            ))
            .unwrap(),
            AdminOutcome::NoSuchUser
        );
        assert_eq!(
            delete_user_outcome(note(
                "info",
                "The following accounts were successfully deleted:\nd.x@localhost"
            ))
            .unwrap(),
            AdminOutcome::Done
        );
        assert_eq!(
            change_password_outcome(note("error", "User does not exist")).unwrap(),
            AdminOutcome::NoSuchUser
        );
        assert_eq!(
            change_password_outcome(note("info", "Password successfully changed")).unwrap(),
            AdminOutcome::Done
        );
    }

    #[test]
    fn the_admin_commands_must_all_be_offered() {
        let offered = |names: &[&str]| -> Vec<String> {
            names.iter().map(|n| format!("{NS_ADMIN}#{n}")).collect()
        };
        assert_eq!(
            command_is_missing(&offered(&[
                "add-user",
                "get-user-lastlogin",
                "change-user-password",
                "delete-user"
            ])),
            None
        );
        assert_eq!(
            command_is_missing(&offered(&["add-user", "change-user-password"])),
            Some("delete-user")
        );
        // What ejabberd offers a user who is not an admin.
        assert_eq!(command_is_missing(&["ping".to_owned()]), Some("add-user"));
        assert_eq!(command_is_missing(&[]), Some("add-user"));
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
