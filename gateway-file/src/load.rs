//! Reading a file or folder of manifests into a [`Snapshot`].

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use gateway_core::model::{ObjectKey, Resource, ResourceKind, Snapshot};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_saphyr::MessageFormatter as _;

use crate::error::{LoadError, Problem};
use crate::split::{Cutter, Region, split_yaml};

/// How manifests are read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Namespace given to objects of namespaced kinds that name none, as `kubectl apply`
    /// does with the current context's namespace. Default `"default"`.
    pub default_namespace: String,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            default_namespace: "default".to_owned(),
        }
    }
}

impl LoadOptions {
    /// Sets [`LoadOptions::default_namespace`].
    pub fn with_default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }
}

/// Loads every manifest under `path` into a snapshot.
///
/// `path` is a file (read whatever its extension; `.json` as JSON, anything else as YAML) or
/// a folder, read recursively: files ending `.yaml`, `.yml` or `.json`, in path order,
/// skipping hidden files and folders and editor leftovers (`*.swp`, `*~`, `.#*`).
///
/// YAML files may hold several documents (`---`); a JSON file may hold several objects one
/// after another. A `kind: List` contributes its `items`. Kinds the gateway does not read
/// (Deployments, cert-manager Certificates, …) are skipped; a kind it reads in an
/// `apiVersion` upstream never served is an error. Objects of namespaced kinds without a
/// namespace get [`LoadOptions::default_namespace`]; cluster-scoped kinds lose any namespace
/// they were written with, as the API server ignores it.
///
/// # Errors
///
/// Every problem found (unreadable files, YAML or JSON syntax, fields of the wrong shape,
/// unknown versions, an object defined twice), not just the first.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Snapshot, LoadError> {
    load_cached(path, options, &mut ParseCache::default())
}

/// What each file held when it was last parsed, so that a reload parses only the files whose
/// text changed (a one-route edit beside a file of thousands of routes parses one small file).
/// Files are still all read and compared: text, not timestamps, decides, so an edit within a
/// timestamp's granularity is never missed.
#[derive(Debug, Default)]
pub(crate) struct ParseCache {
    files: HashMap<PathBuf, Parsed>,
    /// How many files the last load parsed (the others were unchanged).
    pub(crate) parsed_last: usize,
}

#[derive(Debug)]
struct Parsed {
    text: String,
    problems: Vec<Problem>,
    objects: Vec<(Resource, Place)>,
}

/// [`load`], reusing what `cache` parsed of files whose text is unchanged, and keeping what
/// it parses now for the next load (files that are gone are forgotten).
pub(crate) fn load_cached(
    path: &Path,
    options: &LoadOptions,
    cache: &mut ParseCache,
) -> Result<Snapshot, LoadError> {
    let mut loader = Loader {
        problems: Vec::new(),
        objects: Vec::new(),
    };
    let mut next = HashMap::new();
    cache.parsed_last = 0;
    for file in loader.files(path) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            // Removed between listing and reading: the next reload sees the folder as it is.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                loader
                    .problems
                    .push(Problem::file(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        let parsed = match cache.files.remove(&file) {
            Some(parsed) if parsed.text == text => parsed,
            _ => {
                cache.parsed_last += 1;
                let mut one = Loader {
                    problems: Vec::new(),
                    objects: Vec::new(),
                };
                one.load_text(&file, &text);
                Parsed {
                    text,
                    problems: one.problems,
                    objects: one.objects,
                }
            }
        };
        loader.problems.extend(parsed.problems.iter().cloned());
        loader.objects.extend(parsed.objects.iter().cloned());
        next.insert(file, parsed);
    }
    cache.files = next;
    finish(loader, options)
}

/// Reads manifests from text, as if it were the content of the file `name` (whose extension
/// picks JSON or YAML, and which error messages name). Loading a folder reads each file this
/// way; the fuzz target drives the parser through it.
pub fn load_str(name: &Path, text: &str, options: &LoadOptions) -> Result<Snapshot, LoadError> {
    let mut loader = Loader {
        problems: Vec::new(),
        objects: Vec::new(),
    };
    loader.load_text(name, text);
    finish(loader, options)
}

fn finish(loader: Loader, options: &LoadOptions) -> Result<Snapshot, LoadError> {
    let Loader {
        mut problems,
        objects,
    } = loader;

    let mut seen: HashMap<ObjectKey, Place> = HashMap::new();
    let mut snapshot = Snapshot::default();
    for (mut resource, place) in objects {
        let kind = resource.kind();
        let meta = resource.metadata_mut();
        if !kind.is_namespaced() {
            meta.namespace = None;
        } else if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some(options.default_namespace.clone());
        }
        let key = resource.key();
        if let Some(first) = seen.get(&key) {
            problems.push(place.problem(
                Some(key.to_string()),
                format!("duplicate: {key} is also defined at {}", first.describe()),
            ));
            continue;
        }
        seen.insert(key, place);
        snapshot.push(resource);
    }
    if problems.is_empty() {
        Ok(snapshot)
    } else {
        Err(LoadError::new(problems))
    }
}

/// Whether `name` is a file or folder that loading skips whatever its extension.
pub(crate) fn is_ignored_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx")
}

/// Whether `path` names a file a folder load reads.
pub(crate) fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    !is_ignored_name(name)
        && matches!(
            path.extension().and_then(OsStr::to_str),
            Some("yaml" | "yml" | "json")
        )
}

/// Where an object was read.
#[derive(Clone, Debug)]
struct Place {
    file: PathBuf,
    document: usize,
    item: Option<usize>,
    line: u64,
    column: u64,
}

impl Place {
    fn problem(&self, object: Option<String>, message: String) -> Problem {
        Problem {
            file: self.file.clone(),
            position: Some((self.line, self.column)),
            document: Some(self.document),
            item: self.item,
            object,
            message,
        }
    }

    fn describe(&self) -> String {
        let item = self.item.map(|i| format!(", item {i}")).unwrap_or_default();
        format!(
            "{}:{}:{} (document {}{item})",
            self.file.display(),
            self.line,
            self.column,
            self.document
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

/// The fields read before the kind is known.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<HeaderMeta>,
}

#[derive(Deserialize)]
struct HeaderMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct JsonList<'a> {
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// A parser error reduced to its parts.
struct ParseFailure {
    /// Position inside the region text.
    position: Option<(u64, u64)>,
    message: String,
}

impl ParseFailure {
    fn yaml(error: &serde_saphyr::Error) -> Self {
        let error = error.without_snippet();
        let message = serde_saphyr::DefaultMessageFormatter.format_message(error);
        ParseFailure {
            position: error
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| (l.line(), l.column())),
            message: sanitize(&message),
        }
    }

    fn json(error: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its Display; the position is reported
        // separately, so the message is rebuilt without it.
        let text = error.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) if error.line() > 0 => text[..i].to_owned(),
            _ => text,
        };
        ParseFailure {
            position: (error.line() > 0).then(|| (error.line() as u64, error.column() as u64)),
            message: sanitize(&message),
        }
    }
}

/// Messages end up in one-line-per-problem output and logs: no control characters.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

struct Loader {
    problems: Vec<Problem>,
    objects: Vec<(Resource, Place)>,
}

impl Loader {
    /// The files to read under `path`, sorted.
    fn files(&mut self, path: &Path) -> Vec<PathBuf> {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) => {
                self.problems
                    .push(Problem::file(path, format!("cannot read: {e}")));
                return Vec::new();
            }
        };
        if !metadata.is_dir() {
            return vec![path.to_owned()];
        }
        let mut files = Vec::new();
        let mut visited = HashSet::new();
        self.walk(path, &mut files, &mut visited);
        files.sort();
        files
    }

    fn walk(&mut self, dir: &Path, files: &mut Vec<PathBuf>, visited: &mut HashSet<PathBuf>) {
        // Symlinked folders are followed (ConfigMap mounts are made of them); a loop is not.
        if let Ok(canonical) = dir.canonicalize()
            && !visited.insert(canonical)
        {
            return;
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problems
                    .push(Problem::file(dir, format!("cannot read folder: {e}")));
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.problems
                        .push(Problem::file(dir, format!("cannot read folder: {e}")));
                    continue;
                }
            };
            let path = entry.path();
            if is_ignored_name(&entry.file_name()) {
                continue;
            }
            // `metadata` follows symlinks, unlike `DirEntry::file_type`.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => self.walk(&path, files, visited),
                Ok(_) if is_manifest_file(&path) => files.push(path),
                Ok(_) => {}
                // A dangling symlink, or a file removed since the listing: skip it, as a
                // listing a moment later would have.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self
                    .problems
                    .push(Problem::file(&path, format!("cannot read: {e}"))),
            }
        }
    }

    fn load_text(&mut self, file: &Path, text: &str) {
        // Editors hide a byte-order mark; columns count from what they show.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let format = match file.extension().and_then(OsStr::to_str) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        };
        match format {
            Format::Yaml => self.load_yaml(file, text),
            Format::Json => self.load_json(file, text),
        }
    }

    fn load_yaml(&mut self, file: &Path, text: &str) {
        let split = split_yaml(text);
        for document in split.documents {
            if let Some(root) = &document.root {
                let place = Place {
                    file: file.to_owned(),
                    document: document.index,
                    item: None,
                    line: root.line,
                    column: root.column,
                };
                self.load_object(Format::Yaml, root, &place, Some(&document.items));
            }
        }
        if let Some((document, error)) = split.error {
            let marker = error.marker();
            self.problems.push(Problem {
                file: file.to_owned(),
                position: Some((marker.line() as u64, marker.col() as u64 + 1)),
                document: Some(document),
                item: None,
                object: None,
                message: sanitize(&format!("YAML syntax error: {}", error.info())),
            });
        }
    }

    fn load_json(&mut self, file: &Path, text: &str) {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        let cutter = Cutter::new(text);
        for (i, value) in stream.enumerate() {
            let document = i + 1;
            match value {
                Ok(raw) => {
                    let start = offset_in(text, raw.get());
                    let region = cutter.cut(start, start + raw.get().len());
                    let place = Place {
                        file: file.to_owned(),
                        document,
                        item: None,
                        line: region.line,
                        column: region.column,
                    };
                    self.load_object(Format::Json, &region, &place, None);
                }
                Err(e) => {
                    let failure = ParseFailure::json(&e);
                    self.problems.push(Problem {
                        file: file.to_owned(),
                        position: failure.position,
                        document: Some(document),
                        item: None,
                        object: None,
                        message: format!("JSON syntax error: {}", failure.message),
                    });
                    return;
                }
            }
        }
    }

    fn fail(
        &mut self,
        place: &Place,
        region: &Region,
        object: Option<String>,
        failure: ParseFailure,
    ) {
        let position = failure
            .position
            .map(|(line, column)| region.position(line, column))
            .unwrap_or((place.line, place.column));
        self.problems.push(Problem {
            position: Some(position),
            ..place.problem(object, failure.message)
        });
    }

    /// Reads one object (or the items of a List) from its region.
    fn load_object(
        &mut self,
        format: Format,
        region: &Region,
        place: &Place,
        yaml_items: Option<&[Region]>,
    ) {
        let header = match format {
            Format::Yaml => {
                serde_saphyr::from_str::<Header>(&region.text).map_err(|e| ParseFailure::yaml(&e))
            }
            Format::Json => {
                serde_json::from_str::<Header>(&region.text).map_err(|e| ParseFailure::json(&e))
            }
        };
        let header = match header {
            Ok(header) => header,
            Err(mut failure) => {
                failure.message = format!("not a Kubernetes object: {}", failure.message);
                self.fail(place, region, None, failure);
                return;
            }
        };
        let api_version = header.api_version.unwrap_or_default();
        let kind = header.kind.unwrap_or_default();
        let (name, namespace) = header
            .metadata
            .map(|m| (m.name.unwrap_or_default(), m.namespace.unwrap_or_default()))
            .unwrap_or_default();
        let label = match (kind.as_str(), namespace.as_str(), name.as_str()) {
            ("", _, _) => None,
            (kind, _, "") => Some(kind.to_owned()),
            (kind, "", name) => Some(format!("{kind} {name}")),
            (kind, namespace, name) => Some(format!("{kind} {namespace}/{name}")),
        };
        if kind.is_empty() || api_version.is_empty() {
            let missing = match (api_version.is_empty(), kind.is_empty()) {
                (true, true) => "`apiVersion` and `kind`",
                (true, false) => "`apiVersion`",
                _ => "`kind`",
            };
            self.problems
                .push(place.problem(label, format!("not a Kubernetes object: {missing} missing")));
            return;
        }

        // `kubectl get -o yaml` writes `kind: List`; the API itself writes `<Kind>List`.
        if kind.ends_with("List") {
            if place.item.is_some() {
                self.problems
                    .push(place.problem(label, "a List inside a List is not read".to_owned()));
                return;
            }
            self.load_list(format, region, place, yaml_items);
            return;
        }

        let kind = match ResourceKind::identify(&api_version, &kind) {
            Ok(Some(kind)) => kind,
            Ok(None) => {
                tracing::debug!(
                    file = %place.file.display(),
                    document = place.document,
                    "skipping {} ({api_version}): not a kind the gateway reads",
                    label.as_deref().unwrap_or(&kind),
                );
                return;
            }
            Err(e) => {
                self.problems.push(place.problem(label, e.to_string()));
                return;
            }
        };

        let resource = match format {
            Format::Yaml => deserialize_yaml(kind, &region.text),
            Format::Json => deserialize_json(kind, &region.text),
        };
        match resource {
            // The API server requires a name; objects are told apart by it.
            Ok(resource) if resource.metadata().name.is_empty() => self
                .problems
                .push(place.problem(label, "metadata.name is missing".to_owned())),
            Ok(resource) => self.objects.push((resource, place.clone())),
            Err(failure) => self.fail(place, region, label, failure),
        }
    }

    fn load_list(
        &mut self,
        format: Format,
        region: &Region,
        place: &Place,
        yaml_items: Option<&[Region]>,
    ) {
        let items: Vec<Region> = match format {
            Format::Yaml => yaml_items.map(<[Region]>::to_vec).unwrap_or_default(),
            Format::Json => match serde_json::from_str::<JsonList<'_>>(&region.text) {
                Ok(list) => list
                    .items
                    .iter()
                    .map(|raw| {
                        let start = offset_in(&region.text, raw.get());
                        let mut item = Region::cut(&region.text, start, start + raw.get().len());
                        // Cut from the region, whose lines start after `line_offset` lines.
                        item.line_offset += region.line_offset;
                        item.line += region.line_offset;
                        item
                    })
                    .collect(),
                Err(e) => {
                    self.fail(place, region, None, ParseFailure::json(&e));
                    return;
                }
            },
        };
        for (i, item) in items.iter().enumerate() {
            let item_place = Place {
                item: Some(i + 1),
                line: item.line,
                column: item.column,
                ..place.clone()
            };
            self.load_object(format, item, &item_place, None);
        }
    }
}

/// Where `part`, a slice of `whole` (a borrowed JSON value), starts in it.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize)
        .checked_sub(whole.as_ptr() as usize)
        .filter(|&offset| offset <= whole.len())
        .unwrap_or(0)
}

/// Joins serde_path_to_error's path to the parser's message.
fn with_path(path: &serde_path_to_error::Path, message: String) -> String {
    if path.iter().next().is_some() {
        format!("{path}: {message}")
    } else {
        message
    }
}

fn deserialize_yaml(kind: ResourceKind, text: &str) -> Result<Resource, ParseFailure> {
    let mut track = serde_path_to_error::Track::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        Resource::deserialize(kind, serde_path_to_error::Deserializer::new(de, &mut track))
    })
    .map_err(|error| {
        let mut failure = ParseFailure::yaml(&error);
        // The parser names only the type it wanted ("invalid i64"); show what was written.
        if let serde_saphyr::Error::InvalidScalar { .. } = error.without_snippet()
            && let Some((line, column)) = failure.position
            && let Some(found) = scalar_at(text, line, column)
        {
            failure.message = format!("{}, found {}", failure.message, sanitize(found));
        }
        failure.message = with_path(&track.path(), failure.message);
        failure
    })
}

/// The scalar written at a 1-based line and column, as written (quotes included).
fn scalar_at(text: &str, line: u64, column: u64) -> Option<&str> {
    let line = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let skip = usize::try_from(column).ok()?.checked_sub(1)?;
    let start = line.char_indices().nth(skip).map(|(i, _)| i)?;
    let rest = &line[start..];
    let end = match rest.chars().next()? {
        quote @ ('"' | '\'') => rest[1..].find(quote).map_or(rest.len(), |i| i + 2),
        _ => rest.find([',', '}', ']', '#']).unwrap_or(rest.len()),
    };
    let found = rest[..end].trim_end();
    (!found.is_empty()).then_some(found)
}

fn deserialize_json(kind: ResourceKind, text: &str) -> Result<Resource, ParseFailure> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let result = Resource::deserialize(
        kind,
        serde_path_to_error::Deserializer::new(&mut de, &mut track),
    );
    match result {
        Ok(resource) => Ok(resource),
        Err(error) => {
            let mut failure = ParseFailure::json(&error);
            failure.message = with_path(&track.path(), failure.message);
            Err(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_yaml(name: &str) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: {name}}}\n\
             spec: {{parentRefs: [{{name: gw}}]}}\n"
        )
    }

    #[test]
    fn a_reload_parses_only_the_files_whose_text_changed_and_loads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let many: String = (0..50)
            .map(|i| format!("---\n{}", route_yaml(&format!("r{i}"))))
            .collect();
        std::fs::write(root.join("many.yaml"), &many).unwrap();
        std::fs::write(root.join("one.yaml"), route_yaml("one")).unwrap();
        let options = LoadOptions::default();
        let mut cache = ParseCache::default();
        let first = load_cached(root, &options, &mut cache).unwrap();
        assert_eq!(cache.parsed_last, 2);
        assert_eq!(first.http_routes.len(), 51);

        // An edit to the small file: only it is parsed, and the result is what a fresh load gives.
        std::fs::write(root.join("one.yaml"), route_yaml("changed")).unwrap();
        std::fs::write(root.join("new.yaml"), route_yaml("new")).unwrap();
        let second = load_cached(root, &options, &mut cache).unwrap();
        assert_eq!(cache.parsed_last, 2, "one.yaml and new.yaml, not many.yaml");
        assert_eq!(second, load(root, &options).unwrap());
        assert!(
            second
                .http_routes
                .iter()
                .any(|r| r.metadata.name == "changed")
        );

        // Nothing changed: nothing parsed. A file removed: its objects are gone.
        load_cached(root, &options, &mut cache).unwrap();
        assert_eq!(cache.parsed_last, 0);
        std::fs::remove_file(root.join("new.yaml")).unwrap();
        let third = load_cached(root, &options, &mut cache).unwrap();
        assert_eq!(cache.parsed_last, 0);
        assert_eq!(third.http_routes.len(), 51);
        assert_eq!(third, load(root, &options).unwrap());

        // A file that breaks keeps its problems while unchanged, and they name it.
        std::fs::write(root.join("one.yaml"), "kind: [").unwrap();
        let broken = load_cached(root, &options, &mut cache).unwrap_err();
        let again = load_cached(root, &options, &mut cache).unwrap_err();
        assert_eq!(cache.parsed_last, 0);
        assert_eq!(broken, again);
        assert!(broken.to_string().contains("one.yaml"), "{broken}");
    }

    #[test]
    fn folder_walk_skips_hidden_temp_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sub/.git")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        for name in [
            "b.yaml",
            "a.yml",
            "c.json",
            "sub/d.yaml",
            "sub/.git/e.yaml",
            ".hidden/f.yaml",
            ".g.yaml",
            ".h.yaml.swp",
            "i.yaml~",
            ".#j.yaml",
            "README.md",
        ] {
            std::fs::write(root.join(name), "").unwrap();
        }
        let mut loader = Loader {
            problems: Vec::new(),
            objects: Vec::new(),
        };
        let files: Vec<_> = loader
            .files(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_owned())
            .collect();
        assert_eq!(
            files,
            ["a.yml", "b.yaml", "c.json", "sub/d.yaml"].map(PathBuf::from)
        );
        assert!(loader.problems.is_empty());
    }

    #[test]
    fn scalar_at_finds_the_token() {
        let text = "a: \"eighty\" # x\nb: {c: ten, d: 1}\n";
        assert_eq!(scalar_at(text, 1, 4), Some("\"eighty\""));
        assert_eq!(scalar_at(text, 2, 8), Some("ten"));
        assert_eq!(scalar_at(text, 9, 1), None);
    }

    #[test]
    fn bom_is_skipped_and_names_are_required() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {}}",
        )
        .unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("a.json:1:1 (document 1, Service): metadata.name is missing"),
            "{err}"
        );
    }

    #[test]
    fn missing_path_is_a_problem() {
        let err = load(Path::new("/nonexistent/manifests"), &LoadOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/manifests: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "---\n# nothing\n---\n~\n---\n").unwrap();
        std::fs::write(dir.path().join("b.json"), "").unwrap();
        assert!(
            load(dir.path(), &LoadOptions::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn objects_without_kind_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "metadata: {name: x}\n---\n[1, 2]\n",
        )
        .unwrap();
        let err = load(dir.path(), &LoadOptions::default()).unwrap_err();
        assert_eq!(err.problems().len(), 2, "{err}");
        assert!(
            err.problems()[0]
                .message
                .contains("`apiVersion` and `kind` missing"),
            "{err}"
        );
        assert!(
            err.problems()[1]
                .message
                .starts_with("not a Kubernetes object"),
            "{err}"
        );
        assert_eq!(err.problems()[1].document, Some(2));
    }
}
