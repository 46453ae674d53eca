//! The XML stream type that stream set-up, stream management and the
//! session task pass between them.

use tokio_xmpp::xmlstream::{FallibleStreamElement, XmlStream};

/// The XML stream of a session: elements that failed to parse are reported
/// rather than ending the stream.
pub(super) type FallibleStream<S> = XmlStream<S, FallibleStreamElement>;
