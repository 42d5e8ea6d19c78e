//! Token request forms (`TokenRequest::parse`) and client credentials from a Basic
//! `Authorization` header or the form (`ClientCredentials::parse`).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use portcullis::oidc::token::{ClientCredentials, TokenRequest};

fuzz_target!(|data: &[u8]| {
    // `<authorization header>\n<form body>`; no newline: the whole input is the form.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (std::str::from_utf8(&data[..at]).ok(), &data[at + 1..]),
        None => (None, data),
    };
    let form: HashMap<String, String> =
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let _ = TokenRequest::parse(&form, &portcullis::config::GrantType::ALL.into_iter().collect());
    let _ = ClientCredentials::parse(header, &form);
    // The header as a Basic value of the fuzzer's bytes, so the base64 path is reached too.
    if let Some(h) = header {
        let _ = ClientCredentials::parse(Some(&format!("Basic {h}")), &form);
    }
});
