//! Integration tests: the whole service against a real Prosody, and its
//! XMPP-facing tests against a real ejabberd too (`servers`).

mod ejabberd;
mod helpers;
mod process;
mod scripted;
mod servers;

mod bad_input;
mod binding;
mod connections;
mod example_client;
mod faults;
mod login_security;
mod provisioning;
mod reconcile_props;
mod register;
mod secrets;
mod storm;
mod tls;
mod token_service;
mod wire_security;
mod xmpp_security;
