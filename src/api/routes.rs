//! A domain's routes with their paths listed beside the router, so that the
//! OpenAPI document can be checked against every route there is
//! (`server::openapi`): a route added without its description fails a test.

use axum::Router;
use axum::routing::MethodRouter;

use crate::app::App;

/// Routes and the paths they answer.
#[derive(Default)]
pub struct Routes {
    router: Router<App>,
    paths: Vec<&'static str>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Adds a route, as [`Router::route`].
    pub fn route(mut self, path: &'static str, method: MethodRouter<App>) -> Routes {
        self.router = self.router.route(path, method);
        self.paths.push(path);
        self
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }

    /// The paths, in the order they were added.
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    pub fn into_router(self) -> Router<App> {
        self.router
    }
}
