//! What the XMPP server is, where its stream features say so.

use xmpp_parsers::stream_features::StreamFeatures;

/// The XMPP server's software, where its stream features name it
/// (ejabberd announces its entity capabilities node there, XEP-0115;
/// Prosody announces nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Software {
    Ejabberd,
    Unknown,
}

impl Software {
    /// From the features after authentication.
    pub fn from_features(features: &StreamFeatures) -> Software {
        let ejabberd = features.others.iter().any(|el| {
            el.is("c", xmpp_parsers::ns::CAPS)
                && el
                    .attr("node")
                    .is_some_and(|n| n.contains("process-one.net/en/ejabberd"))
        });
        if ejabberd {
            Software::Ejabberd
        } else {
            Software::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::minidom::Element;

    fn features(xml: &str) -> StreamFeatures {
        StreamFeatures::try_from(xml.parse::<Element>().unwrap()).unwrap()
    }

    #[test]
    fn ejabberd_is_known_by_its_caps_node_in_the_stream_features() {
        // As ejabberd 23.01 sends them after authentication.
        let ejabberd = features(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <sm xmlns='urn:xmpp:sm:3'/>\
             <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
             node='http://www.process-one.net/en/ejabberd/' ver='Tj7Q0pQTCBjzJwBNKH0ZRDVq14c='/>\
             </stream:features>",
        );
        assert_eq!(Software::from_features(&ejabberd), Software::Ejabberd);
        // As Prosody 0.12 sends them: no caps.
        let prosody = features(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/>\
             </stream:features>",
        );
        assert_eq!(Software::from_features(&prosody), Software::Unknown);
        // Another server's caps node is not ejabberd's.
        let other = features(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>\
             <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
             node='https://www.igniterealtime.org/projects/openfire/' ver='x'/>\
             </stream:features>",
        );
        assert_eq!(Software::from_features(&other), Software::Unknown);
    }
}
