//! `new_service_edge`: an `authz` shows a principal reaching a target service that is new
//! to it (a service's own baseline) or to users as a whole (the population's baseline).
//! The baseline itself lives in `tracked::baseline`, since `service_fan_out` reads it too.

use std::time::Duration;

use authtrail_model::{Event, Severity};
use serde::{Deserialize, Serialize};

use crate::config::default_suppression;
use crate::detector::{Context, Detector, Finding};

/// `new_service_edge`: a principal reaching a service it (or users) never reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewServiceEdgeConfig {
    /// Run this detector.
    pub enabled: bool,
    /// Event time a service principal is observed (and, for users, since the first user
    /// event) before edges count as new; also the baseline of `service_fan_out`.
    #[serde(with = "humantime_serde")]
    pub learning: Duration,
    /// Severity of a service reaching a new target.
    pub service_severity: Severity,
    /// Severity of a user reaching a target no user reached while learning.
    pub user_severity: Severity,
    /// Repeats for the same principal and target within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for NewServiceEdgeConfig {
    fn default() -> Self {
        NewServiceEdgeConfig {
            enabled: true,
            learning: Duration::from_secs(24 * 3_600),
            service_severity: Severity::High,
            user_severity: Severity::Medium,
            suppression: default_suppression(),
        }
    }
}

/// Each finding has the severity of its kind of edge, a service's or a user's.
pub(crate) struct NewServiceEdge {
    config: NewServiceEdgeConfig,
}

impl NewServiceEdge {
    pub fn new(config: &NewServiceEdgeConfig) -> Self {
        let config = config.clone();
        NewServiceEdge { config }
    }
}

impl Detector for NewServiceEdge {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        let (Some(edge), Some(target)) = (cx.facts.edge, event.target_service.as_deref()) else {
            return;
        };
        if !edge.new {
            return;
        }
        let (severity, summary) = if edge.service {
            let summary = format!("{} reached {target} for the first time", event.principal);
            (self.config.service_severity, summary)
        } else {
            let summary = format!(
                "{} reached {target}, which no user reached while learning",
                event.principal
            );
            (self.config.user_severity, summary)
        };
        let key = format!("{} -> {target}", event.principal);
        cx.findings.push(Finding {
            severity,
            ..cx.rule
                .finding(event, key, summary, vec![event.id.to_string()])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::testkit::{authz, only, reaches, run, same_calls_every_day};

    const DAY: f64 = 24.0 * 3_600.0;

    #[test]
    fn fires_when_a_learnt_service_reaches_a_new_target() {
        let events = [
            authz("e1", 0.0, "svc:checkout", "payments", true),
            authz("e2", DAY, "svc:checkout", "payments", true),
            authz("e3", DAY + 1.0, "svc:checkout", "hr-db", false),
        ];
        let alerts = run(&only("new_service_edge"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::High);
        assert_eq!(alerts[0].target_service.as_deref(), Some("hr-db"));
        assert_eq!(alerts[0].key, "svc:checkout -> hr-db");
        assert_eq!(alerts[0].attack_technique, "T1021");
    }

    #[test]
    fn an_edge_is_new_only_once_for_a_service() {
        let events = [
            authz("e1", 0.0, "svc:checkout", "payments", true),
            authz("e2", DAY, "svc:checkout", "hr-db", true),
            authz("e3", DAY + 3_600.0, "svc:checkout", "hr-db", true),
        ];
        assert_eq!(run(&only("new_service_edge"), &events).len(), 1);
    }

    #[test]
    fn silent_for_a_brand_new_service_in_its_learning_period() {
        // Twenty targets in its first minutes: all of it is baseline.
        let events = reaches("e", "svc:fresh", "svc-", 20, 0.0, 1.0);
        assert!(run(&only("new_service_edge"), &events).is_empty());
        // One second short of the learning period is still learning.
        let edge = [
            authz("a", 0.0, "svc:fresh", "payments", true),
            authz("b", DAY - 1.0, "svc:fresh", "orders", true),
        ];
        assert!(run(&only("new_service_edge"), &edge).is_empty());
    }

    #[test]
    fn silent_for_a_service_that_calls_many_services_every_day() {
        let events = same_calls_every_day(15, 10.0);
        assert!(run(&only("new_service_edge"), &events).is_empty());
    }

    #[test]
    fn fires_when_a_user_reaches_a_service_no_user_reached_while_learning() {
        let events = [
            authz("e1", 0.0, "user:alice", "web", true),
            authz("e2", 10.0, "user:bob", "api", true),
            authz("e3", DAY, "user:carol", "api", true),
            authz("e4", DAY + 1.0, "user:carol", "ledger-db", false),
        ];
        let alerts = run(&only("new_service_edge"), &events);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].severity, Severity::Medium);
        assert_eq!(alerts[0].principal, "user:carol");
    }
}
