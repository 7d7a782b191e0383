//! The operator's container image, built without a daemon or a registry by
//! `tests/image/build.sh` (an OCI archive under `target/image/`), checked three ways:
//!
//! * the archive: named as the chart's default image resolves, with the config an operator
//!   image needs (user 65532, entrypoint, `run`, port 8080, labels from Cargo.toml) and one
//!   layer holding the binary, exactly the libraries `ldd` lists, Debian's CA bundle and a
//!   passwd without a shell — and nothing else;
//! * the Dockerfile: its final stage states the same config and puts the binary at the same
//!   path, so Docker users get an equivalent image (this is what keeps the two from drifting);
//! * the image run by podman (runc, read-only root, host network, through
//!   `tests/image/podman.sh`'s private storage) against the shared control plane and an
//!   emulator reached by host name: `/healthz` and `/readyz` answer, an automation becomes
//!   Ready (so name resolution and the CA bundle work in the image), the process runs as
//!   65532 without capabilities on a read-only root, and SIGTERM stops it cleanly.
//!
//! Needs root (build.sh installs buildah, podman and runc with apt-get when missing).

// Tests state what must hold with unwrap/expect; the crate's lints forbid them elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use kube::Api;
use qlik_automations_operator::crd::QlikAutomation;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use support::chart::output;
use support::control_plane::{ControlPlane, unique_name};
use support::operator::{
    ADMIN_KEY, TestNamespace, automation_yaml, connection_secret, emulator, free_addr,
    remotes_named, wait_ready,
};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const NAME: &str = env!("CARGO_PKG_NAME");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARY_PATH: &str = "/usr/local/bin/qlik-automations-operator";
/// The first file `rustls-native-certs` (through `openssl-probe`) looks for on Linux, and
/// what the image's `SSL_CERT_FILE` names: the roots the Qlik client verifies tenants with.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Debian's ca-certificates package: the certificates the bundle is made of.
const CA_SOURCE: &str = "/usr/share/ca-certificates/mozilla";
const PASSWD: &str = "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "nonroot:x:65532:\n";

/// The archive, built (or found up to date) once per test binary.
fn archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let script = Path::new(REPO).join("tests/image/build.sh");
        // stderr passes through: a cold build (a release build) shows its progress.
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(out.status.success(), "{} failed", script.display());
        let stdout = String::from_utf8(out.stdout).unwrap();
        let path = PathBuf::from(stdout.lines().last().expect("build.sh printed the archive"));
        assert!(path.is_file(), "{} is not a file", path.display());
        path
    })
}

/// The release binary the archive was built from (`<target>/release/`, next to `<target>/image/`).
fn release_binary() -> PathBuf {
    archive()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("release")
        .join(NAME)
}

/// The image reference as a container runtime spells the chart's default (repository
/// `qlik-automations-operator`, tag = appVersion): Docker Hub's library namespace.
fn image_ref() -> String {
    format!("docker.io/library/{NAME}:{VERSION}")
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// One entry of the image's layer.
struct LayerEntry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    data: Vec<u8>,
}

/// What the archive holds, with every digest and size checked on the way in.
struct Image {
    /// The `org.opencontainers.image.ref.name` of the one manifest in index.json.
    ref_name: String,
    config: Value,
    /// Paths without a leading `/` or `./` and without a trailing `/`.
    layer: BTreeMap<String, LayerEntry>,
}

impl Image {
    fn read(path: &Path) -> Image {
        let mut files = BTreeMap::new();
        let mut outer = tar::Archive::new(std::fs::File::open(path).unwrap());
        for entry in outer.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                files.insert(name.trim_start_matches("./").to_string(), data);
            }
        }
        let layout: Value = serde_json::from_slice(&files["oci-layout"]).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
        let ref_name = manifests[0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("the manifest has a ref.name annotation")
            .to_string();

        let blob = |descriptor: &Value| -> &[u8] {
            let digest = descriptor["digest"].as_str().unwrap();
            let hex = digest.strip_prefix("sha256:").unwrap();
            let bytes = files
                .get(&format!("blobs/sha256/{hex}"))
                .unwrap_or_else(|| panic!("no blob {digest} in the archive"));
            assert_eq!(sha256_hex(bytes), hex, "blob {digest} has another digest");
            assert_eq!(Some(bytes.len() as u64), descriptor["size"].as_u64());
            bytes
        };
        assert_eq!(
            manifests[0]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let manifest: Value = serde_json::from_slice(blob(&manifests[0])).unwrap();
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let config: Value = serde_json::from_slice(blob(&manifest["config"])).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "one layer: {manifest}");
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let mut uncompressed = Vec::new();
        flate2::read::GzDecoder::new(blob(&layers[0]))
            .read_to_end(&mut uncompressed)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([format!("sha256:{}", sha256_hex(&uncompressed))]),
            "the config's diff_id is the uncompressed layer's digest"
        );

        let mut layer = BTreeMap::new();
        let mut archive = tar::Archive::new(&uncompressed[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let path = path
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string();
            let header = entry.header();
            let (kind, mode, uid, gid) = (
                header.entry_type(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
            );
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            if path.is_empty() {
                continue; // the root directory itself
            }
            let old = layer.insert(
                path.clone(),
                LayerEntry {
                    kind,
                    mode,
                    uid,
                    gid,
                    data,
                },
            );
            assert!(old.is_none(), "{path} is in the layer twice");
        }
        Image {
            ref_name,
            config,
            layer,
        }
    }

    fn file(&self, path: &str) -> &LayerEntry {
        let entry = self
            .layer
            .get(path.trim_start_matches('/'))
            .unwrap_or_else(|| panic!("{path} is not in the layer"));
        assert!(entry.kind.is_file(), "{path} is not a regular file");
        entry
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.file(path).data.clone()).unwrap()
    }
}

/// The shared libraries `ldd` lists for `binary`, the dynamic loader included.
fn ldd(binary: &Path) -> BTreeSet<String> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("not found"),
        "ldd {}:\n{text}",
        binary.display()
    );
    text.lines()
        .filter_map(|line| {
            let (left, _) = line.trim().rsplit_once(" (0x")?;
            let path = left.rsplit(" => ").next()?.trim();
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// The config the image must have: what the chart, the README and the operator rely on.
fn expected_labels() -> BTreeMap<String, String> {
    [
        ("org.opencontainers.image.title", NAME),
        (
            "org.opencontainers.image.description",
            env!("CARGO_PKG_DESCRIPTION"),
        ),
        ("org.opencontainers.image.version", VERSION),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn labels(config: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(config["config"]["Labels"].clone()).unwrap()
}

#[test]
fn the_archive_is_the_charts_default_image_with_the_operator_and_nothing_else() {
    let image = Image::read(archive());

    // The chart's default image must be this one, so a loaded archive needs no --set.
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(support::chart::CHART).join("values.yaml")).unwrap(),
    )
    .unwrap();
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(support::chart::CHART).join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(values["image"]["repository"], NAME);
    assert_eq!(values["image"]["tag"], "", "the tag defaults to appVersion");
    assert_eq!(chart["appVersion"], VERSION);
    assert_eq!(image.ref_name, image_ref());

    let config = &image.config;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], arch);
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], json!([BINARY_PATH]));
    assert_eq!(c["Cmd"], json!(["run"]));
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["WorkingDir"], "/home/nonroot");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("SSL_CERT_FILE={CA_BUNDLE}"))),
        "Env: {}",
        c["Env"]
    );
    assert_eq!(labels(config), expected_labels());

    // Exactly these files: the binary, what ldd lists, the CA bundle and the user database.
    let libs = ldd(&release_binary());
    assert!(
        libs.iter().any(|l| l.contains("/ld-linux")),
        "ldd lists the dynamic loader: {libs:?}"
    );
    let mut expected: BTreeSet<String> = [
        BINARY_PATH,
        CA_BUNDLE,
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
    ]
    .iter()
    .map(|p| p.to_string())
    .chain(libs.iter().cloned())
    .collect();
    expected = expected
        .into_iter()
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    let files: BTreeSet<String> = image
        .layer
        .iter()
        .filter(|(_, e)| e.kind != tar::EntryType::Directory)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(files, expected, "the layer's files");
    // Directories only on the way to those files, and the home directory.
    let home = "home/nonroot".to_string();
    let leaves: Vec<&String> = expected.iter().chain([&home]).collect();
    for (path, entry) in &image.layer {
        assert!(
            entry.kind.is_file() || entry.kind == tar::EntryType::Directory,
            "{path} is neither a file nor a directory"
        );
        if entry.kind == tar::EntryType::Directory {
            assert!(
                leaves
                    .iter()
                    .any(|f| *f == path || f.starts_with(&format!("{path}/"))),
                "the directory {path} leads to none of the files"
            );
        }
    }
    for shell in ["bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"] {
        assert!(!image.layer.contains_key(shell), "{shell} is in the image");
    }

    // The binary and the libraries are the host's, byte for byte.
    let binary = image.file(BINARY_PATH);
    assert_eq!(binary.mode & 0o7777, 0o755);
    assert_eq!(
        sha256_hex(&binary.data),
        sha256_hex(&std::fs::read(release_binary()).unwrap()),
        "the binary is the release build"
    );
    for lib in &libs {
        assert_eq!(
            sha256_hex(&image.file(lib).data),
            sha256_hex(&std::fs::read(lib).unwrap()),
            "{lib} is the host's"
        );
    }

    // Debian's bundle from the package alone (the host's may have local CAs added).
    let mut sources: Vec<PathBuf> = std::fs::read_dir(CA_SOURCE)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .collect();
    sources.sort();
    let bundle = image.text(CA_BUNDLE);
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs > 100, "{certs} certificates in {CA_BUNDLE}");
    assert_eq!(certs, sources.len());
    let concatenated: String = sources
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(bundle == concatenated, "{CA_BUNDLE} is {CA_SOURCE}/*.crt");
    assert_eq!(image.file(CA_BUNDLE).mode & 0o7777, 0o644);

    assert_eq!(image.text("/etc/passwd"), PASSWD);
    assert_eq!(image.text("/etc/group"), GROUP);
    assert_eq!(image.text("/etc/nsswitch.conf"), "hosts: files dns\n");
    let home = &image.layer[&home];
    assert_eq!(home.kind, tar::EntryType::Directory);
    assert_eq!(
        (home.uid, home.gid, home.mode & 0o7777),
        (65532, 65532, 0o700)
    );
    for (path, entry) in &image.layer {
        if path != "home/nonroot" {
            assert_eq!((entry.uid, entry.gid), (0, 0), "{path} is root's");
            assert_eq!(entry.mode & 0o022, 0, "{path} is writable by others");
        }
    }
}

/// One instruction of a Dockerfile: its keyword (upper case) and the rest of the line.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The stages of a Dockerfile, each starting with its `FROM`: comments dropped, continued
/// lines joined.
fn dockerfile_stages(text: &str) -> Vec<Vec<Instruction>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (keyword, args) = line.trim().split_once(char::is_whitespace).unwrap();
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push(instruction);
    }
    stages
}

/// Shell-like words: whitespace separates, double quotes group (with `\"` inside).
fn words(args: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `key=value` words as a map (LABEL and ENV).
fn pairs(args: &str) -> BTreeMap<String, String> {
    words(args)
        .into_iter()
        .map(|w| {
            let (k, v) = w.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_the_same_image() {
    let image = Image::read(archive());
    let c = &image.config["config"];
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).unwrap();
    let stages = dockerfile_stages(&dockerfile);
    assert!(stages.len() >= 2, "a multi-stage build");

    // The build stage builds what build.sh builds.
    let build_command = format!("cargo build --release --locked --bin {NAME}");
    assert!(
        stages[..stages.len() - 1]
            .iter()
            .flatten()
            .any(|i| i.keyword == "RUN" && i.args.contains(&build_command)),
        "the build stage runs `{build_command}`"
    );
    let script = std::fs::read_to_string(Path::new(REPO).join("tests/image/build.sh")).unwrap();
    assert!(
        script.contains("cargo build --release --locked --bin \"$NAME\""),
        "build.sh runs the same cargo build"
    );

    let last = stages.last().unwrap();
    // distroless nonroot provides what build.sh puts into its layer besides the binary:
    // glibc and libgcc_s, the CA bundle at the same path, passwd with 65532 and no shell.
    assert!(
        last[0]
            .args
            .starts_with("gcr.io/distroless/cc-debian12:nonroot"),
        "final stage FROM {}",
        last[0].args
    );
    let all = |keyword: &str| -> Vec<&Instruction> {
        last.iter().filter(|i| i.keyword == keyword).collect()
    };
    let one = |keyword: &str| -> &str {
        let found = all(keyword);
        assert_eq!(found.len(), 1, "one {keyword} in the final stage");
        &found[0].args
    };
    assert!(
        all("RUN").is_empty(),
        "no RUN: the runtime image has no shell"
    );
    assert!(
        all("ADD").is_empty(),
        "the final stage adds files with COPY only"
    );

    assert_eq!(one("USER"), c["User"]);
    assert_eq!(one("WORKDIR"), c["WorkingDir"]);
    let entrypoint: Value = serde_json::from_str(one("ENTRYPOINT")).expect("ENTRYPOINT [...]");
    assert_eq!(entrypoint, c["Entrypoint"]);
    let cmd: Value = serde_json::from_str(one("CMD")).expect("CMD [...]");
    assert_eq!(cmd, c["Cmd"]);
    let exposed: BTreeMap<String, Value> = all("EXPOSE")
        .iter()
        .flat_map(|i| words(&i.args))
        .map(|p| {
            let port = if p.contains('/') {
                p
            } else {
                format!("{p}/tcp")
            };
            (port, json!({}))
        })
        .collect();
    assert_eq!(json!(exposed), c["ExposedPorts"]);
    let dockerfile_labels: BTreeMap<String, String> =
        all("LABEL").iter().flat_map(|i| pairs(&i.args)).collect();
    assert_eq!(dockerfile_labels, labels(&image.config));
    assert_eq!(dockerfile_labels, expected_labels());
    let dockerfile_env: BTreeSet<String> = all("ENV")
        .iter()
        .flat_map(|i| pairs(&i.args))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let image_env: BTreeSet<String> = serde_json::from_value(c["Env"].clone()).unwrap_or_default();
    assert_eq!(dockerfile_env, image_env);

    // The one file the final stage adds is the entrypoint, where build.sh puts it.
    let copies = all("COPY");
    assert_eq!(copies.len(), 1, "one COPY in the final stage: {copies:?}");
    let copy = words(&copies[0].args);
    assert!(
        copy.iter().any(|w| w.starts_with("--from=")),
        "COPY --from the build stage"
    );
    let destination = copy.last().unwrap();
    assert_eq!(json!([destination]), c["Entrypoint"]);
    assert!(image.file(destination).mode & 0o111 != 0);
}

/// `tests/image/podman.sh ARGS...`: podman with the tests' private storage.
fn podman(args: &[&str]) -> Command {
    let mut cmd = Command::new(Path::new(REPO).join("tests/image/podman.sh"));
    cmd.args(args);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running container, removed (killed if need be) when dropped, even after a failed assert.
struct Container {
    name: String,
    log: PathBuf,
}

impl Container {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn inspect(&self, format: &str) -> Option<String> {
        let out = output(podman(&["inspect", "--format", format, &self.name]), None).await;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}

/// Removes the containers of earlier runs of this test that were killed before their
/// [`Container`] guard ran (named `qao-image-<pid>-<n>` by [`unique_name`]).
async fn remove_orphans() {
    let out = output(podman(&["ps", "--all", "--format", "{{.Names}}"]), None).await;
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        let pid = name
            .strip_prefix("qao-image-")
            .and_then(|rest| rest.split('-').next());
        if let Some(pid) = pid
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = output(podman(&["rm", "--force", "--time", "0", name]), None).await;
        }
    }
}

/// The fields after `Key:` in /proc/PID/status.
fn status_field(status: &str, key: &str) -> Vec<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/PID/status"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_operator_read_only_as_nonroot() {
    let archive = archive().to_str().unwrap().to_string();
    let loaded = output(podman(&["load", "--input", &archive]), None).await;
    assert!(loaded.status.success(), "podman load: {}", text(&loaded));
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains(&format!("Loaded image: {}", image_ref())),
        "podman names the loaded image as the chart's default resolves: {}",
        text(&loaded)
    );
    // The storage is these tests' alone: earlier builds' images, now untagged, can go.
    let _ = output(podman(&["image", "prune", "--force"]), None).await;
    remove_orphans().await;

    let ns = TestNamespace::new("image").await;
    let emu = emulator(|_| {}).await;
    // Host names, not 127.0.0.1: the image's glibc must resolve them (nsswitch, /etc/hosts).
    let tenant = format!("http://localhost:{}", emu.addr().port());
    connection_secret(&ns.client, &ns.name, "qlik", &tenant, ADMIN_KEY).await;
    let cp = ControlPlane::shared();
    let kubeconfig = std::fs::read_to_string(cp.kubeconfig_path())
        .unwrap()
        .replace("https://127.0.0.1:", "https://localhost:");
    assert!(kubeconfig.contains("https://localhost:"));
    // The directory stays private (0700); the file is readable by the container's user.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig_path = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig_path, kubeconfig).unwrap();
    std::fs::set_permissions(&kubeconfig_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = dir.path().join("container.log");

    let listen = free_addr();
    let container = Container {
        name: unique_name("qao-image"),
        log: log.clone(),
    };
    let mount = format!("{}:/etc/qao/kubeconfig:ro", kubeconfig_path.display());
    let env = [
        "KUBECONFIG=/etc/qao/kubeconfig".to_string(),
        format!("QAO_LISTEN={listen}"),
        format!("QAO_NAMESPACES={}", ns.name),
        "QAO_RESYNC_SECONDS=5".to_string(),
        "RUST_LOG=info,qlik_automations_operator=debug".to_string(),
    ];
    let log_opt = format!("path={}", log.display());
    let image = image_ref();
    let mut args = vec![
        "run",
        "--detach",
        "--rm",
        "--name",
        &container.name,
        "--pull",
        "never",
        "--read-only",
        "--network",
        "host",
        // runc raises these limits to the host's defaults otherwise, which needs
        // CAP_SYS_RESOURCE where some CI machines have none.
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--volume",
        &mount,
        "--log-driver",
        "k8s-file",
        "--log-opt",
        &log_opt,
    ];
    for e in &env {
        args.extend(["--env", e.as_str()]);
    }
    // No arguments: the image's own CMD (`run`) with the settings from the environment.
    args.push(&image);
    let started = output(podman(&args), None).await;
    assert!(started.status.success(), "podman run: {}", text(&started));

    let pid: u32 = container
        .inspect("{{.State.Pid}}")
        .await
        .and_then(|p| p.parse().ok())
        .filter(|p| *p != 0)
        .unwrap_or_else(|| panic!("the container is not running:\n{}", container.log()));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut healthz, mut readyz) = (None, None);
    while Instant::now() < deadline {
        healthz = match http.get(format!("http://{listen}/healthz")).send().await {
            Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
            Err(_) => None,
        };
        readyz = match http.get(format!("http://{listen}/readyz")).send().await {
            Ok(r) => Some(r.status().as_u16()),
            Err(_) => None,
        };
        if healthz.as_ref().is_some_and(|(s, _)| *s == 200) && readyz == Some(200) {
            break;
        }
        if container.inspect("{{.State.Running}}").await.as_deref() != Some("true") {
            panic!("the container exited:\n{}", container.log());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        healthz,
        Some((200, "ok".to_string())),
        "/healthz:\n{}",
        container.log()
    );
    assert_eq!(readyz, Some(200), "/readyz:\n{}", container.log());

    // It does its job: an automation reaches the emulator (by host name, through the
    // platform verifier, which needs the CA bundle even for http) and becomes Ready.
    ns.apply_yaml::<QlikAutomation>(&automation_yaml("from-image", "  name: From the image"))
        .await;
    let api: Api<QlikAutomation> = ns.api();
    wait_ready(&api, "from-image").await;
    assert_eq!(
        remotes_named(&emu, "From the image").len(),
        1,
        "{}",
        container.log()
    );

    // The image's entrypoint and command, as user and group 65532, without capabilities.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&str> = std::str::from_utf8(&cmdline)
        .unwrap()
        .trim_end_matches('\0')
        .split('\0')
        .collect();
    assert_eq!(argv, [BINARY_PATH, "run"]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "Uid"), ["65532"; 4]);
    assert_eq!(status_field(&status, "Gid"), ["65532"; 4]);
    assert_eq!(status_field(&status, "CapEff"), ["0000000000000000"]);

    // Its root filesystem cannot be written: podman made it read-only, and the kernel says
    // so for the mount the process sees as `/`.
    assert_eq!(
        container
            .inspect("{{.HostConfig.ReadonlyRootfs}}")
            .await
            .as_deref(),
        Some("true")
    );
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    // The last mount at / is the one on top, the one the process sees.
    let root_options = mountinfo
        .lines()
        .rev()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[4] == "/")
        .map(|f| f[5].to_string())
        .expect("a mount at / in mountinfo");
    assert!(
        root_options.split(',').any(|o| o == "ro"),
        "/ is mounted {root_options}"
    );

    // SIGTERM (what the kubelet sends) stops it cleanly, well before podman's SIGKILL.
    let started = Instant::now();
    let stopped = output(podman(&["stop", "--time", "30", &container.name]), None).await;
    assert!(stopped.status.success(), "podman stop: {}", text(&stopped));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "stopping took {:?}",
        started.elapsed()
    );
    assert!(
        container.log().contains("operator stopped"),
        "no clean shutdown in the log:\n{}",
        container.log()
    );
}
