//! The deployable artifacts in deploy/, checked offline (no container engine or cluster runs
//! here): the Kubernetes manifests parse and their ConfigMap's config loads; the probes name
//! Dex's paths on the telemetry port that config serves, and those paths answer on a real
//! telemetry listener; every `$VARIABLE` and `secretEnv` of the config is given by the
//! Deployment; the pods run as non-root on a read-only root filesystem with the compile cache
//! writable; the PodDisruptionBudget selects the Deployment's pods; the Dockerfile's build steps
//! are the ones `cargo xtask` runs and it puts the plugins where the config looks; the systemd
//! unit starts, reloads and stops the broker as documented.

use std::collections::BTreeSet;

use portcullis_tests::{TestBroker, repo_file};
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of the manifest file, by kind.
fn manifests() -> Vec<Value> {
    read("deploy/kubernetes/portcullis.yaml")
        .split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).expect("each manifest is YAML"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes"))
}

/// `$NAME` and `${NAME}` in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for part in text.split('$').skip(1) {
        let part = part.strip_prefix('{').unwrap_or(part);
        let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("{addr}: no port"))
}

#[tokio::test]
async fn kubernetes_manifests_match_the_config_they_carry() {
    let docs = manifests();
    for doc in &docs {
        for key in ["apiVersion", "kind", "metadata"] {
            assert!(!doc[key].is_null(), "every manifest has {key}: {doc:?}");
        }
    }
    let config_text = kind(&docs, "ConfigMap")["data"]["config.yaml"].as_str().expect("config.yaml in the ConfigMap");
    let deployment = kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // Every variable the config expands and every secretEnv comes from the container's env.
    let given: BTreeSet<String> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("env name").to_string())
        .collect();
    let mut needed = variables(config_text);
    let parsed: Value = serde_yaml::from_str(config_text).unwrap();
    for client in parsed["staticClients"].as_sequence().into_iter().flatten() {
        if let Some(name) = client["secretEnv"].as_str() {
            needed.insert(name.to_string());
        }
    }
    assert!(needed.is_subset(&given), "the Deployment gives {given:?}, the config needs {needed:?}");
    let env = |name: &str| given.contains(name).then(|| format!("value-of-{name}"));
    let config =
        portcullis::config::Config::from_yaml(std::path::Path::new("/etc/portcullis/config.yaml"), config_text, &env)
            .unwrap_or_else(|e| panic!("the ConfigMap's config loads: {e}"));

    // Ports: the container's named ports are the config's listeners.
    let ports: Vec<(String, u64)> = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["containerPort"].as_u64().unwrap()))
        .collect();
    let port = |name: &str| ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p).expect("named port");
    let web = config.web.http.as_deref().expect("web.http");
    assert_eq!(port("http"), port_of(web), "the http port is web.http");
    let telemetry = config.telemetry.http.as_deref().expect("telemetry.http");
    assert_eq!(port("telemetry"), port_of(telemetry), "the telemetry port is telemetry.http");
    assert!(web.starts_with("0.0.0.0:") && telemetry.starts_with("0.0.0.0:"), "a pod serves on all its addresses");

    // Probes: Dex's paths on the telemetry port, and they answer there.
    let b = TestBroker::builder().start().await;
    let admin = b.serve_telemetry().await;
    for (probe, want) in
        [("livenessProbe", "/healthz/live"), ("readinessProbe", "/healthz/ready"), ("startupProbe", "/healthz/live")]
    {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], want, "{probe}");
        assert_eq!(get["port"], "telemetry", "{probe} on the telemetry port");
        let answer = reqwest::get(format!("{admin}{want}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{want} answers on the telemetry listener");
    }

    // Non-root, read-only root filesystem, the compile cache on a writable volume.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    let mounts: Vec<&str> =
        container["volumeMounts"].as_sequence().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert!(mounts.contains(&"/var/cache/portcullis"), "the compile cache is writable: {mounts:?}");
    assert!(mounts.contains(&"/etc/portcullis"), "the config is mounted where args name it: {mounts:?}");
    assert_eq!(container["args"][1], "/etc/portcullis/config.yaml");
    assert!(
        read("deploy/Dockerfile").contains("ENV XDG_CACHE_HOME=/var/cache"),
        "the image keeps its compile cache in /var/cache/portcullis"
    );

    // Several replicas on a shared database, never all down at once.
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(matches!(config.storage, portcullis::config::StorageConfig::Postgres(_)), "replicas share PostgreSQL");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let pdb = kind(&docs, "PodDisruptionBudget");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels, "the PodDisruptionBudget selects the pods");
    assert!(!pdb["spec"]["maxUnavailable"].is_null() || !pdb["spec"]["minAvailable"].is_null());
    assert_eq!(&kind(&docs, "Service")["spec"]["selector"], labels, "the Service selects the pods");
}

#[test]
fn the_dockerfile_builds_as_xtask_does_and_ships_the_plugins_where_the_config_looks() {
    let dockerfile = read("deploy/Dockerfile");
    let runs: Vec<&str> = dockerfile.lines().filter_map(|l| l.strip_prefix("RUN ")).collect();
    // The target `cargo xtask setup` installs (xtask::GUEST_TARGET).
    let target = read("xtask/src/lib.rs")
        .lines()
        .find_map(|l| {
            l.strip_prefix("pub const GUEST_TARGET: &str = ")
                .map(|v| v.trim_end_matches(';').trim_matches('"').to_string())
        })
        .expect("GUEST_TARGET");
    for step in [
        format!("rustup target add {target}"),
        "cargo xtask plugins".into(),
        "cargo build --release --locked -p portcullis".into(),
    ] {
        assert!(runs.iter().any(|r| *r == step), "the build stage runs `{step}`: {runs:?}");
    }
    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = ").map(|v| v.trim_matches('"').to_string()))
        .expect("rust-version");
    assert!(
        dockerfile.contains(&format!("FROM docker.io/library/rust:{rust_version}-")),
        "built with the workspace's Rust {rust_version}"
    );
    assert!(
        dockerfile.contains("COPY --from=build /src/target/plugins/ /usr/lib/portcullis/plugins/"),
        "the plugins `cargo xtask plugins` builds land in the default plugin folder"
    );
    let configmap = manifests().into_iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config: Value = serde_yaml::from_str(configmap["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config["plugins"]["dir"], "/usr/lib/portcullis/plugins");
    assert!(dockerfile.contains("USER 65532:65532"), "the image runs as non-root");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/bin/portcullis"]"#));
}

#[test]
fn the_systemd_unit_serves_reloads_on_hup_and_keeps_the_jit_working() {
    let unit = read("deploy/systemd/portcullis.service");
    let values = |key: &str| -> Vec<String> {
        unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
    };
    assert_eq!(values("ExecStart"), ["/usr/bin/portcullis serve /etc/portcullis/config.yaml"]);
    assert_eq!(values("ExecReload"), ["/bin/kill -HUP $MAINPID"], "SIGHUP reloads (reload.rs)");
    assert_eq!(values("KillSignal"), ["SIGTERM"], "SIGTERM drains (main.rs)");
    assert_eq!(values("CacheDirectory"), ["portcullis"]);
    assert_eq!(values("Environment"), ["XDG_CACHE_HOME=/var/cache"], "the compile cache is the CacheDirectory");
    assert!(values("MemoryDenyWriteExecute").is_empty(), "wasmtime compiles plugins to machine code");
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(unit.contains(section), "{section}");
    }
}
