//! `service_interactive_login`: a service principal logs in the way people do (a
//! password, an MFA prompt, a browser): someone is using a workload's credentials by hand.

use std::time::Duration;

use authtrail_model::{Event, Outcome, PrincipalType, Severity};
use serde::{Deserialize, Serialize};

use crate::config::default_suppression;
use crate::detector::{Context, Detector};

/// `service_interactive_login`: a workload identity used interactively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceInteractiveLoginConfig {
    /// Run this detector.
    pub enabled: bool,
    pub severity: Severity,
    /// Repeats for the same principal within this period are suppressed.
    #[serde(with = "humantime_serde")]
    pub suppression: Duration,
}

impl Default for ServiceInteractiveLoginConfig {
    fn default() -> Self {
        ServiceInteractiveLoginConfig {
            enabled: true,
            severity: Severity::High,
            suppression: default_suppression(),
        }
    }
}

/// Browsers all announce themselves as `Mozilla/5.0 (...)` (Opera's old UA aside);
/// HTTP clients of workloads do not.
fn is_browser(user_agent: &str) -> bool {
    user_agent.starts_with("Mozilla/") || user_agent.starts_with("Opera/")
}

/// Why a login looks interactive, if it does.
fn interactive_by(event: &Event<'_>) -> Option<String> {
    if let Some(method) = event.auth_method.as_deref() {
        if method == "password" || method.starts_with("mfa_") {
            return Some(format!("with `{method}`"));
        }
    }
    let agent = event.user_agent.as_deref().filter(|ua| is_browser(ua))?;
    let agent: String = agent.chars().take(40).collect();
    Some(format!("from a browser ({agent})"))
}

/// No state: each login is judged on its own.
pub(crate) struct ServiceInteractiveLogin;

impl Detector for ServiceInteractiveLogin {
    fn observe(&mut self, event: &Event<'_>, cx: &mut Context<'_>) {
        // "Authenticates": a successful login; failed ones are brute_force's business.
        if event.principal_type != PrincipalType::Service || event.outcome != Some(Outcome::Success)
        {
            return;
        }
        let Some(how) = interactive_by(event) else {
            return;
        };
        let summary = format!("service principal {} logged in {how}", event.principal);
        let (principal, evidence) = (event.principal.to_string(), vec![event.id.to_string()]);
        cx.findings
            .push(cx.rule.finding(event, principal, summary, evidence));
    }
}

#[cfg(test)]
mod tests {
    use crate::detectors::testkit::{authn, only, run, text};

    #[test]
    fn fires_on_a_service_logging_in_with_a_password() {
        let alerts = run(
            &only("service_interactive_login"),
            &[authn("e1", 0.0, "svc:payments", true, "password")],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].attack_technique, "T1078.004");
        assert_eq!(alerts[0].evidence_ids, ["e1"]);
    }

    #[test]
    fn fires_on_mfa_and_on_a_browser() {
        let mut browser = authn("e2", 1.0, "spiffe://prod/ns/pay/sa/api", true, "mtls");
        browser.user_agent = text("Mozilla/5.0 (X11; Linux x86_64)");
        let events = [authn("e1", 0.0, "svc:payments", true, "mfa_push"), browser];
        assert_eq!(run(&only("service_interactive_login"), &events).len(), 2);
    }

    #[test]
    fn silent_on_machine_logins_users_and_failures() {
        let mut curl = authn("e1", 0.0, "svc:payments", true, "client_credentials");
        curl.user_agent = text("curl/8.5.0");
        let events = [
            curl,
            authn("e2", 1.0, "svc:payments", true, "mtls"),
            authn("e3", 2.0, "user:alice", true, "password"),
            authn("e4", 3.0, "svc:payments", false, "password"),
        ];
        assert!(run(&only("service_interactive_login"), &events).is_empty());
    }

    #[test]
    fn repeats_are_suppressed_and_counted() {
        let events: Vec<_> = (0..4)
            .map(|i| {
                authn(
                    &format!("e{i}"),
                    i as f64 * 200.0,
                    "svc:payments",
                    true,
                    "password",
                )
            })
            .collect();
        let alerts = run(&only("service_interactive_login"), &events);
        // 0 s raises; 200 s and 400 s are repeats; 600 s is past the 10 min period.
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1].suppressed_count, 2);
        assert_eq!(alerts[1].evidence_ids, ["e3"]);
    }
}
