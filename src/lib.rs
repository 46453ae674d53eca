//! jidgate: accounts and matching XMPP identities for phones, devices and
//! WeChat users; phones bound to their devices as real roster entries;
//! access tokens that other services verify over TCP.
//!
//! [`Service::build`] takes a [`Config`] and (optionally) listeners that are
//! already bound, so tests start the whole service on port 0;
//! [`Service::run_until`] serves until a shutdown future resolves.
//!
//! The modules are layered; each imports only from the layers below it
//! (`docs/architecture.md` draws the picture):
//!
//! - the process and its transports: [`cli`], [`server`] (launcher, router,
//!   HTTP accept loop), [`token_service`] (the TCP protocol), [`facade`]
//!   (the mobile JSON facade over WebSocket), [`reconcile`], [`console`]
//!   (the operator console), [`playground`], [`progress`];
//! - the domains, each with its routes: [`accounts`] (with the session
//!   endpoints), [`binding`], [`captcha`];
//! - the HTTP envelope the routes use: [`api`];
//! - the shared state: [`app`];
//! - services: [`tokens`] (store and cache), [`provisioner`],
//!   [`ratelimit`], [`xmpp`];
//! - storage: [`db`], the one seam a PostgreSQL backend fills;
//! - the ground: [`params`], [`fields`], [`signing`], [`crypto`],
//!   [`config`], [`error`], [`faults`], [`clock`], [`metrics`],
//!   [`backoff`].

#![forbid(unsafe_code)]

pub mod cli;
pub mod console;
pub mod facade;
pub mod playground;
pub mod progress;
pub mod reconcile;
pub mod server;
pub mod token_service;

pub mod accounts;
pub mod binding;
pub mod captcha;

pub mod api;
pub mod app;

pub mod provisioner;
pub mod ratelimit;
pub mod tokens;
pub mod xmpp;

pub mod db;

pub mod backoff;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod faults;
pub mod fields;
pub mod metrics;
pub mod params;
pub mod signing;

pub use app::App;
pub use clock::now;
pub use config::Config;
pub use faults::{FaultHook, Faults};
pub use server::{Options, Service, build_app};
