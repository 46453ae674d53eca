//! Shared by the stanza builder targets (`stanza`, `message`).

use xmpp_parsers::iq::Iq;
use xmpp_parsers::minidom::Element;

/// Serializes an IQ set carrying `payload` as the stream would (xso) and
/// reads its payload back.
pub fn iq_round_trip(payload: Element) -> Element {
    let iq = Iq::Set {
        from: None,
        to: None,
        id: "fuzz-1".into(),
        payload,
    };
    let bytes = xso::to_vec(&iq).expect("serializes");
    match xso::from_bytes::<Iq>(&bytes).expect("parses back") {
        Iq::Set { payload, .. } => payload,
        other => panic!("came back as {other:?}"),
    }
}
