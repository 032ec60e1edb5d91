//! driver-matrix's integration tests, one binary: the real binary against a real registry
//! (docker-registry on loopback) and real buildah. `support` is the one harness they share.

// Tests may unwrap and print; the crate's lints keep the library from doing either.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

mod support;

mod build;
mod buildconfig;
mod cache_forged;
mod cli;
mod collect_signing;
mod credentials;
mod demo_e2e;
mod diff;
mod dkms;
mod exclusions;
mod export;
mod faults;
mod harness;
mod hostile_lock;
mod image_fs;
mod init;
mod inputs;
mod kill;
mod kmm_crds;
mod kmm_fallback;
mod kmm_matrix;
mod lockfile;
mod matrix_diagnostics;
mod mirror;
mod nightly;
mod plan;
mod resolve;
mod resolve_faults;
mod resolve_online;
mod review;
mod schema;
mod signing;
mod tags;
mod tamper;
mod tls;
mod token_service;
mod writers;
