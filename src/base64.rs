//! Standard base64 (RFC 4648, with padding), as Go's `base64.StdEncoding`: how Consul sends KV
//! values, how `/v3/watches` passes them on, and what the template function `base64Decode`
//! reads. A few lines here weigh less in the binary than a crate.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in base64, padded.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes `text` encodes, or why it is not padded standard base64 (as Go words it: the
/// offset of the first bad byte).
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let input = text.as_bytes();
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    if !input.len().is_multiple_of(4) {
        return Err(corrupt(input.len() - input.len() % 4));
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for (c, chunk) in input.chunks(4).enumerate() {
        let last = (c + 1) * 4 == input.len();
        let mut n: u32 = 0;
        let mut pad = 0;
        for (i, &byte) in chunk.iter().enumerate() {
            let at = c * 4 + i;
            let value = match byte {
                b'A'..=b'Z' => byte - b'A',
                b'a'..=b'z' => byte - b'a' + 26,
                b'0'..=b'9' => byte - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                // Padding only at the end, in the last two places, and nothing after it.
                b'=' if last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ => return Err(corrupt(at)),
            };
            if pad > 0 && byte != b'=' {
                return Err(corrupt(at));
            }
            n = n << 6 | u32::from(value);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for sample in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            b"\xff\xfe\x00\x80",
        ] {
            assert_eq!(decode(&encode(sample)).unwrap(), sample);
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(decode("eyJhIjoxfQ==").unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(
            decode("Zm9").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            decode("Zm9v!A==").unwrap_err(),
            "illegal base64 data at input byte 4"
        );
        assert!(decode("Zm=v").is_err(), "padding in the middle");
        assert!(decode("Z===").is_err());
        assert!(decode("Zm8=Zm8=").is_err(), "padding before the end");
    }
}
