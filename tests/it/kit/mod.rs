//! The one test kit: whm-sim started in the test process, and two ways to
//! drive it.
//!
//! * [`world`] — a fleet described once becomes a whm-sim scenario and a
//!   matching plan; `ferry` runs as a real process against it (killed,
//!   respawned, paused) and the simulator's own record is the oracle.
//! * [`whm`] — WHM API 1 called directly over real HTTP, every request and
//!   answer checked against the parameter and response rules in
//!   `tests/fixtures/whm-transfers.params.json`.
//!
//! Facts both use are defined here, once.

#![allow(dead_code)]

pub mod whm;
pub mod world;

pub use whm::*;
pub use world::*;

/// The target's API token in every test scenario.
pub const TOKEN: &str = "s3cret";
/// The sources' root password in [`world`] fleets.
pub const SSH_PW: &str = "pw-old";
