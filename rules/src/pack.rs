//! A pack: every rule of a set of files and directories, compiled and cross-checked
//! (names unique, correlations referring to rules that exist).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use authtrail_model::{Event, Kind, Outcome};

use crate::correlation::TextMap;
use crate::error::{Error, FileProblem};
use crate::field::Field;
use crate::matcher::Pin;
use crate::rule::{self, CorrelationRule, DetectionRule, Rule};
use crate::yaml::{parse_documents, Problem};

/// Suffix of a rule file's test cases (`admin_scope.yml` → `admin_scope.tests.yml`).
pub const TESTS_SUFFIX: &str = ".tests.yml";
/// Most rule files one pack may hold.
const MAX_FILES: usize = 10_000;

/// The compiled rules of a pack, immutable once loaded (shared by rule sets).
#[derive(Debug, Default)]
pub struct Pack {
    pub detections: Vec<DetectionRule>,
    pub correlations: Vec<CorrelationRule>,
    /// Per detection rule, the correlations it feeds: (correlation, position in its `rules`).
    pub feeds: Vec<Vec<(usize, usize)>>,
    /// Per correlation, the first correlation of the pack with the same definition (type,
    /// correlated rules in order, group-by, timespan, condition, counted field): its own
    /// position when it is the first. Such correlations see the same matches in the same
    /// groups, so only the first keeps groups; the others raise when it completes.
    pub shares: Vec<usize>,
    /// Per detection rule, whether its matches raise alerts of their own (not referred to
    /// by a correlation, or referred to by one with `generate: true`).
    pub generates: Vec<bool>,
    /// Per event kind (`authn`, `token_issue`, `token_revoke`, `authz`) and outcome
    /// (none, then `success`, `failure`, `allow`, `deny`), the detection rules an event
    /// of that kind and outcome may match: most rules name both, so an event is tried
    /// against a fraction of the pack.
    by_kind: [[Bucket; 5]; 4],
    /// Per file, the detectors (`sigma:…`) of its rules, for the tests.
    pub files: Vec<(PathBuf, Vec<String>)>,
    /// Field tests that more than one entry of the pack makes (by signature): each has
    /// a slot in a rule set's [`Memo`](crate::matcher::Memo).
    pub shared_tests: usize,
}

impl Pack {
    /// Loads every `*.yml`/`*.yaml` (not `*.tests.yml`) under `paths` (files or
    /// directories, recursively); reports every problem of every file.
    pub fn load(paths: &[PathBuf]) -> Result<Pack, Error> {
        let mut files = Vec::new();
        for path in paths {
            collect(path, &mut files)?;
        }
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
            sources.push((file, text));
        }
        Pack::from_sources(&sources)
    }

    /// Compiles rule files given as (path, text).
    pub fn from_sources(sources: &[(PathBuf, String)]) -> Result<Pack, Error> {
        let mut problems = Vec::new();
        let mut rules: Vec<(PathBuf, Rule)> = Vec::new();
        let mut pack = Pack::default();
        for (file, text) in sources {
            let problem = |p: Problem| FileProblem {
                file: file.clone(),
                line: p.line,
                message: p.message,
            };
            let docs = match parse_documents(text) {
                Ok(docs) => docs,
                Err(p) => {
                    problems.push(problem(p));
                    continue;
                }
            };
            let mut detectors = Vec::new();
            // An empty document (a file ending in `---`) holds no rule.
            for doc in docs.iter().filter(|doc| !doc.is_null()) {
                match rule::compile(doc) {
                    Ok(rule) => {
                        detectors.push(rule.meta().detector.clone());
                        rules.push((file.clone(), rule));
                    }
                    Err(p) => problems.push(problem(p)),
                }
            }
            pack.files.push((file.clone(), detectors));
        }
        // Names and ids a correlation may refer to, and detectors that must be unique.
        let mut by_reference: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashMap<&str, &Path> = HashMap::new();
        let mut detection_at = 0;
        for (file, rule) in &rules {
            let meta = rule.meta();
            if let Some(first) = seen.insert(&meta.detector, file) {
                problems.push(FileProblem {
                    file: file.clone(),
                    line: meta.line,
                    message: format!(
                        "`{}` is also the name or id of a rule in {}",
                        meta.detector,
                        first.display()
                    ),
                });
            }
            if let Rule::Detection(_) = rule {
                by_reference.insert(&meta.id, detection_at);
                if let Some(name) = &meta.name {
                    by_reference.insert(name, detection_at);
                }
                detection_at += 1;
            }
        }
        let mut feeds = vec![Vec::new(); detection_at];
        let mut generates = vec![true; detection_at];
        // Per correlation, the detection rules it correlates, in its order.
        let mut correlated: Vec<Vec<usize>> = Vec::new();
        let mut correlation_at = 0;
        for (file, rule) in &rules {
            let Rule::Correlation(correlation) = rule else {
                continue;
            };
            correlated.push(Vec::new());
            for (position, (line, reference)) in correlation.rules.iter().enumerate() {
                match by_reference.get(reference.as_str()) {
                    Some(&at) => {
                        feeds[at].push((correlation_at, position));
                        generates[at] &= correlation.generate;
                        correlated[correlation_at].push(at);
                    }
                    None => problems.push(FileProblem {
                        file: file.clone(),
                        line: *line,
                        message: format!("the correlation refers to `{reference}`, which is no detection rule's name or id"),
                    }),
                }
            }
            correlation_at += 1;
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        for (_, rule) in rules {
            match rule {
                Rule::Detection(rule) => pack.detections.push(rule),
                Rule::Correlation(rule) => pack.correlations.push(rule),
            }
        }
        for (at, rule) in pack.detections.iter().enumerate() {
            let outcomes = rule.required_outcomes();
            let pinned = PINNED
                .iter()
                .find_map(|field| Some((field, rule.required_pins(field)?)));
            for kind in ALL_KINDS {
                if rule.kind.is_some_and(|only| only != kind) {
                    continue;
                }
                for outcome in ALL_OUTCOMES {
                    let may_match = match (&outcomes, outcome) {
                        (None, _) => true,
                        (Some(required), Some(outcome)) => required.contains(&outcome),
                        // An event without an outcome fails every `outcome:` equality.
                        (Some(_), None) => false,
                    };
                    if may_match {
                        let bucket = &mut pack.by_kind[kind_index(kind)][outcome_index(outcome)];
                        bucket.add(
                            at,
                            pinned
                                .as_ref()
                                .map(|(field, values)| (*field, values.as_slice())),
                        );
                    }
                }
            }
        }
        // Tests written alike in several places run once per event.
        let mut written: HashMap<String, usize> = HashMap::new();
        for rule in &mut pack.detections {
            for test in rule.tests_mut() {
                *written.entry(test.signature().to_owned()).or_default() += 1;
            }
        }
        let mut slots: HashMap<String, u32> = HashMap::new();
        for rule in &mut pack.detections {
            for test in rule.tests_mut() {
                if written[test.signature()] < 2 {
                    continue;
                }
                let next = u32::try_from(slots.len()).expect("fewer than 2^32 tests");
                let slot = *slots.entry(test.signature().to_owned()).or_insert(next);
                test.set_slot(slot);
            }
        }
        pack.shared_tests = slots.len();
        pack.shares = (0..pack.correlations.len())
            .map(|at| {
                let same = |other: usize| {
                    let (a, b) = (&pack.correlations[at], &pack.correlations[other]);
                    correlated[at] == correlated[other]
                        && a.kind == b.kind
                        && a.group_by == b.group_by
                        && a.timespan == b.timespan
                        && a.bounds == b.bounds
                        && a.value_field == b.value_field
                };
                (0..at).find(|&other| same(other)).unwrap_or(at)
            })
            .collect();
        pack.feeds = feeds;
        pack.generates = generates;
        Ok(pack)
    }

    /// The lake columns the pack's rules read: the fields their selections test, a
    /// `logsource.service`, correlations' `group-by` and counted fields (an attribute's
    /// column is `attributes`). A replay for the pack alone need not read the others.
    pub fn columns(&self) -> BTreeSet<&str> {
        let detections = self.detections.iter().flat_map(|rule| rule.columns());
        let correlations = self.correlations.iter().flat_map(|rule| {
            rule.group_by
                .iter()
                .chain(&rule.value_field)
                .map(Field::column)
        });
        detections.chain(correlations).collect()
    }

    /// Appends to `rules` the detection rules `event` may match (of its kind and
    /// outcome, and with a prefix of a pinned field's value they require), in the
    /// pack's order.
    pub fn candidates(&self, event: &Event<'_>, rules: &mut Vec<u32>) {
        let bucket = &self.by_kind[kind_index(event.kind)][outcome_index(event.outcome)];
        rules.extend_from_slice(&bucket.always);
        let mut added = false;
        for (field, by_pin) in &bucket.pinned {
            let Some(value) = field.text(event) else {
                continue;
            };
            with_lowercase(value, |lower| {
                if let Some(found) = by_pin.values.get(lower) {
                    rules.extend_from_slice(found);
                    added = true;
                }
                for &len in &by_pin.prefix_lengths {
                    let Some(prefix) = lower.get(..len) else {
                        break;
                    };
                    // Bytes equal to a whole (UTF-8) prefix end on a character boundary.
                    if let Some(found) = by_pin.prefixes.get(prefix) {
                        rules.extend_from_slice(found);
                        added = true;
                    }
                }
            });
        }
        if added {
            rules.sort_unstable();
            // A rule requiring a value and one of its prefixes is found twice.
            rules.dedup();
        }
    }
}

/// Single-valued text fields the rule index keys on, in order of preference: a rule
/// whose condition requires one of a few values or prefixes of one of them
/// (`target_service: billing-admin`, `principal|startswith: 'svc:ci-'`) is tried only
/// on events whose value has one. Fields of few values (`auth_method`, `service`,
/// `principal_type`) come last: keyed on them, a rule is still tried on many events.
/// `outcome` has its own level of the index (with the kind).
const PINNED: [Field; 7] = [
    Field::TargetService,
    Field::Action,
    Field::ClientId,
    Field::Principal,
    Field::AuthMethod,
    Field::Service,
    Field::PrincipalType,
];

/// The detection rules of one kind and outcome: the ones tried on every event, and the
/// ones tried only on events whose pinned field has a value or prefix they require.
#[derive(Debug, Default)]
struct Bucket {
    always: Vec<u32>,
    /// Per pinned field, the rules by what they require of it.
    pinned: Vec<(Field, ByPin)>,
}

/// Rules by a value (lowercase) of a pinned field they require, or a prefix of it;
/// looked up for every event, so hashed a word at a time rather than with SipHash (the
/// keys are the rules' own), and by bytes (an event's lowercased value needs no UTF-8
/// check).
#[derive(Debug, Default)]
struct ByPin {
    values: TextMap<Box<[u8]>, Vec<u32>>,
    prefixes: TextMap<Box<[u8]>, Vec<u32>>,
    /// The prefixes' lengths in bytes, shortest first: an event's value is looked up
    /// once per length.
    prefix_lengths: Vec<usize>,
}

impl Bucket {
    fn add(&mut self, rule: usize, pinned: Option<(&Field, &[Pin])>) {
        let rule = u32::try_from(rule).expect("fewer than 2^32 rules");
        let Some((field, pins)) = pinned else {
            self.always.push(rule);
            return;
        };
        let at = match self.pinned.iter().position(|(known, _)| known == field) {
            Some(at) => at,
            None => {
                self.pinned.push((field.clone(), ByPin::default()));
                self.pinned.len() - 1
            }
        };
        let by_pin = &mut self.pinned[at].1;
        for pin in pins {
            let map = if pin.prefix {
                if let Err(place) = by_pin.prefix_lengths.binary_search(&pin.text.len()) {
                    by_pin.prefix_lengths.insert(place, pin.text.len());
                }
                &mut by_pin.prefixes
            } else {
                &mut by_pin.values
            };
            let rules = map.entry(pin.text.as_bytes().into()).or_default();
            // A rule listing a value twice is still tried once.
            if rules.last() != Some(&rule) {
                rules.push(rule);
            }
        }
    }
}

/// Calls `f` with the bytes of `text` in ASCII lowercase, on the stack when it is short.
fn with_lowercase<R>(text: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 128;
    if text.len() > STACK {
        return f(text.to_ascii_lowercase().as_bytes());
    }
    let mut bytes = [0u8; STACK];
    let lower = &mut bytes[..text.len()];
    lower.copy_from_slice(text.as_bytes());
    lower.make_ascii_lowercase();
    f(lower)
}

const ALL_KINDS: [Kind; 4] = [
    Kind::Authn,
    Kind::TokenIssue,
    Kind::TokenRevoke,
    Kind::Authz,
];

const ALL_OUTCOMES: [Option<Outcome>; 5] = [
    None,
    Some(Outcome::Success),
    Some(Outcome::Failure),
    Some(Outcome::Allow),
    Some(Outcome::Deny),
];

fn outcome_index(outcome: Option<Outcome>) -> usize {
    match outcome {
        None => 0,
        Some(Outcome::Success) => 1,
        Some(Outcome::Failure) => 2,
        Some(Outcome::Allow) => 3,
        Some(Outcome::Deny) => 4,
    }
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Authn => 0,
        Kind::TokenIssue => 1,
        Kind::TokenRevoke => 2,
        Kind::Authz => 3,
    }
}

/// Whether `path` names a rule file (and not a rule file's tests).
pub fn is_rule_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    (name.ends_with(".yml") || name.ends_with(".yaml")) && !name.ends_with(TESTS_SUFFIX)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        // Not following links to directories: a link to a parent would never end.
        let is_dir = entry.file_type().map_err(read_error)?.is_dir();
        let entry = entry.path();
        if is_dir {
            collect(&entry, files)?;
        } else if is_rule_file(&entry) {
            if files.len() >= MAX_FILES {
                return Err(Error::Invalid(vec![FileProblem {
                    file: path.to_owned(),
                    line: 0,
                    message: format!("more than {MAX_FILES} rule files"),
                }]));
            }
            files.push(entry);
        }
    }
    Ok(())
}
