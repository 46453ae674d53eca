//! XEP-0198: Stream Management, the acknowledgement half only.
//!
//! jidgate enables stream management without resumption (a facade session
//! resumes at the WebSocket level, see `docs/facade.md`). The server counts
//! the stanzas it sends us and asks with `<r/>` how many we handled; we
//! answer `<a h=…/>` with the number of stanzas handled *in order*. A
//! stanza handed to the session's reader counts as handled only once the
//! reader says so ([`Ledger::handled`]), e.g. after a phone acknowledged
//! the push it became; everything the session task consumes itself (IQ
//! replies, pings) counts at once. What was never acknowledged stays the
//! server's to deliver again (offline storage) when the stream ends.

use std::collections::BTreeSet;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio_xmpp::xmlstream::{ReadError, XmppStreamElement};
use xmpp_parsers::sm;
use xmpp_parsers::stanza::Stanza;

use super::XmppError;
use super::stream::FallibleStream;

/// Inbound stanzas received and those still awaiting their reader.
#[derive(Debug, Default)]
pub struct Ledger {
    received: u64,
    outstanding: BTreeSet<u64>,
}

impl Ledger {
    /// Counts one more inbound stanza and returns its sequence number
    /// (1-based). `await_reader`: it counts as handled only after
    /// [`Ledger::handled`].
    pub fn receive(&mut self, await_reader: bool) -> u64 {
        self.received += 1;
        if await_reader {
            self.outstanding.insert(self.received);
        }
        self.received
    }

    /// The reader handled stanza `seq`.
    pub fn handled(&mut self, seq: u64) {
        self.outstanding.remove(&seq);
    }

    /// The count of stanzas handled in order, as `<a h=…/>` says it
    /// (modulo 2^32, XEP-0198 §4).
    pub fn h(&self) -> u32 {
        let upto = match self.outstanding.first() {
            Some(first) => first - 1,
            None => self.received,
        };
        upto as u32
    }
}

/// The answer to `<r/>`.
pub fn ack(h: u32) -> XmppStreamElement {
    XmppStreamElement::SM(sm::Nonza::Ack(sm::A::new(h)))
}

/// Sends `<enable/>` (no resumption) and waits for `<enabled/>`. Stanzas
/// can arrive before it (the resource is bound, and a message to its full
/// JID is routed to it even before initial presence): they are returned,
/// for the reader, uncounted (the server counts from `<enabled/>` on).
pub(super) async fn enable<S>(stream: &mut FallibleStream<S>) -> Result<Vec<Stanza>, XmppError>
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send,
{
    let mut early = Vec::new();
    stream
        .send(&XmppStreamElement::SM(sm::Nonza::Enable(sm::Enable::new())))
        .await?;
    loop {
        match stream.next().await {
            None => return Err(XmppError::Closed),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => return Err(XmppError::Protocol(e.to_string())),
            Some(Ok(el)) => match el.into_read_error() {
                Ok(XmppStreamElement::SM(sm::Nonza::Enabled(_))) => return Ok(early),
                Ok(XmppStreamElement::Stanza(st)) if !matches!(st, Stanza::Iq(_)) => {
                    early.push(st);
                }
                Ok(XmppStreamElement::SM(sm::Nonza::Failed(f))) => {
                    return Err(XmppError::Protocol(format!(
                        "stream management refused: {:?}",
                        f.error
                    )));
                }
                Ok(_) => continue,
                Err(e) => return Err(XmppError::Protocol(e.to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h_stops_at_the_first_stanza_its_reader_has_not_handled() {
        let mut l = Ledger::default();
        let a = l.receive(true);
        let _iq = l.receive(false);
        let c = l.receive(true);
        assert_eq!(l.h(), 0);
        l.handled(c);
        assert_eq!(l.h(), 0);
        l.handled(a);
        assert_eq!(l.h(), 3);
        l.receive(false);
        assert_eq!(l.h(), 4);
    }
}
