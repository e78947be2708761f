//! Sigma rules over authtrail's events: detection as code next to the built-in detectors.
//!
//! Rule files (YAML, one or more documents each) are read by [`Pack::load`]: `yaml`
//! turns them into nodes that know their line, `rule` compiles each document (field
//! names checked against the event contract, regexes and CIDR ranges parsed once,
//! conditions to a tree), and the pack resolves which correlation rules take which
//! detection rules' matches. A [`RuleSet`] runs a pack on each
//! [`Event`](authtrail_model::Event): detection rules match it field by field without
//! allocating, correlation rules keep per-group windows on event time (bounded, evictions
//! counted), and both raise [`Alert`](authtrail_model::Alert)s of the built-ins' shape and
//! id scheme. [`run_tests`] runs the test cases kept beside each rule file.

mod condition;
mod correlation;
mod engine;
mod error;
mod field;
mod matcher;
mod matches;
mod pack;
mod rule;
mod testcase;
mod yaml;

pub use engine::{ClockReading, RuleSet, RulesStats, Settings};
pub use error::{Error, FileProblem};
pub use pack::{is_rule_file, Pack, TESTS_SUFFIX};
pub use testcase::{run_tests, CaseResult};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
