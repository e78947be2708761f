//! The event of the contract (v1): what one service reports about one identity action.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

/// Text borrowed from the message when it needs no unescaping, owned otherwise.
pub type Text<'a> = Cow<'a, str>;

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Authn,
    TokenIssue,
    TokenRevoke,
    Authz,
}

impl Kind {
    /// The contract's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Authn => "authn",
            Kind::TokenIssue => "token_issue",
            Kind::TokenRevoke => "token_revoke",
            Kind::Authz => "authz",
        }
    }

    /// Parses the contract's name of a kind.
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "authn" => Some(Kind::Authn),
            "token_issue" => Some(Kind::TokenIssue),
            "token_revoke" => Some(Kind::TokenRevoke),
            "authz" => Some(Kind::Authz),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the principal is a person or a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    User,
    Service,
}

impl PrincipalType {
    /// The contract's name of the principal type.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "user",
            PrincipalType::Service => "service",
        }
    }

    /// Parses the contract's name of a principal type.
    pub fn parse(name: &str) -> Option<PrincipalType> {
        match name {
            "user" => Some(PrincipalType::User),
            "service" => Some(PrincipalType::Service),
            _ => None,
        }
    }

    /// The type the contract infers when a reporter leaves `principal_type` out.
    pub fn infer(principal: &str) -> PrincipalType {
        if principal.starts_with("svc:") || principal.starts_with("spiffe://") {
            PrincipalType::Service
        } else {
            PrincipalType::User
        }
    }
}

/// The result of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    Allow,
    Deny,
}

impl Outcome {
    /// The contract's name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }

    /// Parses the contract's name of an outcome.
    pub fn parse(name: &str) -> Option<Outcome> {
        match name {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "allow" => Some(Outcome::Allow),
            "deny" => Some(Outcome::Deny),
            _ => None,
        }
    }

    /// Whether this outcome is one the kind may carry: authz decides allow/deny, the
    /// others succeed or fail.
    pub fn fits(self, kind: Kind) -> bool {
        let is_decision = matches!(self, Outcome::Allow | Outcome::Deny);
        is_decision == (kind == Kind::Authz)
    }
}

/// One accepted event, every field of the contract, validated and normalised.
///
/// Normalisation: `principal_type` is inferred when absent, `target_service` of an
/// `authz` event defaults to `service`, `token_scopes` and `required_scopes` given as one
/// string are split on whitespace, `source_ip` is parsed, unknown top-level fields are moved into
/// `attributes`, and a bearer token or JWT/JWE in `token_id`, `session_id` or an attribute
/// is replaced by its digest (see [`token_fingerprint`](crate::token_fingerprint)).
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub id: Text<'a>,
    pub time: Micros,
    pub kind: Kind,
    pub principal: Text<'a>,
    pub principal_type: PrincipalType,
    pub service: Option<Text<'a>>,
    pub outcome: Option<Outcome>,
    pub reason: Option<Text<'a>>,
    pub source_ip: Option<IpAddr>,
    pub source_service: Option<Text<'a>>,
    pub target_service: Option<Text<'a>>,
    pub resource: Option<Text<'a>>,
    pub action: Option<Text<'a>>,
    pub token_id: Option<Text<'a>>,
    pub token_issuer: Option<Text<'a>>,
    pub token_audience: Option<Vec<Text<'a>>>,
    pub token_scopes: Option<Vec<Text<'a>>>,
    /// On `authz`: the scopes the deciding service required for this resource and action
    /// (what the caller exercised when allowed), so granted scopes can be weighed against
    /// used ones.
    pub required_scopes: Option<Vec<Text<'a>>>,
    pub token_expires: Option<Micros>,
    pub client_id: Option<Text<'a>>,
    pub auth_method: Option<Text<'a>>,
    pub mfa: Option<bool>,
    pub user_agent: Option<Text<'a>>,
    pub session_id: Option<Text<'a>>,
    pub trace_id: Option<Text<'a>>,
    /// Reporter attributes plus unknown top-level fields, in the order they arrived.
    pub attributes: Vec<(Text<'a>, Text<'a>)>,
}

impl<'a> Event<'a> {
    /// An event with the fields every kind requires, `principal_type` inferred as the
    /// contract does, and nothing else: what tests, benches and generators start from.
    pub fn new(id: Text<'a>, time: Micros, kind: Kind, principal: Text<'a>) -> Self {
        Event {
            id,
            time,
            kind,
            principal_type: PrincipalType::infer(&principal),
            principal,
            service: None,
            outcome: None,
            reason: None,
            source_ip: None,
            source_service: None,
            target_service: None,
            resource: None,
            action: None,
            token_id: None,
            token_issuer: None,
            token_audience: None,
            token_scopes: None,
            required_scopes: None,
            token_expires: None,
            client_id: None,
            auth_method: None,
            mfa: None,
            user_agent: None,
            session_id: None,
            trace_id: None,
            attributes: Vec::new(),
        }
    }
}

impl Event<'_> {
    /// The value of one attribute, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// A copy that borrows nothing from the message it was parsed from.
    pub fn into_owned(self) -> Event<'static> {
        fn own(text: Text<'_>) -> Text<'static> {
            Cow::Owned(text.into_owned())
        }
        fn own_opt(text: Option<Text<'_>>) -> Option<Text<'static>> {
            text.map(own)
        }
        fn own_list(list: Option<Vec<Text<'_>>>) -> Option<Vec<Text<'static>>> {
            list.map(|items| items.into_iter().map(own).collect())
        }
        Event {
            id: own(self.id),
            time: self.time,
            kind: self.kind,
            principal: own(self.principal),
            principal_type: self.principal_type,
            service: own_opt(self.service),
            outcome: self.outcome,
            reason: own_opt(self.reason),
            source_ip: self.source_ip,
            source_service: own_opt(self.source_service),
            target_service: own_opt(self.target_service),
            resource: own_opt(self.resource),
            action: own_opt(self.action),
            token_id: own_opt(self.token_id),
            token_issuer: own_opt(self.token_issuer),
            token_audience: own_list(self.token_audience),
            token_scopes: own_list(self.token_scopes),
            required_scopes: own_list(self.required_scopes),
            token_expires: self.token_expires,
            client_id: own_opt(self.client_id),
            auth_method: own_opt(self.auth_method),
            mfa: self.mfa,
            user_agent: own_opt(self.user_agent),
            session_id: own_opt(self.session_id),
            trace_id: own_opt(self.trace_id),
            attributes: self
                .attributes
                .into_iter()
                .map(|(k, v)| (own(k), own(v)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_service_principals_from_their_prefix() {
        assert_eq!(PrincipalType::infer("svc:payments"), PrincipalType::Service);
        assert_eq!(
            PrincipalType::infer("spiffe://prod/ns/pay/sa/api"),
            PrincipalType::Service
        );
        assert_eq!(PrincipalType::infer("user:alice"), PrincipalType::User);
        assert_eq!(PrincipalType::infer("alice"), PrincipalType::User);
    }

    #[test]
    fn authz_outcomes_are_decisions_and_others_are_results() {
        assert!(Outcome::Allow.fits(Kind::Authz));
        assert!(Outcome::Deny.fits(Kind::Authz));
        assert!(!Outcome::Success.fits(Kind::Authz));
        assert!(Outcome::Failure.fits(Kind::Authn));
        assert!(!Outcome::Deny.fits(Kind::TokenIssue));
    }
}
