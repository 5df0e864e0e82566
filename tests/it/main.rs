//! The one integration-test binary (style: ripgrep's tests/tests.rs).
//! Each area of ferry has its own module; `kit` starts whm-sim, runs
//! the `ferry` binary and calls WHM directly.

mod apply;
mod check;
mod client;
mod conveniences;
mod crash;
mod fixtures;
mod gitops;
mod graph;
mod ground_truth;
mod inventory;
mod journal;
mod kit;
mod observe;
mod options;
mod pg;
mod plan;
mod plan_marks;
mod policy;
mod progress;
mod report;
mod resume;
mod schedule;
mod secrets;
mod sim;
mod sim_conformance;
mod sim_faults;
mod sim_features;
mod sim_states;
mod sim_timing;
mod verify;
mod watch;
