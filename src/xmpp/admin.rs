//! XEP-0133: Service Administration, the commands jidgate runs over its
//! admin session: add-user, delete-user, change-user-password, and the
//! check that the server offers them all; and end-user-session, used when
//! an operator disables an account, where the server offers it.
//!
//! How each server reports the outcome (see [`super::adhoc`] for the
//! XEP-0050 envelope): Prosody completes the command with an error note;
//! ejabberd answers an IQ error (`conflict` for add-user of an existing
//! account, `item-not-found` for a command that failed inside).

use xmpp_parsers::data_forms::{DataForm, DataFormType, Field, FieldType};
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::stanza_error::DefinedCondition;

use super::adhoc::{CommandReply, execute};
use super::{SessionHandle, XmppError};

/// The XEP-0133 commands jidgate runs.
pub const ADMIN_COMMANDS: [&str; 3] = ["add-user", "delete-user", "change-user-password"];

/// XEP-0133 form type and node prefix.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";

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
/// addressed a result to the admin session. Counted in [`crate::metrics`].
async fn admin_command(
    session: &SessionHandle,
    jid: &BareJid,
    name: &'static str,
    fields: Vec<Field>,
) -> Result<CommandReply, XmppError> {
    let to = Jid::from(jid.domain().to_owned());
    let started = std::time::Instant::now();
    let reply = execute(
        session,
        to,
        &format!("{NS_ADMIN}#{name}"),
        admin_form(fields),
    )
    .await;
    crate::metrics::xmpp_command(name, reply.is_ok(), started.elapsed());
    reply
}

/// XEP-0133 §4.1 add-user.
pub async fn add_user(
    session: &SessionHandle,
    jid: &BareJid,
    password: &str,
) -> Result<AdminOutcome, XmppError> {
    let fields = add_user_fields(jid, password);
    add_user_outcome(admin_command(session, jid, "add-user", fields).await)
}

/// The add-user form's fields: the password goes out as text (the fuzz
/// target `stanza` checks it comes back identical).
pub fn add_user_fields(jid: &BareJid, password: &str) -> Vec<Field> {
    vec![
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
    ]
}

/// The add-user command element as it is first sent (the fuzz target
/// `stanza` parses it back).
pub fn add_user_command(jid: &BareJid, password: &str) -> xmpp_parsers::minidom::Element {
    super::adhoc::command_element(
        &format!("{NS_ADMIN}#add-user"),
        "execute",
        None,
        Some(admin_form(add_user_fields(jid, password))),
    )
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

/// XEP-0133 §4.4 end-user-session: closes every session of `jid`. Not one
/// of [`ADMIN_COMMANDS`] (a server without it is still used): a server that
/// does not offer it answers an error, which the caller reports.
pub async fn end_user_session(session: &SessionHandle, jid: &BareJid) -> Result<(), XmppError> {
    let fields = vec![field(
        "accountjids",
        FieldType::JidMulti,
        vec![jid.to_string()],
    )];
    let reply = admin_command(session, jid, "end-user-session", fields).await?;
    match reply.error_note() {
        None => Ok(()),
        Some(text) => Err(XmppError::Protocol(format!(
            "end-user-session refused: {text}"
        ))),
    }
}

/// The first of [`ADMIN_COMMANDS`] missing from `offered` (node names).
pub fn command_is_missing(offered: &[String]) -> Option<&'static str> {
    ADMIN_COMMANDS
        .into_iter()
        .find(|c| !offered.iter().any(|n| *n == format!("{NS_ADMIN}#{c}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::adhoc::CommandReply;
    use xmpp_parsers::minidom::Element;
    use xmpp_parsers::stanza_error::{ErrorType, StanzaError};

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
}
