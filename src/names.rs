//! The names driver-matrix gives a meaning to, in one place: the build args it passes to every
//! build (which a driver may not set) and the placeholders a tag template may use.

/// The tag `build` pushes every image to before it is confirmed. Nothing deploys it: KMM pulls
/// the job's own tag, which moves only once the image is confirmed (see
/// [`crate::pipeline::build`]), and `collect` reads only the jobs' tags.
pub const UNCONFIRMED_TAG: &str = "driver-matrix-unconfirmed";

/// The reserved build args.
pub mod arg {
    /// The DTK image by digest, as KMM names it.
    pub const DTK_AUTO: &str = "DTK_AUTO";
    /// The DTK image by digest.
    pub const DTK_IMAGE: &str = "DTK_IMAGE";
    pub const KERNEL_FULL_VERSION: &str = "KERNEL_FULL_VERSION";
    pub const KERNEL_VERSION: &str = "KERNEL_VERSION";
    pub const RHEL_VERSION: &str = "RHEL_VERSION";
}

/// Build args driver-matrix sets for every build, in the contract's order; a driver may not set
/// them.
pub const RESERVED_BUILD_ARGS: [&str; 5] = [
    arg::DTK_IMAGE,
    arg::DTK_AUTO,
    arg::KERNEL_VERSION,
    arg::KERNEL_FULL_VERSION,
    arg::RHEL_VERSION,
];

/// Placeholders of a tag template that are not build args.
pub mod placeholder {
    pub const DRIVER: &str = "DRIVER";
    pub const ARCH: &str = "ARCH";
}

/// Placeholders every tag template may use, besides the driver's own build-arg names.
pub const TEMPLATE_PLACEHOLDERS: [&str; 5] = [
    arg::KERNEL_FULL_VERSION,
    arg::KERNEL_VERSION,
    placeholder::DRIVER,
    placeholder::ARCH,
    arg::RHEL_VERSION,
];
