//! driver-matrix builds out-of-tree kernel driver containers for every OpenShift release a
//! vendor supports, from one declarative file.
//!
//! The data flows one way:
//!
//! ```text
//! matrix.toml ──▶ matrix (validated) ──▶ releases resolved from payloads ──▶ plan (jobs)
//!            ──▶ build (buildah, parallel) ──▶ matrix.lock ──▶ diff / verify / export
//! ```
//!
//! Only the edges do I/O (files, the registry, buildah); the stages between are pure functions.
//! `docs/architecture.md` draws the data flow and the dependency layers.

pub mod buildah;
pub mod cli;
pub mod commands;
pub mod data_file;
pub mod domain;
pub mod error;
pub mod exit;
pub mod export;
pub mod git;
#[cfg(test)]
mod house;
pub mod inputs;
pub mod lock;
pub mod matrix;
pub mod names;
pub mod parallel;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod release;
pub mod render;
pub mod report;
pub mod runs;
pub mod scaffold;
pub mod tarball;
pub mod template;
pub mod text;
pub mod verify;
