//! Integration tests: the whole service against a real Prosody.

mod helpers;

mod register;
