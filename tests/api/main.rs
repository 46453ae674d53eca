//! Integration tests: the whole service against a real Prosody, and its
//! XMPP-facing tests against a real ejabberd too (`servers`); on SQLite,
//! or on PostgreSQL with `JIDGATE_TEST_DATABASE=postgres` (`postgres`).

#[path = "../support/postgres.rs"]
mod postgres;

mod ejabberd;
mod helpers;
mod process;
mod scripted;
mod servers;

mod bad_input;
mod binding;
mod browser;
mod connections;
mod console;
mod example_client;
mod facade;
mod facade_chat;
mod facade_client;
mod facade_delivery;
mod facade_example;
mod facade_profile;
mod facade_reconnect;
mod facade_session;
mod facade_start;
mod faults;
mod instances;
mod login_security;
mod metrics;
mod openapi;
mod provisioning;
mod reconcile_props;
mod register;
mod request_id;
mod secrets;
mod storm;
mod tls;
mod token_service;
mod wire_security;
mod xmpp_security;
