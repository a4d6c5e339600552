//! Certificate serial numbers: random 128-bit positive integers, written in one
//! canonical form (lowercase hex, no colons, no leading zeros).

use crate::error::{CoreError, CoreResult};
use crate::secrets::random_bytes;

/// Longest serial RFC 5280 allows: 20 octets.
const MAX_SERIAL_HEX_DIGITS: usize = 40;

/// Sixteen random bytes that encode a positive DER integer without a leading zero byte.
pub fn random_serial_bytes() -> [u8; 16] {
    let mut bytes = random_bytes::<16>();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    bytes
}

/// The canonical text of serial bytes.
pub fn canonical_from_bytes(bytes: &[u8]) -> String {
    canonical_digits(&hex::encode(bytes))
}

/// Parses a serial typed by a person or tool: hex in either case, with or without
/// colons, as `openssl` or OpenVPN print them.
pub fn parse(input: &str) -> CoreResult<String> {
    let digits: String = input.trim().chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CoreError::InvalidArgument(format!(
            "serial: `{input}` is not a hex serial such as 3f:a2:91 or 3FA291"
        )));
    }
    let canonical = canonical_digits(&digits);
    if canonical.len() > MAX_SERIAL_HEX_DIGITS {
        return Err(CoreError::InvalidArgument("serial: longer than the 20 octets RFC 5280 allows".into()));
    }
    Ok(canonical)
}

/// The bytes of a canonical serial, for encoding in a CRL.
pub fn to_bytes(canonical: &str) -> CoreResult<Vec<u8>> {
    let padded = if canonical.len() % 2 == 1 { format!("0{canonical}") } else { canonical.to_owned() };
    hex::decode(padded).map_err(|_| CoreError::Internal(format!("stored serial `{canonical}` is not hex")))
}

fn canonical_digits(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0').to_ascii_lowercase();
    if trimmed.is_empty() { "0".into() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_in_any_common_spelling() {
        assert_eq!(parse("0A:BC:0D").unwrap(), "abc0d");
        assert_eq!(parse("0abc0d").unwrap(), "abc0d");
        assert_eq!(parse(" ABC0D ").unwrap(), "abc0d");
        assert!(parse("xyz").is_err());
        assert!(parse("").is_err());
        assert!(parse(&"1".repeat(41)).is_err());
        assert_eq!(to_bytes("abc0d").unwrap(), [0x0a, 0xbc, 0x0d]);
    }

    #[test]
    fn random_serials_are_positive_128_bit_values() {
        for _ in 0..100 {
            let bytes = random_serial_bytes();
            assert!(bytes[0] != 0 && bytes[0] < 0x80);
            let canonical = canonical_from_bytes(&bytes);
            assert_eq!(to_bytes(&canonical).unwrap(), bytes);
        }
    }
}
