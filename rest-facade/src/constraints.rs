//! The shapes of the values the core accepts, as OpenAPI schemas, so that the document
//! says as much as the validation does: generated clients and fuzzers can trust that a
//! value matching its schema is not refused for its shape. Request fields point here
//! with `#[schema(schema_with = …)]`; path parameters get theirs by name in
//! `openapi::PathParameters`. Where a pattern is narrower than what the core accepts
//! (host names, e-mail addresses), it errs on the side of values that are surely good.

use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Array, Object};

/// A resource name: letters, digits, `-`, `_`, `.`.
pub const NAME: &str = "^[A-Za-z0-9._-]{1,64}$";
/// An opaque id, such as `gw-3f9a0c2b7d1e4a56`.
pub const ID: &str = "^[A-Za-z0-9._:-]{1,128}$";
/// A group name: up to 128 characters, no commas or control characters, no white space
/// at either end.
pub const GROUP: &str = "^[^\\s,\\u0000-\\u001F\\u007F-\\u009F](?:[^,\\u0000-\\u001F\\u007F-\\u009F]{0,126}[^\\s,\\u0000-\\u001F\\u007F-\\u009F])?$";
/// A certificate serial in hex, colons allowed between octets.
pub const SERIAL: &str = "^(?:[0-9A-Fa-f]{1,40}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){0,19})$";
/// A group name, or nothing.
const OPTIONAL_GROUP: &str = "^(?:|[^\\s,\\u0000-\\u001F\\u007F-\\u009F](?:[^,\\u0000-\\u001F\\u007F-\\u009F]{0,126}[^\\s,\\u0000-\\u001F\\u007F-\\u009F])?)$";
/// An identity provider's name: a resource name, except the reserved `local`, `gatekey`
/// and `api` in any case.
pub const PROVIDER_NAME: &str =
    "^(?![Ll][Oo][Cc][Aa][Ll]$|[Gg][Aa][Tt][Ee][Kk][Ee][Yy]$|[Aa][Pp][Ii]$)[A-Za-z0-9._-]{1,64}$";
/// Text without control characters.
const TEXT: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// Text without control characters that does not start with white space (so it is not
/// empty once trimmed).
const NON_BLANK_TEXT: &str = "^[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// A DNS name (letters, digits and inner hyphens in each label), which an IPv4 address
/// also is.
const HOSTNAME: &str =
    "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
/// An IPv4 octet.
const OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// An e-mail address of the plain kind: dot-separated atoms, and a domain of two to
/// four labels with single inner hyphens.
const EMAIL: &str = "^[A-Za-z0-9_%+-]{1,20}(?:\\.[A-Za-z0-9_%+-]{1,20}){0,2}@[A-Za-z0-9]{1,3}(?:-?[A-Za-z0-9]{1,20}){0,2}(?:\\.[A-Za-z0-9]{1,3}(?:-?[A-Za-z0-9]{1,20}){0,2}){1,3}$";
/// An http(s) URL with a host name, or nothing.
const URL: &str = "^(?:|https?://[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?){0,3}(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~-]{0,40}){0,4})$";
/// A same-site path: `/`, then neither `/` nor `\`; printable ASCII without `\`.
const SAME_SITE_PATH: &str = "^(?:/|/[ -.0-\\[\\]-~][ -\\[\\]-~]{0,1997})?$";

fn string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern))
}

fn array_of(item: Object, min: usize, max: usize) -> Array {
    ArrayBuilder::new().items(item).min_items(Some(min)).max_items(Some(max)).build()
}

/// IPv4 with a prefix length of `prefixes` (an alternation such as `3[0-2]|[12]?[0-9]`).
fn ipv4_cidr(prefixes: &str) -> String {
    format!("^(?:{OCTET}\\.){{3}}{OCTET}/(?:{prefixes})$")
}

/// A resource name.
pub fn name() -> Object {
    string(NAME).build()
}

/// An opaque id.
pub fn id() -> Object {
    string(ID).build()
}

/// Opaque ids.
pub fn ids() -> Array {
    array_of(id(), 0, 1000)
}

/// A group name.
pub fn group() -> Object {
    string(GROUP).build()
}

/// Group names (at most 100).
pub fn groups() -> Array {
    array_of(group(), 0, 100)
}

/// A certificate serial.
pub fn serial() -> Object {
    string(SERIAL).build()
}

/// A description: up to 500 characters, no control characters.
pub fn description() -> Object {
    string(TEXT).max_length(Some(500)).build()
}

/// A display name: up to 200 characters, no control characters.
pub fn display_name() -> Object {
    string(TEXT).max_length(Some(200)).build()
}

/// A short label that must not be blank (an API key's name): up to 100 characters.
pub fn label() -> Object {
    string(NON_BLANK_TEXT).min_length(Some(1)).max_length(Some(100)).build()
}

/// Free text of at most 500 characters (an SP entity id, a claim name).
pub fn short_text() -> Object {
    string(TEXT).max_length(Some(500)).build()
}

/// A host name clients connect to.
pub fn hostname() -> Object {
    string(HOSTNAME).max_length(Some(253)).build()
}

/// An e-mail address.
pub fn email() -> Object {
    string(EMAIL).format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))).max_length(Some(254)).build()
}

/// A password: 12 to 1024 characters.
pub fn password() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(12)).max_length(Some(1024)).build()
}

/// A TCP/UDP port.
pub fn port() -> Object {
    port_from(1)
}

/// A TCP/UDP port, or 0 for none (a gateway's default port, or every port of a rule).
pub fn port_or_unset() -> Object {
    port_from(0)
}

fn port_from(minimum: i32) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(minimum))
        .maximum(Some(65535))
        .build()
}

/// An IPv4 CIDR.
pub fn cidr() -> Object {
    string(&ipv4_cidr("3[0-2]|[12]?[0-9]")).build()
}

/// One to 64 IPv4 CIDRs (IPv6 CIDRs are accepted too).
pub fn cidrs() -> Array {
    array_of(cidr(), 1, 64)
}

/// Zero to 64 IPv4 CIDRs.
pub fn optional_cidrs() -> Array {
    array_of(cidr(), 0, 64)
}

/// A spoke's networks: one to 64 IPv4 CIDRs of /8 or narrower.
pub fn spoke_cidrs() -> Array {
    array_of(string(&ipv4_cidr("3[0-2]|[12][0-9]|[89]")).build(), 1, 64)
}

/// A gateway's client pool: an IPv4 CIDR from /16 to /29.
pub fn vpn_subnet() -> Object {
    string(&ipv4_cidr("1[6-9]|2[0-9]")).build()
}

/// A gateway's client pool, or nothing for a free one.
pub fn vpn_subnet_or_unset() -> Object {
    string(&format!("^$|{}", ipv4_cidr("1[6-9]|2[0-9]"))).build()
}

/// An IPv4 address (IPv6 addresses are accepted too).
pub fn ip_address() -> Object {
    string(&format!("^(?:{OCTET}\\.){{3}}{OCTET}$")).format(Some(SchemaFormat::KnownFormat(KnownFormat::Ipv4))).build()
}

/// ISO 3166-1 alpha-2 country codes.
pub fn countries() -> Array {
    array_of(string("^[A-Za-z]{2}$").build(), 0, 300)
}

/// An RFC 3339 time.
pub fn date_time() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .build()
}

/// An http(s) URL, or nothing.
pub fn url() -> Object {
    string(URL).build()
}

/// OAuth scope names.
pub fn oauth_scopes() -> Array {
    array_of(string("^[A-Za-z0-9_:.-]{1,64}$").build(), 0, 20)
}

/// API key scopes.
pub fn api_key_scopes() -> Array {
    let scope = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["read", "write"])).build();
    array_of(scope, 0, 2)
}

/// An API key's lifetime in seconds: 0 (never expires) to ten years.
pub fn lifetime_seconds() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(0))
        .maximum(Some(315_360_000))
        .build()
}

/// A user name: letters, digits, `-`, `_`, `.`, `@`.
pub fn username() -> Object {
    string("^[A-Za-z0-9._@-]{1,64}$").build()
}

/// The name a local sign-in gives: 1 to 256 characters, no control characters (a name
/// no account has is refused as a failed sign-in, not as bad input).
pub fn login_name() -> Object {
    string(TEXT).min_length(Some(1)).max_length(Some(256)).build()
}

/// The password a local sign-in gives.
pub fn login_password() -> Object {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).build()
}

/// An identity provider's name: a resource name other than `local`, `gatekey` or `api`
/// (in any case), which the core keeps for itself.
pub fn provider_name() -> Object {
    string(PROVIDER_NAME).build()
}

/// An access rule's destination: an address, a CIDR or a host name, as its
/// `destination_type` says, inside the rule's network.
pub fn destination() -> Object {
    string("^[A-Za-z0-9.:/-]{1,253}$").build()
}

/// A file path on the core's host: up to 4096 characters, no control characters.
pub fn file_path() -> Object {
    string(TEXT).max_length(Some(4096)).build()
}

/// A geo-fence rule's subject: empty for a global rule, a group name or a user id.
pub fn subject() -> Object {
    string("^(?:|[^\\s,\\u0000-\\u001F\\u007F-\\u009F][^,\\u0000-\\u001F\\u007F-\\u009F]{0,127})$").build()
}

/// An OAuth client id: up to 200 characters, no control characters.
pub fn client_id() -> Object {
    string(TEXT).max_length(Some(200)).build()
}

/// An OAuth client secret (write-only; sealed at rest).
pub fn client_secret() -> Object {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(4096)).write_only(true).build()
}

/// The claim that carries a user's groups: up to 100 characters, no control characters.
pub fn claim_name() -> Object {
    string(TEXT).max_length(Some(100)).build()
}

/// A group name, or empty for none.
pub fn optional_group() -> Object {
    string(OPTIONAL_GROUP).build()
}

/// A SAML IdP's metadata document (XML).
pub fn saml_metadata() -> Object {
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(1_048_576)).build()
}

/// A certificate's common name as a gateway reports it: up to 320 characters, no control
/// characters.
pub fn common_name() -> Object {
    string(TEXT).max_length(Some(320)).build()
}

/// An address a gateway reports (`192.0.2.7:51820`, `10.8.0.6`): up to 64 characters.
pub fn reported_address() -> Object {
    string("^[0-9A-Fa-f.:\\[\\]]{0,64}$").build()
}

/// One of a fixed set of words, and the one the core assumes when the field is absent.
fn word(values: &[&str], default: Option<&str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(default.map(serde_json::Value::from))
        .build()
}

/// How geo-fencing acts on a denial.
pub fn geo_fence_mode() -> Object {
    word(&["enforce", "audit"], Some("enforce"))
}

/// What a geo-fence does with an address of no known country.
pub fn unknown_location_policy() -> Object {
    word(&["allow", "deny"], Some("deny"))
}

/// What a geo-fence rule does with the addresses it matches.
pub fn geo_fence_action() -> Object {
    word(&["allow", "deny"], None)
}

/// Whom a geo-fence rule applies to.
pub fn geo_fence_scope() -> Object {
    word(&["global", "group", "user"], Some("global"))
}

/// Why a certificate is revoked (RFC 5280 reason codes, in snake case).
pub fn revocation_reason() -> Object {
    word(
        &[
            "unspecified",
            "key_compromise",
            "ca_compromise",
            "affiliation_changed",
            "superseded",
            "cessation_of_operation",
            "privilege_withdrawn",
            "aa_compromise",
        ],
        Some("unspecified"),
    )
}

/// The VPN a config is generated for.
pub fn config_protocol() -> Object {
    word(&["openvpn"], Some("openvpn"))
}

/// Text to search for: up to 100 characters, no control characters.
pub fn search_text() -> Object {
    string(TEXT).max_length(Some(100)).build()
}

/// A native client's loopback listener: `http://127.0.0.1:<port>/…` or
/// `http://[::1]:<port>/…`.
pub fn loopback_url() -> Object {
    let port = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    string(&format!("^http://(?:127\\.0\\.0\\.1|\\[::1\\]):{port}(?:/[A-Za-z0-9._~-]{{0,40}}){{0,4}}$")).build()
}

/// BASE64URL(SHA-256(verifier)).
pub fn code_challenge() -> Object {
    string("^[A-Za-z0-9_-]{43}$").build()
}

/// A PKCE verifier: 43 to 128 unreserved characters.
pub fn code_verifier() -> Object {
    string("^[A-Za-z0-9._~-]{43,128}$").build()
}

/// A one-time code.
pub fn one_time_code() -> Object {
    string("^[A-Za-z0-9_-]{1,128}$").build()
}

/// A client's opaque value: printable ASCII, at most 128 characters.
pub fn opaque_state() -> Object {
    string("^[!-~]{0,128}$").build()
}

/// How a native client names itself: up to 100 characters, no control characters.
pub fn client_name() -> Object {
    string(TEXT).max_length(Some(100)).build()
}

/// A same-site path to return to after a login.
pub fn same_site_path() -> Object {
    string(SAME_SITE_PATH).build()
}

/// An identity provider's name as a query parameter: empty (the only one) or a name.
pub fn provider_choice() -> Object {
    string("^[A-Za-z0-9._-]{0,64}$").build()
}

/// The rules that tie a request body's members together, as JSON Schema (an `allOf`),
/// for the bodies that have them.
pub fn cross_field_rules(body: &str) -> Option<serde_json::Value> {
    let ipv4_address = format!("^(?:{OCTET}\\.){{3}}{OCTET}$");
    let rules = match body {
        "AccessRuleBody" => json!([
            // A rule names at least one user or group.
            {"anyOf": [non_empty("user_ids"), non_empty("groups")]},
            // The destination has the shape its type says (an address by default).
            {"oneOf": [
                {"properties": {"destination_type": {"enum": ["ip", null]}, "destination": {"pattern": ipv4_address}}},
                {"required": ["destination_type"], "properties": {
                    "destination_type": {"const": "cidr"},
                    "destination": {"pattern": ipv4_cidr("3[0-2]|[12]?[0-9]")}}},
                {"required": ["destination_type"], "properties": {
                    "destination_type": {"const": "hostname"},
                    "destination": {"pattern": HOSTNAME, "not": {"pattern": ipv4_address}}}},
            ]},
            // Ports belong to tcp and udp (any protocol by default); an end needs a start.
            {"oneOf": [
                {"required": ["protocol"], "properties": {"protocol": {"enum": ["tcp", "udp"]}}},
                {"properties": {
                    "protocol": {"enum": ["icmp", "any", null]},
                    "port_from": {"enum": [0, null]},
                    "port_to": {"enum": [0, null]}}},
            ]},
            {"anyOf": [
                {"properties": {"port_to": {"enum": [0, null]}}},
                {"required": ["port_from"], "properties": {"port_from": {"type": "integer", "minimum": 1}}},
            ]},
        ]),
        "GeoFenceRuleBody" => json!([
            // A rule matches at least one country or CIDR.
            {"anyOf": [non_empty("countries"), non_empty("cidrs")]},
            // A global rule (the default) has no subject; a group or user rule names one.
            {"oneOf": [
                {"properties": {"scope": {"enum": ["global", null]}, "subject": {"maxLength": 0}}},
                {"required": ["scope", "subject"], "properties": {
                    "scope": {"const": "group"}, "subject": {"type": "string", "pattern": GROUP}}},
                {"required": ["scope", "subject"], "properties": {
                    "scope": {"const": "user"}, "subject": {"type": "string", "pattern": ID}}},
            ]},
        ]),
        "AuthProviderBody" => json!([
            // OIDC needs an issuer and a client id; SAML needs the IdP's metadata.
            {"oneOf": [
                {"required": ["issuer_url", "client_id"], "properties": {
                    "type": {"const": "oidc"},
                    "issuer_url": {"type": "string", "minLength": 1},
                    "client_id": {"type": "string", "pattern": NON_BLANK_TEXT},
                    "saml_idp_metadata": {"maxLength": 0},
                    "saml_entity_id": {"maxLength": 0}}},
                {"required": ["saml_idp_metadata"], "properties": {
                    "type": {"const": "saml"},
                    "saml_idp_metadata": {"type": "string", "minLength": 1},
                    "issuer_url": {"maxLength": 0},
                    "client_id": {"maxLength": 0},
                    "client_secret": {"maxLength": 0},
                    "scopes": {"maxItems": 0}}},
            ]},
        ]),
        _ => return None,
    };
    Some(rules)
}

/// A member that must be present as a non-empty array.
fn non_empty(member: &str) -> serde_json::Value {
    json!({"required": [member], "properties": {member: {"type": "array", "minItems": 1}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns as the document publishes them are ECMA-262; these are the subset Rust's
    /// `regex` reads the same way, which checks them against the core's own rules.
    fn matches(pattern: &str, value: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(value)
    }

    #[test]
    fn patterns_accept_what_the_core_accepts_and_refuse_the_rest() {
        assert!(matches(NAME, "us-east_1.a") && !matches(NAME, "a b") && !matches(NAME, ""));
        assert!(matches(ID, "gw-0123") && !matches(ID, "a\u{0}b") && !matches(ID, "a/b"));
        assert!(matches(GROUP, "VPN Admins") && matches(GROUP, "ops") && !matches(GROUP, " ops"));
        assert!(!matches(GROUP, "a,b") && !matches(GROUP, "ops ") && !matches(GROUP, "a\u{85}b"));
        assert!(matches(SERIAL, "3f:a2:91") && matches(SERIAL, "3FA291") && !matches(SERIAL, "zz"));
        assert!(matches(SAME_SITE_PATH, "") && matches(SAME_SITE_PATH, "/") && matches(SAME_SITE_PATH, "/a?b=c"));
        assert!(!matches(SAME_SITE_PATH, "//evil") && !matches(SAME_SITE_PATH, "/\\evil"));
        assert!(!matches(SAME_SITE_PATH, "https://evil") && !matches(SAME_SITE_PATH, "/a\nb"));
        let cidr = ipv4_cidr("3[0-2]|[12]?[0-9]");
        assert!(matches(&cidr, "10.0.0.0/8") && matches(&cidr, "255.255.255.255/32"));
        assert!(!matches(&cidr, "10.0.0.0/33") && !matches(&cidr, "256.0.0.0/8"));
        assert!(matches(HOSTNAME, "vpn.example.com") && !matches(HOSTNAME, "-bad-.example"));
        assert!(matches(EMAIL, "alice@example.com") && !matches(EMAIL, "alice@localhost"));
        assert!(!matches(EMAIL, "a..b@example.com") && !matches(EMAIL, "a@x-.example"));
        assert!(matches(EMAIL, "o-k@mail-1.example.com") && !matches(EMAIL, "a@ab--c.example"));
        assert!(matches(HOSTNAME, "10.0.0.1") && matches(HOSTNAME, "a.b.c.d.example"));
        assert!(matches(URL, "https://login.example.com/realms/corp") && !matches(URL, "ftp://x.example"));
        let loopback = loopback_url().pattern.unwrap_or_default();
        assert!(matches(&loopback, "http://127.0.0.1:53682/callback") && matches(&loopback, "http://[::1]:65535"));
        assert!(!matches(&loopback, "http://127.0.0.1:65536/") && !matches(&loopback, "http://localhost:80/"));
    }
}
