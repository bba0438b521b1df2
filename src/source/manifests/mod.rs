//! The embedded default source: a folder (or file) of Kubernetes manifests, as
//! `kubectl get -o yaml` prints them.
//!
//! Each file is read whole; YAML files may hold several documents (`---`) and any document
//! may be a `kind: List`. A bad document is logged with its file and index and skipped. A
//! file that becomes invalid after it once loaded keeps its last good objects until it is
//! fixed, so that a half-saved edit never takes names away: its changes are not sent, and
//! the controller keeps what it has. The objects themselves are not kept here.
//!
//! [`index`] remembers which file defines which object, [`watch`] reloads on file events.

pub mod index;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::model::{Change, Kind, Object, ObjectKey};
use crate::source::convert::ConvertOptions;
use crate::source::manifest::Manifest;

use index::{DefinitionIndex, FileId, Undefined};

/// Why the manifests could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("--manifests {path}: cannot read it")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--manifests {path}: no .yaml, .yml or .json file found")]
    Empty { path: PathBuf },
}

/// One document that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentError {
    /// 1-based index of the document in its file.
    pub document: usize,
    /// `Kind namespace/name` when it could be read, for the log.
    pub object: Option<String>,
    pub reason: String,
}

/// When a file last changed, to skip re-parsing files that did not. The inode tells a file
/// renamed into place (editors, `kubectl` tooling, ConfigMap volumes) from the one before,
/// whatever the clock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// A file modified this close to when it was read may change again within the same tick
/// of the file system's clock, keeping its stamp: it is read again next time ("racily
/// clean", as git calls it), and its content compared.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

/// A file known to the set: when it was last read, and its number in the index.
#[derive(Debug, Clone, Copy)]
struct KnownFile {
    stamp: FileStamp,
    id: FileId,
    /// Read within [`RACY`] of its modification: the stamp alone does not say it is
    /// unchanged.
    racy: bool,
    /// A hash of the text last read, to tell a re-read of the same text.
    content: u64,
}

/// The manifests under one path: which file defines which object, and when each file was
/// read. The objects themselves go to the controller and are not kept here (that would be
/// a second copy of the model): a reload parses only the files that changed and returns
/// what changed in them.
#[derive(Debug)]
pub struct ManifestSet {
    root: PathBuf,
    /// How objects are converted (the server's flags).
    options: ConvertOptions,
    files: BTreeMap<Arc<Path>, KnownFile>,
    defined: DefinitionIndex,
}

impl ManifestSet {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            options: ConvertOptions::default(),
            files: BTreeMap::new(),
            defined: DefinitionIndex::default(),
        }
    }

    /// A set loaded from `root`, and every object in it.
    pub fn load(root: impl Into<PathBuf>) -> Result<(Self, Vec<Object>), ManifestError> {
        Self::load_with(root, ConvertOptions::default())
    }

    /// As [`ManifestSet::load`], converting objects with `options`.
    pub fn load_with(
        root: impl Into<PathBuf>,
        options: ConvertOptions,
    ) -> Result<(Self, Vec<Object>), ManifestError> {
        let mut set = Self::new(root);
        set.options = options;
        // A fresh set has nothing to delete: every change applies an object, and when two
        // files define one, the later file's comes last.
        let mut objects: BTreeMap<(Kind, ObjectKey), Object> = BTreeMap::new();
        for change in set.reload()? {
            if let Change::Apply(object) = change {
                objects.insert((object.kind(), object.key().clone()), object);
            }
        }
        Ok((set, objects.into_values().collect()))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-reads what changed and returns the changes to apply, in order (empty when nothing
    /// changed). When the path cannot be read at all (deleted, unreadable), everything
    /// loaded so far is kept.
    pub fn reload(&mut self) -> Result<Vec<Change>, ManifestError> {
        let paths = list_files(&self.root).map_err(|source| ManifestError::Unreadable {
            path: self.root.clone(),
            source,
        })?;
        if paths.is_empty() && self.files.is_empty() {
            return Err(ManifestError::Empty {
                path: self.root.clone(),
            });
        }
        let mut changes = Vec::new();
        let gone: Vec<Arc<Path>> = self
            .files
            .keys()
            .filter(|path| paths.binary_search_by(|p| p.as_path().cmp(path)).is_err())
            .cloned()
            .collect();
        for path in gone {
            tracing::info!(file = %path.display(), "manifest file removed: its objects are gone");
            let Some(file) = self.files.remove(&path) else {
                continue;
            };
            for key in self.defined.keys_of(file.id) {
                self.undefine(key, file.id, &mut changes);
            }
            self.defined.remove_file(file.id);
        }
        for path in paths {
            self.reload_file(&path, &mut changes);
        }
        Ok(changes)
    }

    /// Re-reads one file if its stamp moved, adding what changed in it to `changes`.
    fn reload_file(&mut self, path: &Path, changes: &mut Vec<Change>) {
        let stamp = match std::fs::metadata(path) {
            Ok(meta) => FileStamp {
                len: meta.len(),
                modified: meta.modified().ok(),
                inode: std::os::unix::fs::MetadataExt::ino(&meta),
            },
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read manifest file; keeping its last good objects");
                return;
            }
        };
        let known = self
            .files
            .get_key_value(path)
            .map(|(path, file)| (path.clone(), *file));
        if known
            .as_ref()
            .is_some_and(|(_, file)| file.stamp == stamp && !file.racy)
        {
            return;
        }
        let racy = stamp.modified.is_none_or(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .map_or(true, |age| age < RACY)
        });
        let (path, known): (Arc<Path>, Option<KnownFile>) = match known {
            Some((path, file)) => (path, Some(file)),
            None => (path.into(), None),
        };
        let known_id = known.map(|file| file.id);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read manifest file; keeping its last good objects");
                return;
            }
        };
        let content = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            text.hash(&mut hasher);
            hasher.finish()
        };
        if let Some(file) = known
            && file.content == content
        {
            // Read again (its stamp moved, or it was racy), the same text: nothing changed.
            let file = KnownFile {
                stamp,
                racy,
                ..file
            };
            self.files.insert(path, file);
            return;
        }
        let (objects, errors) = parse_file(&path, &text, &self.options);
        for e in &errors {
            tracing::warn!(
                file = %path.display(),
                document = e.document,
                object = e.object.as_deref().unwrap_or("?"),
                reason = %e.reason,
                "bad manifest document skipped"
            );
        }
        // Remember the stamp either way, so that the same broken file is not re-parsed
        // every tick.
        let was_known = known_id.is_some();
        let id = known_id.unwrap_or_else(|| self.defined.add_file(path.clone()));
        self.files.insert(
            path.clone(),
            KnownFile {
                stamp,
                id,
                racy,
                content,
            },
        );
        if was_known && !errors.is_empty() {
            tracing::warn!(
                file = %path.display(),
                errors = errors.len(),
                "manifest file is invalid; keeping its last good objects until it is fixed"
            );
            return;
        }
        // Within a file, as between files, the later definition wins.
        let mut by_key: BTreeMap<(Kind, ObjectKey), Object> = BTreeMap::new();
        for object in objects {
            let id = (object.kind(), object.key().clone());
            if by_key.insert(id, object).is_some() {
                tracing::warn!(file = %path.display(), "object defined twice in one file; the later document wins");
            }
        }
        if was_known {
            for key in self.defined.keys_of(id) {
                if !by_key.contains_key(&key) {
                    self.undefine(key, id, changes);
                }
            }
        }
        for ((kind, key), object) in by_key {
            let defined = self.defined.define(kind, key, id);
            if let Some((earlier, later)) = &defined.conflict {
                tracing::warn!(
                    kind = kind.as_str(),
                    object = %object.key(),
                    earlier = %earlier.display(),
                    later = %later.display(),
                    "object defined twice; the later file wins"
                );
            }
            if defined.wins {
                changes.push(Change::Apply(object));
            }
        }
    }

    /// File `id` no longer defines `key`: the object is deleted, or, when `id` was the
    /// winning file of several, the next one's object applies (read back from that file).
    fn undefine(&mut self, key: (Kind, ObjectKey), id: FileId, changes: &mut Vec<Change>) {
        match self.defined.undefine(key.0, &key.1, id) {
            Undefined::Unchanged => {}
            Undefined::Gone => changes.push(Change::Delete(key.0, key.1)),
            Undefined::NewWinner(winner) => match read_object(&winner, &key, &self.options) {
                Some(object) => changes.push(Change::Apply(object)),
                None => tracing::warn!(
                    kind = key.0.as_str(),
                    object = %key.1,
                    file = %winner.display(),
                    "object no longer defined in its winning file, and the next file cannot be read back; keeping it as last loaded"
                ),
            },
        }
    }
}

/// The object `key` as `path` defines it now (its last definition there).
fn read_object(path: &Path, key: &(Kind, ObjectKey), options: &ConvertOptions) -> Option<Object> {
    let text = std::fs::read_to_string(path).ok()?;
    let (objects, _) = parse_file(path, &text, options);
    objects
        .into_iter()
        .rev()
        .find(|o| o.kind() == key.0 && *o.key() == key.1)
}

/// Manifest files under `root` (itself, when it is a file), in path order. Hidden files
/// (editor swap files such as `.x.swp`) are skipped.
fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)?;
    if meta.is_file() {
        return Ok(vec![root.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                dirs.push(path);
            } else if is_manifest(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Parses one file's text into objects and the errors of the documents that were skipped.
pub fn parse_file(
    path: &Path,
    text: &str,
    options: &ConvertOptions,
) -> (Vec<Object>, Vec<DocumentError>) {
    let is_json = path.extension().and_then(|e| e.to_str()) == Some("json");
    let documents: Vec<Result<Value, String>> = if is_json {
        vec![serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))]
    } else {
        split_yaml(text)
            .into_iter()
            .map(|doc| {
                serde_saphyr::from_str::<Value>(doc).map_err(|e| format!("invalid YAML: {e}"))
            })
            .collect()
    };
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        let error = |object, reason| DocumentError {
            document: i + 1,
            object,
            reason,
        };
        match document {
            Err(reason) => errors.push(error(None, reason)),
            Ok(Value::Null) => {}
            Ok(value) => {
                for result in objects_of(value, options) {
                    match result {
                        Ok(Some(object)) => objects.push(object),
                        Ok(None) => {}
                        Err((object, reason)) => errors.push(error(object, reason)),
                    }
                }
            }
        }
    }
    (objects, errors)
}

/// Splits a YAML stream at its document markers (`---` lines; `...` ends a document), as
/// kubectl's reader does, so that one broken document does not take its neighbours down.
pub fn split_yaml(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_marker {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
        .into_iter()
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

type ObjectResult = Result<Option<Object>, (Option<String>, String)>;

/// The objects of one document: itself, or the items of a List.
fn objects_of(value: Value, options: &ConvertOptions) -> Vec<ObjectResult> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        let Some(Value::Array(items)) = value.get("items").cloned() else {
            return vec![Err((Some(kind.to_owned()), "items is not a list".into()))];
        };
        return items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                object_of(item, options)
                    .map_err(|(object, reason)| (object, format!("items[{i}]: {reason}")))
            })
            .collect();
    }
    vec![object_of(value, options)]
}

fn object_of(value: Value, options: &ConvertOptions) -> ObjectResult {
    let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    let kind = text("kind").unwrap_or_default();
    let meta = value.get("metadata");
    let meta_text = |field: &str| meta.and_then(|m| m.get(field)).and_then(Value::as_str);
    let label = format!(
        "{} {}/{}",
        if kind.is_empty() { "?" } else { &kind },
        meta_text("namespace").unwrap_or("default"),
        meta_text("name").unwrap_or("?")
    );
    let manifest = match Manifest::from_document(value) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            tracing::debug!(object = %label, "kind not used for DNS; skipped");
            return Ok(None);
        }
        Err(error) => return Err((Some(label), reason(&error))),
    };
    manifest
        .convert_with(options)
        .map_err(|error| (Some(label), reason(&error.source)))
}

/// An error and its sources, for a document's log line: `message: cause: cause`.
fn reason(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_split_at_markers() {
        fn check(text: &str, expected: usize) {
            assert_eq!(split_yaml(text).len(), expected, "{text:?}");
        }
        check("a: 1\n", 1);
        check("---\na: 1\n---\nb: 2\n", 2);
        check("a: 1\n---\n# only a comment\n---\n", 1);
        check("a: |\n  ---not a marker\n", 1);
        check("a: 1\n...\n---\nb: 2", 2);
    }

    #[test]
    fn bad_documents_are_reported_and_skipped() {
        let text = "\
apiVersion: v1
kind: Service
metadata: {name: good, namespace: demo}
spec: {clusterIP: None}
---
apiVersion: v1
kind: Service
metadata: {name: bad, namespace: demo}
spec: {clusterIP: None, ports: [{port: not-a-number}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
kind: [unclosed
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: old}
";
        let (objects, errors) = parse_file(Path::new("x.yaml"), text, &ConvertOptions::default());
        assert_eq!(objects.len(), 1);
        let summary: Vec<(usize, Option<&str>)> = errors
            .iter()
            .map(|e| (e.document, e.object.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (2, Some("Service demo/bad")),
                (4, None),
                (5, Some("EndpointSlice default/old"))
            ]
        );
        assert!(
            errors[0].reason.contains("spec.ports[0].port"),
            "{:?}",
            errors[0]
        );
    }

    #[test]
    fn lists_and_json() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"a"},"spec":{"clusterIP":"None"}},
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"b"},"spec":{"clusterIP":"bad"}}]}"#;
        let (objects, errors) = parse_file(Path::new("x.json"), json, &ConvertOptions::default());
        assert_eq!(objects.len(), 1);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].reason.starts_with("items[1]"), "{:?}", errors[0]);
    }

    fn service(name: &str, ip: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: demo}}\nspec: {{clusterIP: {ip}}}\n---\n"
        )
    }

    /// What a reload's changes say, as `+name ip` (applied) and `-name` (deleted).
    fn summary(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|change| match change {
                Change::Apply(Object::Service(s)) => match &s.kind {
                    crate::model::ServiceKind::ClusterIp(ips) => {
                        format!("+{} {}", s.key.name, ips[0])
                    }
                    other => format!("+{} {other:?}", s.key.name),
                },
                Change::Delete(Kind::Service, key) => format!("-{}", key.name),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn reloads_return_what_changed_in_the_changed_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: String| std::fs::write(dir.path().join(file), text).unwrap();
        write(
            "a.yaml",
            service("one", "10.96.0.1") + &service("two", "10.96.0.2"),
        );
        write("b.yaml", service("three", "10.96.0.3"));
        let (mut set, objects) = ManifestSet::load(dir.path()).unwrap();
        assert_eq!(objects.len(), 3);
        assert!(set.reload().unwrap().is_empty(), "nothing changed");

        // One object edited, one gone: only a.yaml is read, and only its objects change.
        write("a.yaml", service("one", "10.96.0.11"));
        assert_eq!(summary(&set.reload().unwrap()), ["-two", "+one 10.96.0.11"]);

        // An object moves from b.yaml to a.yaml: applied again, never deleted.
        write(
            "a.yaml",
            service("one", "10.96.0.11") + &service("three", "10.96.0.3"),
        );
        write("b.yaml", "# empty now\n".into());
        let moved = summary(&set.reload().unwrap());
        assert!(!moved.contains(&"-three".to_string()), "{moved:?}");
        assert!(moved.contains(&"+three 10.96.0.3".to_string()), "{moved:?}");

        // A file removed takes its objects along.
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        let mut gone = summary(&set.reload().unwrap());
        gone.sort();
        assert_eq!(gone, ["-one", "-three"]);
    }

    #[test]
    fn the_later_file_wins_and_the_earlier_takes_over_when_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let write = |file: &str, text: String| std::fs::write(dir.path().join(file), text).unwrap();
        write("a.yaml", service("one", "10.96.0.1"));
        write("b.yaml", service("one", "10.96.0.2"));
        let (mut set, objects) = ManifestSet::load(dir.path()).unwrap();
        assert_eq!(
            summary(&objects.into_iter().map(Change::Apply).collect::<Vec<_>>()),
            ["+one 10.96.0.2"]
        );
        // The earlier file's edit changes nothing served.
        write("a.yaml", service("one", "10.96.0.11"));
        assert!(set.reload().unwrap().is_empty());
        // The later file drops it: the earlier file's definition applies, read back.
        write("b.yaml", "# nothing\n".into());
        assert_eq!(summary(&set.reload().unwrap()), ["+one 10.96.0.11"]);
        // And when that one goes too, the object is deleted.
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        assert_eq!(summary(&set.reload().unwrap()), ["-one"]);
    }

    #[test]
    fn a_broken_file_changes_nothing_until_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: String| std::fs::write(dir.path().join("a.yaml"), text).unwrap();
        write(service("one", "10.96.0.1") + &service("two", "10.96.0.2"));
        let (mut set, _) = ManifestSet::load(dir.path()).unwrap();
        write(service("one", "10.96.0.300"));
        assert!(set.reload().unwrap().is_empty(), "last good objects kept");
        write(service("one", "10.96.0.9"));
        assert_eq!(summary(&set.reload().unwrap()), ["-two", "+one 10.96.0.9"]);
    }

    #[test]
    fn an_edit_of_the_same_length_within_a_clock_tick_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, service("one", "10.96.0.1")).unwrap();
        let (mut set, _) = ManifestSet::load(dir.path()).unwrap();
        // At once, in place: same length, and likely the same modification time.
        std::fs::write(&path, service("one", "10.96.0.2")).unwrap();
        assert_eq!(summary(&set.reload().unwrap()), ["+one 10.96.0.2"]);
        // Renamed into place, as editors and `kubectl` tooling write.
        std::fs::write(dir.path().join("a.tmp~"), service("one", "10.96.0.3")).unwrap();
        std::fs::rename(dir.path().join("a.tmp~"), &path).unwrap();
        assert_eq!(summary(&set.reload().unwrap()), ["+one 10.96.0.3"]);
        // Read again while racy, the same text: nothing to publish.
        assert!(set.reload().unwrap().is_empty());
    }
}
