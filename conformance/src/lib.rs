//! In-process harness for the upstream Gateway API conformance suite.
//!
//! Finds the suite's data (the upstream manifests and our `cases.yaml` transcription), reads
//! `cases.yaml` into typed structs, and loads a test's manifests into a [`Snapshot`] the way a
//! cluster would hold them: placeholders replaced with our GatewayClass, and every Gateway API
//! object at `metadata.generation` 1 (what the API server assigns on create), so tests can
//! check `observedGeneration`.
//!
//! The suite is located at `../shared/conformance` relative to the workspace root, or at
//! `$GATEWAY_CONFORMANCE_DIR`, which may point at either that folder or a checkout of the
//! upstream repository's `conformance/` folder. A missing suite is an error, never a pass.

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use gateway_core::model::{ObjectMeta, Snapshot};
use gateway_file::LoadOptions;
use serde::Deserialize;

/// Name of the GatewayClass the harness adds and the placeholders are replaced with.
pub const GATEWAY_CLASS_NAME: &str = "gateway-conformance";
/// controllerName of that class; compile with `Options { controller_name: Some(this) }`.
pub const CONTROLLER_NAME: &str = "example.com/gateway-conformance";
/// Environment variable overriding where the suite is.
pub const DIR_VARIABLE: &str = "GATEWAY_CONFORMANCE_DIR";

/// Why the harness cannot run.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Where the suite's data is.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The upstream `conformance/` folder: holds `base/manifests.yaml` and `tests/*.yaml`.
    pub upstream: PathBuf,
    /// Our `cases.yaml`, when the folder has the shared layout (an upstream checkout has none).
    pub cases_file: Option<PathBuf>,
}

/// How to get the suite, appended to every "not found" error.
const HOW_TO_GET: &str = "get it with `git clone https://github.com/kubernetes-sigs/gateway-api` \
     and set GATEWAY_CONFORMANCE_DIR=<checkout>/conformance, or provide the shared folder \
     (`shared/conformance` next to the workspace, holding cases.yaml and \
     upstream/conformance/{base,tests})";

impl Suite {
    /// Finds the suite: `$GATEWAY_CONFORMANCE_DIR` if set, else `../shared/conformance`
    /// relative to the workspace root.
    ///
    /// # Errors
    ///
    /// When the folder is missing or has neither layout; the message says how to get it.
    pub fn locate() -> Result<Suite, Error> {
        let dir = match env::var_os(DIR_VARIABLE) {
            Some(dir) => PathBuf::from(dir),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
        };
        Suite::at(&dir)
    }

    /// Uses the suite at `dir`, detecting its layout: the shared folder
    /// (`cases.yaml` + `upstream/conformance/`) or an upstream `conformance/` checkout.
    ///
    /// # Errors
    ///
    /// When `dir` has neither layout.
    pub fn at(dir: &Path) -> Result<Suite, Error> {
        let shared = dir.join("upstream/conformance");
        if shared.join("base/manifests.yaml").is_file() {
            let cases = dir.join("cases.yaml");
            return Ok(Suite {
                upstream: shared,
                cases_file: cases.is_file().then_some(cases),
            });
        }
        if dir.join("base/manifests.yaml").is_file() && dir.join("tests").is_dir() {
            return Ok(Suite {
                upstream: dir.to_owned(),
                cases_file: None,
            });
        }
        Err(Error(format!(
            "Gateway API conformance suite not found at {} (neither {}/base/manifests.yaml nor \
             {}/upstream/conformance/base/manifests.yaml exists); {HOW_TO_GET}",
            dir.display(),
            dir.display(),
            dir.display(),
        )))
    }

    /// Reads `cases.yaml`.
    ///
    /// # Errors
    ///
    /// When the suite has no `cases.yaml` (an upstream checkout) or it does not parse.
    pub fn cases(&self) -> Result<Vec<TestCase>, Error> {
        let Some(path) = &self.cases_file else {
            return Err(Error(format!(
                "{} has no cases.yaml (an upstream checkout carries only manifests)",
                self.upstream.display()
            )));
        };
        let text = read(path)?;
        serde_saphyr::from_str(&text).map_err(|e| Error(format!("{}: {e}", path.display())))
    }

    /// The text of a manifest file, relative to the upstream `conformance/` folder
    /// (`tests/httproute-simple-same-namespace.yaml`), with the placeholders replaced.
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn manifest(&self, relative: &str) -> Result<String, Error> {
        Ok(replace_placeholders(&read(&self.upstream.join(relative))?))
    }

    /// Loads our GatewayClass, the base manifests, the given test manifests and `extra`
    /// (further YAML documents, e.g. generated Secrets) into one snapshot, and sets
    /// `metadata.generation` to 1 on every Gateway API object that has none.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or the manifests do not load.
    pub fn load(&self, manifests: &[&str], extra: &str) -> Result<Snapshot, Error> {
        let mut text = gateway_class_manifest();
        for relative in std::iter::once(&"base/manifests.yaml").chain(manifests) {
            text.push_str("\n---\n");
            text.push_str(&self.manifest(relative)?);
        }
        text.push_str("\n---\n");
        text.push_str(extra);
        let mut snapshot = gateway_file::load_str(
            Path::new("conformance.yaml"),
            &text,
            &LoadOptions::default(),
        )
        .map_err(|e| Error(format!("loading {manifests:?}: {e}")))?;
        for meta in gateway_api_metadata(&mut snapshot) {
            meta.generation.get_or_insert(1);
        }
        Ok(snapshot)
    }
}

/// The GatewayClass every test's Gateways name, owned by [`CONTROLLER_NAME`].
pub fn gateway_class_manifest() -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: \
         {GATEWAY_CLASS_NAME}\nspec:\n  controllerName: {CONTROLLER_NAME}\n"
    )
}

/// Replaces the suite's placeholders with our class and controller names.
pub fn replace_placeholders(text: &str) -> String {
    text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS_NAME)
        .replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER_NAME)
}

/// Metadata of every object whose conditions carry `observedGeneration`.
pub fn gateway_api_metadata(snapshot: &mut Snapshot) -> Vec<&mut ObjectMeta> {
    let Snapshot {
        gateway_classes,
        gateways,
        listener_sets,
        http_routes,
        grpc_routes,
        tls_routes,
        tcp_routes,
        udp_routes,
        backend_tls_policies,
        ..
    } = snapshot;
    let mut out: Vec<&mut ObjectMeta> = Vec::new();
    out.extend(gateway_classes.iter_mut().map(|o| &mut o.metadata));
    out.extend(gateways.iter_mut().map(|o| &mut o.metadata));
    out.extend(listener_sets.iter_mut().map(|o| &mut o.metadata));
    out.extend(http_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(grpc_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(tls_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(tcp_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(udp_routes.iter_mut().map(|o| &mut o.metadata));
    out.extend(backend_tls_policies.iter_mut().map(|o| &mut o.metadata));
    out
}

fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|e| {
        Error(format!(
            "cannot read {}: {e}; the conformance suite is incomplete, {HOW_TO_GET}",
            path.display()
        ))
    })
}

/// One upstream Go test, as transcribed in `cases.yaml`.
#[derive(Clone, Debug, Deserialize)]
pub struct TestCase {
    /// The Go test's `ShortName`.
    pub test: String,
    /// Features it requires.
    #[serde(default)]
    pub features: Vec<String>,
    /// Profiles the test counts in.
    #[serde(default)]
    pub profiles: Profiles,
    /// Manifest files, relative to the upstream `conformance/` folder.
    #[serde(default)]
    pub manifests: Vec<String>,
    /// Whether the test is provisional upstream.
    #[serde(default)]
    pub provisional: bool,
    /// Request/response cases; empty for status-only tests.
    #[serde(default)]
    pub cases: Vec<serde::de::IgnoredAny>,
    /// What the Go test checks beyond the cases (for status-only tests: everything).
    #[serde(default)]
    pub note: Option<String>,
}

/// `profiles` of a test: profile → `core` / `extended`, or a note saying why it counts in none.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Profiles {
    /// Profile name → `core` or `extended`.
    Map(BTreeMap<String, String>),
    /// Why the test is in no profile (`none (…)`).
    None(String),
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::Map(BTreeMap::new())
    }
}

impl TestCase {
    /// Whether the test sends no requests: it asserts status only.
    pub fn status_only(&self) -> bool {
        self.cases.is_empty()
    }
}
