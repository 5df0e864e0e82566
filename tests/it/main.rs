//! The one integration-test binary (style: ripgrep's tests/tests.rs).
//! Each area of ferry has its own module; `support` starts whm-sim and runs
//! the `ferry` binary.

mod apply;
mod crash;
mod journal;
mod policy;
mod resume;
mod sim;
mod simkit;
mod support;
