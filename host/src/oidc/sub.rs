//! The `sub` claim, byte-identical to Dex's: base64url (no padding) of the protobuf message
//! `{1: user id, 2: connector id}`, so users moving from Dex keep their subject ids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes the subject for `user_id` at `connector_id`.
pub fn encode(user_id: &str, connector_id: &str) -> String {
    let mut buf = Vec::with_capacity(user_id.len() + connector_id.len() + 8);
    field(&mut buf, 1, user_id);
    field(&mut buf, 2, connector_id);
    URL_SAFE_NO_PAD.encode(buf)
}

fn field(buf: &mut Vec<u8>, number: u8, value: &str) {
    if value.is_empty() {
        return; // proto3 omits empty strings
    }
    buf.push(number << 3 | 2); // wire type 2: length-delimited
    let mut len = value.len();
    while len >= 0x80 {
        buf.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    buf.push(len as u8);
    buf.extend_from_slice(value.as_bytes());
}

/// Decodes a subject into (user id, connector id); `None` if it is not one of ours.
pub fn decode(sub: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(sub).ok()?;
    let (mut user, mut connector) = (String::new(), String::new());
    let mut rest = bytes.as_slice();
    while let Some((&tag, tail)) = rest.split_first() {
        if tag & 7 != 2 {
            return None;
        }
        let (mut len, mut shift, mut tail) = (0usize, 0u32, tail);
        loop {
            let (&b, t) = tail.split_first()?;
            tail = t;
            len |= usize::from(b & 0x7f).checked_shl(shift)?;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (value, t) = tail.split_at_checked(len)?;
        let value = std::str::from_utf8(value).ok()?.to_string();
        match tag >> 3 {
            1 => user = value,
            2 => connector = value,
            _ => {}
        }
        rest = t;
    }
    Some((user, connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dex_test_vector() {
        assert_eq!(encode("2342749", "github"), "CgcyMzQyNzQ5EgZnaXRodWI");
        assert_eq!(decode("CgcyMzQyNzQ5EgZnaXRodWI"), Some(("2342749".into(), "github".into())));
    }

    #[test]
    fn round_trips_long_and_unicode_ids() {
        let long = "x".repeat(300);
        for (user, conn) in [("0-385-28089-0", "mock"), (long.as_str(), "ldap"), ("Zoë", "local")] {
            assert_eq!(decode(&encode(user, conn)), Some((user.to_string(), conn.to_string())));
        }
        assert_eq!(decode("not base64!"), None);
    }
}
