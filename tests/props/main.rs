//! Property tests (proptest) of the ground layer: the canonical signing
//! text and the parameter extractor that feeds it, and field validation.
//! Bind codes are tested beside their private generator
//! (`src/binding/codes.rs`); the reconciler's decision table against real
//! Prosody (`tests/api/reconcile_props.rs`).

mod canonical;
mod names;
