//! The XMPP stanza builders: any description (a roster nickname) or
//! password the field parsers accept goes out as text, serialized as the
//! stream serializes it (xso), and parses back identical, in the same
//! structure: never as markup.

#![no_main]

#[path = "common/iq_round_trip.rs"]
mod common;

use jidgate::fields::{Des, Password};
use jidgate::xmpp::{admin, roster};
use libfuzzer_sys::fuzz_target;
use xmpp_parsers::data_forms::DataForm;
use xmpp_parsers::jid::BareJid;
use xmpp_parsers::minidom::Element;
use xmpp_parsers::roster::Roster;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let jid = BareJid::new("d.abcdefgh@example.org").unwrap();
    if let Ok(des) = Des::parse(text) {
        let sent = roster::set_item_query(&jid, des.as_str(), "devices");
        let back = Roster::try_from(common::iq_round_trip(sent)).expect("a roster query");
        assert_eq!(back.items.len(), 1);
        let item = &back.items[0];
        let name = item.name.as_deref().unwrap_or("");
        assert_eq!(name, des.as_str());
        assert_eq!(item.groups.len(), 1);
        assert_eq!(item.groups[0].0, "devices");
        assert_eq!(item.jid, jid);
    }
    if Password::parse(text).is_ok() {
        let sent = admin::add_user_command(&jid, text);
        let back = common::iq_round_trip(sent);
        let forms: Vec<&Element> = back.children().collect();
        assert_eq!(forms.len(), 1, "one form, nothing injected");
        let form = DataForm::try_from(forms[0].clone()).expect("a data form");
        // The fields sent, and the form's FORM_TYPE (hidden), nothing else.
        let values = |var: &str| {
            let found: Vec<_> = form
                .fields
                .iter()
                .filter(|f| f.var.as_deref() == Some(var))
                .collect();
            assert_eq!(found.len(), 1, "{var}");
            found[0].values.clone()
        };
        assert_eq!(form.fields.len(), 4, "{:?}", form.fields);
        assert_eq!(values("FORM_TYPE"), vec![admin::NS_ADMIN.to_owned()]);
        assert_eq!(values("accountjid"), vec![jid.to_string()]);
        assert_eq!(values("password"), vec![text.to_owned()]);
        assert_eq!(values("password-verify"), vec![text.to_owned()]);
    }
});
