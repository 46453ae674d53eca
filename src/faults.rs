//! Fault injection for tests.
//!
//! Code that changes both the database and the XMPP server passes named
//! points (e.g. `register.after_provision`). A test that launches the
//! service through the library can attach a hook that runs at those points:
//! it may stop the XMPP server, or return an error to make the request stop
//! right there, as a crash would (no compensation runs). The binary never
//! attaches a hook, and no configuration can.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::Error;

/// A test's hook: `Err` aborts the request at that point.
pub trait FaultHook: Send + Sync {
    fn hit(&self, point: &'static str) -> BoxFuture<'static, Result<(), String>>;
}

/// The hook, if any.
#[derive(Clone, Default)]
pub struct Faults(Option<Arc<dyn FaultHook>>);

impl Faults {
    pub fn none() -> Faults {
        Faults(None)
    }

    pub fn with(hook: Arc<dyn FaultHook>) -> Faults {
        Faults(Some(hook))
    }

    /// Runs the hook at `point`.
    pub async fn point(&self, point: &'static str) -> Result<(), Error> {
        match &self.0 {
            None => Ok(()),
            Some(hook) => hook.hit(point).await.map_err(|why| {
                Error::internal(anyhow::anyhow!("injected fault at {point}: {why}"))
            }),
        }
    }
}
