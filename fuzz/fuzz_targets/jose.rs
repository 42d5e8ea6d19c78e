//! The `jose` import's parsing: a compact JWS and a JWKS document from the fuzzer, verified
//! the way a connector's call would (both fuzzed, or a fuzzed token against a real JWKS).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A real RSA key and an EC key, the shapes an upstream serves.
const JWKS: &str = r#"{"keys":[
{"kty":"RSA","use":"sig","alg":"RS256","kid":"r1","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"},
{"kty":"EC","crv":"P-256","use":"sig","kid":"e1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match text.split_once('\0') {
        Some((token, jwks)) => portcullis::connectors::fuzzing::jose_verify(token, jwks),
        None => portcullis::connectors::fuzzing::jose_verify(text, JWKS),
    }
});
