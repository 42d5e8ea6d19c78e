//! Authorization request parameters (`AuthorizeRequest::parse`): a query string from the fuzzer,
//! half the time with a registered client and redirect URI in front, so the deeper checks run.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis::config::Validated;
use portcullis::oidc::authorize::{AuthorizeRequest, Policy};

const CONFIG: &str = r#"
issuer: http://127.0.0.1:5556/dex
storage: {type: memory}
staticClients:
- id: app
  name: App
  secret: c2VjcmV0
  redirectURIs: [http://127.0.0.1:5555/callback]
- id: public
  name: Public
  public: true
  redirectURIs: [http://127.0.0.1:5555/public]
enablePasswordDB: true
"#;

fn config() -> &'static Validated {
    static CONFIG_ONCE: OnceLock<Validated> = OnceLock::new();
    CONFIG_ONCE.get_or_init(|| {
        portcullis::config::Config::from_yaml(std::path::Path::new("fuzz.yaml"), CONFIG, &|_| None)
            .unwrap_or_else(|e| panic!("the fuzz target's config: {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, query)) = data.split_first() else { return };
    let mut params: HashMap<String, String> = HashMap::new();
    if mode & 1 == 1 {
        let (id, uri) = if mode & 2 == 0 {
            ("app", "http://127.0.0.1:5555/callback")
        } else {
            ("public", "http://127.0.0.1:5555/public")
        };
        params.insert("client_id".into(), id.into());
        params.insert("redirect_uri".into(), uri.into());
    }
    for (k, v) in url::form_urlencoded::parse(query) {
        params.insert(k.into_owned(), v.into_owned());
    }
    let config = config();
    let policy = Policy {
        clients: &config.clients,
        pkce_plain: mode & 4 == 4,
        pkce_enforce: mode & 8 == 8,
        device_callback: "/dex/device/callback",
    };
    let _ = AuthorizeRequest::parse(&params, &policy);
});
