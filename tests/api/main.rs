//! Integration tests: the whole service against a real Prosody, and its
//! XMPP-facing tests against a real ejabberd too (`servers`); on SQLite,
//! or on PostgreSQL with `JIDGATE_TEST_DATABASE=postgres` (`postgres`).

#[path = "../support/postgres.rs"]
mod postgres;

mod ejabberd;
mod helpers;
mod process;
mod servers;

mod bad_input;
mod binding;
mod connections;
mod example_client;
mod faults;
mod instances;
mod login_security;
mod provisioning;
mod register;
mod tls;
mod token_service;
mod wire_security;
mod xmpp_security;
