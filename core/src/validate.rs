//! Input validation shared by the services. Every error names the offending field.

use crate::error::{CoreError, CoreResult};
use crate::store::Page;
use gatekey::v1::PageRequest;
use ipnet::IpNet;
use std::net::IpAddr;

/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 100;

fn invalid(field: &str, problem: impl std::fmt::Display) -> CoreError {
    CoreError::InvalidArgument(format!("{field}: {problem}"))
}

/// A page from a request's paging fields (0 means default).
pub fn page(request: Option<PageRequest>) -> CoreResult<Page> {
    let request = request.unwrap_or_default();
    let size = match request.per_page {
        0 => DEFAULT_PER_PAGE,
        n if n > MAX_PER_PAGE => return Err(invalid("per_page", format!("must be between 1 and {MAX_PER_PAGE}"))),
        n => n,
    };
    Ok(Page { number: request.page.max(1), size })
}

/// A resource name: 1 to 64 of letters, digits, `-`, `_`, `.`.
pub fn name(field: &str, value: &str) -> CoreResult<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return Err(invalid(field, "must be 1 to 64 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(field, "may contain only letters, digits, `-`, `_` and `.`"));
    }
    Ok(value.to_owned())
}

/// A username: like a name, and `@` is allowed.
pub fn username(value: &str) -> CoreResult<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return Err(invalid("username", "must be 1 to 64 characters"));
    }
    if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')) {
        return Err(invalid("username", "may contain only letters, digits, `-`, `_`, `.` and `@`"));
    }
    Ok(value.to_owned())
}

/// Free text of at most `max` characters without control characters.
pub fn text(field: &str, value: &str, max: usize) -> CoreResult<String> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.trim().to_owned())
}

/// An e-mail address an administrator gives: an ASCII dot-atom local part (at most 64
/// characters) and a domain of two or more host-name labels, at most 254 characters in
/// all; returned in lower case.
pub fn email(value: &str) -> CoreResult<String> {
    let well_formed = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
            let local_ok = (1..=64).contains(&local.len())
                && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext));
            let label_ok = |label: &str| {
                (1..=63).contains(&label.len())
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    // `ab--` is kept for IDNA's `xn--` labels.
                    && (label.get(2..4) != Some("--") || label.starts_with("xn--"))
            };
            local_ok && domain.split('.').count() >= 2 && domain.split('.').all(label_ok)
        });
    if !well_formed {
        return Err(invalid("email", "must be an e-mail address such as alice@example.com"));
    }
    Ok(value.to_ascii_lowercase())
}

/// An e-mail address an identity provider asserts: one `@`, a non-empty local part and
/// a dotted domain, without white space, control characters or commas (providers may
/// send internationalised addresses); returned trimmed, ASCII letters in lower case.
pub fn asserted_email(value: &str) -> CoreResult<String> {
    let value = value.trim();
    let well_formed = value.len() <= 254
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !value.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if !well_formed {
        return Err(invalid("email", "must be an e-mail address such as alice@example.com"));
    }
    Ok(value.to_ascii_lowercase())
}

/// A password of 12 to 1024 characters.
pub fn password(value: &str) -> CoreResult<&str> {
    let length = value.chars().count();
    if !(12..=1024).contains(&length) {
        return Err(invalid("password", "must be 12 to 1024 characters"));
    }
    Ok(value)
}

/// Group names: each 1 to 128 characters without commas or control characters;
/// returned sorted without duplicates.
pub fn groups(field: &str, values: &[String]) -> CoreResult<Vec<String>> {
    let mut groups = Vec::with_capacity(values.len());
    for value in values {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > 128 || value.chars().any(|c| c.is_control() || c == ',') {
            return Err(invalid(
                field,
                format!("`{value}` is not a valid group name (1 to 128 characters, no commas)"),
            ));
        }
        groups.push(value.to_owned());
    }
    groups.sort();
    groups.dedup();
    if groups.len() > 100 {
        return Err(invalid(field, "at most 100 groups"));
    }
    Ok(groups)
}

/// A host name (RFC 1123 labels) or an IP address.
pub fn hostname(value: &str) -> CoreResult<String> {
    let value = value.trim().trim_end_matches('.');
    if value.parse::<IpAddr>().is_ok() {
        return Ok(value.to_owned());
    }
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if value.is_empty() || value.len() > 253 || !value.split('.').all(valid_label) {
        return Err(invalid("hostname", "must be a DNS name such as vpn.example.com or an IP address"));
    }
    Ok(value.to_ascii_lowercase())
}

/// A TCP/UDP port, 1 to 65535.
pub fn port(value: u32) -> CoreResult<u16> {
    u16::try_from(value).ok().filter(|port| *port != 0).ok_or_else(|| invalid("port", "must be between 1 and 65535"))
}

/// A CIDR with its host bits cleared, e.g. `10.1.2.3/16` becomes `10.1.0.0/16`.
pub fn cidr(field: &str, value: &str) -> CoreResult<String> {
    let network: IpNet =
        value.trim().parse().map_err(|_| invalid(field, format!("`{value}` is not a CIDR such as 10.0.0.0/24")))?;
    Ok(network.trunc().to_string())
}

/// One to 64 CIDRs, normalised, sorted, without duplicates.
pub fn cidrs(field: &str, values: &[String]) -> CoreResult<Vec<String>> {
    if values.is_empty() || values.len() > 64 {
        return Err(invalid(field, "must hold 1 to 64 CIDRs"));
    }
    let mut cidrs = values.iter().map(|value| cidr(field, value)).collect::<CoreResult<Vec<_>>>()?;
    cidrs.sort();
    cidrs.dedup();
    Ok(cidrs)
}

/// Networks routed to a mesh spoke: one to 64 IPv4 CIDRs of /8 or narrower (a hub
/// must keep its own routes), normalised and sorted.
pub fn spoke_networks(field: &str, values: &[String]) -> CoreResult<Vec<String>> {
    let cidrs = cidrs(field, values)?;
    for cidr in &cidrs {
        match cidr.parse::<IpNet>() {
            Ok(IpNet::V4(net)) if net.prefix_len() >= 8 => {}
            Ok(IpNet::V4(_)) => return Err(invalid(field, format!("`{cidr}` is too broad; /8 is the widest"))),
            _ => return Err(invalid(field, format!("`{cidr}` is not IPv4; only IPv4 networks are routed to spokes"))),
        }
    }
    Ok(cidrs)
}

/// Whether two CIDRs share an address (unparsable ones share none).
pub fn overlap(a: &str, b: &str) -> bool {
    match (a.parse::<IpNet>(), b.parse::<IpNet>()) {
        (Ok(a), Ok(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

/// A gateway's client pool: an IPv4 CIDR with a prefix from /16 to /29.
pub fn vpn_subnet(value: &str) -> CoreResult<String> {
    let normalised = cidr("vpn_subnet", value)?;
    match normalised.parse::<IpNet>() {
        Ok(IpNet::V4(net)) if (16..=29).contains(&net.prefix_len()) => Ok(normalised),
        _ => Err(invalid("vpn_subnet", "must be an IPv4 CIDR with a prefix from /16 to /29")),
    }
}

/// ISO 3166-1 alpha-2 country codes, upper-cased, sorted, without duplicates.
pub fn country_codes(field: &str, values: &[String]) -> CoreResult<Vec<String>> {
    let mut codes = Vec::with_capacity(values.len());
    for value in values {
        let code = value.trim().to_ascii_uppercase();
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(field, format!("`{value}` is not a two-letter ISO 3166-1 country code")));
        }
        codes.push(code);
    }
    codes.sort();
    codes.dedup();
    if codes.len() > 300 {
        return Err(invalid(field, "at most 300 countries"));
    }
    Ok(codes)
}

/// A required id field: at most 128 characters, none of them a control character
/// (which no stored id holds, and PostgreSQL cannot even compare with a NUL).
pub fn id<'a>(field: &str, value: &'a str) -> CoreResult<&'a str> {
    if value.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if value.len() > 128 {
        return Err(invalid(field, "must be at most 128 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value)
}

/// An optional value an agent or client reports (a name, an address): at most `max`
/// characters and no control characters; empty is allowed.
pub fn reported(field: &str, value: &str, max: usize) -> CoreResult<String> {
    if value.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_bounds() {
        assert_eq!(page(None).unwrap(), Page { number: 1, size: DEFAULT_PER_PAGE });
        assert_eq!(page(Some(PageRequest { page: 3, per_page: 100 })).unwrap(), Page { number: 3, size: 100 });
        assert!(page(Some(PageRequest { page: 1, per_page: 101 })).is_err());
    }

    #[test]
    fn cidrs_are_normalised_and_errors_name_the_field() {
        assert_eq!(cidr("cidrs", "10.1.2.3/16").unwrap(), "10.1.0.0/16");
        assert_eq!(cidr("cidrs", "fd00::1/64").unwrap(), "fd00::/64");
        let error = cidr("cidrs", "10.0.0.0/33").unwrap_err().to_string();
        assert!(error.starts_with("cidrs:"), "{error}");
        assert_eq!(cidrs("cidrs", &["10.0.0.9/24".into(), "10.0.0.0/24".into()]).unwrap(), vec!["10.0.0.0/24"]);
        assert!(cidrs("cidrs", &[]).is_err());
    }

    #[test]
    fn vpn_subnets_are_ipv4_pools() {
        assert_eq!(vpn_subnet("10.8.0.1/24").unwrap(), "10.8.0.0/24");
        assert!(vpn_subnet("10.0.0.0/8").is_err());
        assert!(vpn_subnet("fd00::/64").is_err());
    }

    #[test]
    fn names_hosts_and_emails() {
        assert!(name("name", "us-east-1").is_ok());
        assert!(name("name", "bad name").is_err());
        assert!(name("name", "").is_err());
        assert_eq!(hostname("VPN.Example.com.").unwrap(), "vpn.example.com");
        assert!(hostname("-bad-.example").is_err());
        assert!(hostname("192.0.2.7").is_ok());
        assert_eq!(email("Alice@Example.COM").unwrap(), "alice@example.com");
        assert_eq!(email("o'neil+vpn@mail.example.co.uk").unwrap(), "o'neil+vpn@mail.example.co.uk");
        for bad in [
            "alice",
            "a@b",
            " a@b.example",
            "a..b@example.com",
            ".a@example.com",
            "a@-x.example",
            "a@x-.example",
            "a@ab--c.example",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        for bad in ["a@b@example.com", "a b@example.com", "a@example.com\n", "jos\u{e9}@example.com", "a@exa_mple.com"]
        {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert_eq!(asserted_email(" Jos\u{e9}@Example.COM ").unwrap(), "jos\u{e9}@example.com");
        assert!(asserted_email("a@b").is_err() && asserted_email("a b@example.com").is_err());
        assert!(port(0).is_err() && port(70000).is_err() && port(1194).is_ok());
        assert_eq!(groups("groups", &["b".into(), "a".into(), "b".into()]).unwrap(), vec!["a", "b"]);
        for bad in ["", "a\0b", "a\r\nb", &"x".repeat(129)] {
            let error = id("gateway_id", bad).unwrap_err().to_string();
            assert!(error.starts_with("gateway_id:"), "{error}");
        }
        assert_eq!(id("gateway_id", "gw-0123").unwrap(), "gw-0123");
        assert!(groups("groups", &["a,b".into()]).is_err());
    }
}
