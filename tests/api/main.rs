//! Integration tests: the whole service against a real Prosody, and its
//! XMPP-facing tests against a real ejabberd too (`servers`).

mod ejabberd;
mod helpers;
mod process;
mod servers;

mod bad_input;
mod binding;
mod browser;
mod connections;
mod console;
mod example_client;
mod faults;
mod login_security;
mod metrics;
mod openapi;
mod provisioning;
mod register;
mod request_id;
mod tls;
mod token_service;
mod wire_security;
mod xmpp_security;
