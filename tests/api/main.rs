//! Integration tests: the whole service against a real Prosody.

mod helpers;
mod process;

mod bad_input;
mod binding;
mod connections;
mod example_client;
mod faults;
mod register;
mod tls;
mod token_service;
