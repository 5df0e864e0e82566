//! The one integration-test binary (style: ripgrep's tests/tests.rs).
//! Each area of ferry has its own module; `support` starts whm-sim and runs
//! the `ferry` binary.

mod apply;
mod check;
mod client;
mod conveniences;
mod crash;
mod fixtures;
mod gitops;
mod graph;
mod ground_truth;
mod journal;
mod observe;
mod pg;
mod plan;
mod plan_marks;
mod policy;
mod report;
mod resume;
mod secrets;
mod sim;
mod sim_conformance;
mod sim_faults;
mod sim_features;
mod sim_states;
mod sim_timing;
mod simkit;
mod support;
