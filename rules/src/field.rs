//! The event fields rules name: the contract's columns, and `attributes.<name>`.

use std::net::IpAddr;

use authtrail_model::Event;

/// A field of [`Event`] a rule can test.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    Time,
    Kind,
    Principal,
    PrincipalType,
    Service,
    Outcome,
    Reason,
    SourceIp,
    SourceService,
    TargetService,
    Resource,
    Action,
    TokenId,
    TokenIssuer,
    TokenAudience,
    TokenScopes,
    TokenExpires,
    ClientId,
    AuthMethod,
    Mfa,
    UserAgent,
    SessionId,
    TraceId,
    /// `attributes.<name>`.
    Attribute(Box<str>),
    /// A native field of an adapted source, named as Sigma's rules for that product
    /// write it (`displaymessage`): the attribute of that name ignoring ASCII case
    /// (`displayMessage`).
    Native(Box<str>),
}

/// Where a rule's events come from (`logsource.product`), which decides how its field
/// names resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// authtrail's own events: the contract's columns and `attributes.<name>`.
    Authtrail,
    /// Okta System Log records read by the `okta` adapter, with field names as
    /// SigmaHQ's Okta rules write them.
    Okta,
}

/// Okta System Log fields the `okta` adapter moves into contract columns (so they are
/// not in `attributes`), as SigmaHQ's rules name them (lowercase), with the column or
/// attribute that holds the same value. `eventType` becomes the `source_type` attribute
/// the adapter keeps for every native record. Fields it transforms (`actor.alternateId`
/// gets a `user:` prefix, `outcome.result` a contract outcome) are not listed: a rule
/// naming them finds no such attribute and does not match.
const OKTA_MOVED: [(&str, &str); 6] = [
    ("eventtype", "attributes.source_type"),
    ("uuid", "id"),
    ("client.ipaddress", "source_ip"),
    ("client.useragent.rawuseragent", "user_agent"),
    ("authenticationcontext.externalsessionid", "session_id"),
    ("outcome.reason", "reason"),
];

/// Every field but attributes, so [`Field::name`] is the one place names are spelled.
const COLUMNS: [Field; 24] = [
    Field::Id,
    Field::Time,
    Field::Kind,
    Field::Principal,
    Field::PrincipalType,
    Field::Service,
    Field::Outcome,
    Field::Reason,
    Field::SourceIp,
    Field::SourceService,
    Field::TargetService,
    Field::Resource,
    Field::Action,
    Field::TokenId,
    Field::TokenIssuer,
    Field::TokenAudience,
    Field::TokenScopes,
    Field::TokenExpires,
    Field::ClientId,
    Field::AuthMethod,
    Field::Mfa,
    Field::UserAgent,
    Field::SessionId,
    Field::TraceId,
];

/// The lake's column of attributes.
pub const ATTRIBUTES_COLUMN: &str = "attributes";

/// Prefix of the fields that reach an event's attributes.
const ATTRIBUTES: &str = "attributes.";

/// One value of a field of one event, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Text(&'a str),
    Ip(IpAddr),
    Bool(bool),
    /// Times as microseconds since the Unix epoch.
    Int(i64),
}

impl Field {
    /// The field a rule names, or `None` when the contract has no such field.
    pub fn parse(name: &str) -> Option<Field> {
        if let Some(attribute) = name.strip_prefix(ATTRIBUTES) {
            return (!attribute.is_empty()).then(|| Field::Attribute(attribute.into()));
        }
        COLUMNS.iter().find(|field| field.name() == name).cloned()
    }

    /// The field a rule for `product` names. Okta rules name native fields: those the
    /// adapter moved into columns resolve to them (`OKTA_MOVED`), any other to the
    /// attribute of that name ignoring case; `None` for a name no field can have.
    pub fn parse_for(product: Product, name: &str) -> Option<Field> {
        match product {
            Product::Authtrail => Field::parse(name),
            Product::Okta => {
                if name.starts_with(ATTRIBUTES) {
                    return Field::parse(name);
                }
                let lower = name.to_ascii_lowercase();
                if let Some((_, ours)) = OKTA_MOVED.iter().find(|(okta, _)| *okta == lower) {
                    return Field::parse(ours);
                }
                let native = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                native.then(|| Field::Native(name.into()))
            }
        }
    }

    /// The name rules use for the field.
    pub fn name(&self) -> &str {
        match self {
            Field::Id => "id",
            Field::Time => "time",
            Field::Kind => "kind",
            Field::Principal => "principal",
            Field::PrincipalType => "principal_type",
            Field::Service => "service",
            Field::Outcome => "outcome",
            Field::Reason => "reason",
            Field::SourceIp => "source_ip",
            Field::SourceService => "source_service",
            Field::TargetService => "target_service",
            Field::Resource => "resource",
            Field::Action => "action",
            Field::TokenId => "token_id",
            Field::TokenIssuer => "token_issuer",
            Field::TokenAudience => "token_audience",
            Field::TokenScopes => "token_scopes",
            Field::TokenExpires => "token_expires",
            Field::ClientId => "client_id",
            Field::AuthMethod => "auth_method",
            Field::Mfa => "mfa",
            Field::UserAgent => "user_agent",
            Field::SessionId => "session_id",
            Field::TraceId => "trace_id",
            Field::Attribute(name) | Field::Native(name) => name,
        }
    }

    /// The lake's column holding the field: its name, `attributes` for an attribute.
    pub fn column(&self) -> &str {
        match self {
            Field::Attribute(_) | Field::Native(_) => ATTRIBUTES_COLUMN,
            column => column.name(),
        }
    }

    /// Calls `each` with every value the field has in `event` (none when absent; one
    /// per element of `token_audience` and `token_scopes`) until it returns `true`;
    /// returns whether one did. Allocates nothing.
    pub fn any_value<'e>(
        &self,
        event: &'e Event<'_>,
        mut each: impl FnMut(FieldValue<'e>) -> bool,
    ) -> bool {
        fn text<'e>(value: &'e Option<authtrail_model::Text<'_>>) -> Option<FieldValue<'e>> {
            value.as_deref().map(FieldValue::Text)
        }
        let one = match self {
            Field::Id => Some(FieldValue::Text(&event.id)),
            Field::Time => Some(FieldValue::Int(event.time)),
            Field::Kind => Some(FieldValue::Text(event.kind.as_str())),
            Field::Principal => Some(FieldValue::Text(&event.principal)),
            Field::PrincipalType => Some(FieldValue::Text(event.principal_type.as_str())),
            Field::Service => text(&event.service),
            Field::Outcome => event
                .outcome
                .map(|outcome| FieldValue::Text(outcome.as_str())),
            Field::Reason => text(&event.reason),
            Field::SourceIp => event.source_ip.map(FieldValue::Ip),
            Field::SourceService => text(&event.source_service),
            Field::TargetService => text(&event.target_service),
            Field::Resource => text(&event.resource),
            Field::Action => text(&event.action),
            Field::TokenId => text(&event.token_id),
            Field::TokenIssuer => text(&event.token_issuer),
            Field::TokenAudience | Field::TokenScopes => {
                let list = match self {
                    Field::TokenAudience => &event.token_audience,
                    _ => &event.token_scopes,
                };
                return list
                    .iter()
                    .flatten()
                    .any(|item| each(FieldValue::Text(item)));
            }
            Field::TokenExpires => event.token_expires.map(FieldValue::Int),
            Field::ClientId => text(&event.client_id),
            Field::AuthMethod => text(&event.auth_method),
            Field::Mfa => event.mfa.map(FieldValue::Bool),
            Field::UserAgent => text(&event.user_agent),
            Field::SessionId => text(&event.session_id),
            Field::TraceId => text(&event.trace_id),
            Field::Attribute(name) => event.attribute(name).map(FieldValue::Text),
            Field::Native(name) => event
                .attributes
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| FieldValue::Text(value)),
        };
        one.is_some_and(each)
    }

    /// The field's text in `event`, for a single-valued text field (`None` when absent,
    /// and for lists, IPs, booleans and times).
    pub fn text<'e>(&self, event: &'e Event<'_>) -> Option<&'e str> {
        let mut found = None;
        if !matches!(self, Field::TokenAudience | Field::TokenScopes) {
            self.any_value(event, |value| {
                if let FieldValue::Text(text) = value {
                    found = Some(text);
                }
                true
            });
        }
        found
    }

    /// Whether the field is present in `event`.
    pub fn exists(&self, event: &Event<'_>) -> bool {
        self.any_value(event, |_| true)
    }

    /// The field's values joined by `,` (for group keys and summaries).
    pub fn render(&self, event: &Event<'_>, out: &mut String) {
        let mut first = true;
        self.any_value(event, |value| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            use std::fmt::Write;
            let _ = match value {
                FieldValue::Text(text) => write!(out, "{text}"),
                FieldValue::Ip(IpAddr::V4(ip)) => {
                    push_ipv4(ip, out);
                    Ok(())
                }
                FieldValue::Ip(ip) => write!(out, "{ip}"),
                FieldValue::Bool(flag) => write!(out, "{flag}"),
                FieldValue::Int(number) => write!(out, "{number}"),
            };
            false
        });
    }
}

/// Writes `ip` as its `Display` does (`10.0.0.1`), without the formatting machinery:
/// group keys and counted values render an address per match.
fn push_ipv4(ip: std::net::Ipv4Addr, out: &mut String) {
    for (at, octet) in ip.octets().into_iter().enumerate() {
        if at > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ipv4_as_display_does() {
        for ip in ["0.0.0.0", "10.0.0.1", "192.168.100.255", "9.99.100.250"] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = String::new();
            push_ipv4(ip, &mut out);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn names_the_contract_columns_and_attributes_only() {
        assert_eq!(Field::parse("principal"), Some(Field::Principal));
        assert_eq!(
            Field::parse("attributes.tenant"),
            Some(Field::Attribute("tenant".into()))
        );
        assert_eq!(Field::parse("attributes."), None);
        assert_eq!(Field::parse("pricipal"), None);
        assert_eq!(Field::parse("Principal"), None);
    }
}
