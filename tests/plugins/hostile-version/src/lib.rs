//! Hostile fixture: a component targeting `portcullis:connector@9.0.0`, which the host must refuse.

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
});

struct Version;

impl exports::portcullis::connector::connector::Guest for Version {
    fn describe(_config: String) -> String {
        "{}".to_string()
    }
}

export!(Version);
