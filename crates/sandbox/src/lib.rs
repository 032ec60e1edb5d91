//! A local stand-in for what driver-matrix talks to in production: an OCI registry on
//! loopback (Debian's `docker-registry`), OpenShift release payloads in the real format, DTK
//! stand-ins and a Cincinnati-style update graph. The integration tests and `make demo` use
//! the same code. Nothing here is part of the shipped binary.

pub mod bigimage;
pub mod debian_dtk;
pub mod dtk;
pub mod faulty;
pub mod graph;
pub mod http;
pub mod kmod;
pub mod kmod_base;
pub mod oci;
pub mod openshift;
pub mod payload;
pub mod proxy;
pub mod registry;
pub mod rootfs;
pub mod signing;
pub mod world;

pub use dtk::DtkSpec;
pub use graph::GraphServer;
pub use oci::{Compression, Flavor, Pushed, Pusher};
pub use payload::{OsImage, PayloadSpec};
pub use proxy::FaultProxy;
pub use registry::Registry;
