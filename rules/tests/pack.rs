//! The starter pack shipped in `rules/pack` loads without a problem and passes every
//! case of its tests (what `authtrail rules check` and `authtrail rules test` run).

use std::path::PathBuf;

use authtrail_rules::{run_tests, Pack};

fn pack_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pack")
}

#[test]
fn the_starter_pack_checks_and_passes_its_tests() {
    let pack = Pack::load(&[pack_dir()]).unwrap_or_else(|error| panic!("{error}"));
    let alerting = pack
        .generates
        .iter()
        .filter(|generates| **generates)
        .count()
        + pack.correlations.len();
    assert!(alerting >= 15, "{alerting} alerting rules");
    let results = run_tests(&[pack_dir()]).unwrap();
    let failed: Vec<String> = results
        .iter()
        .filter(|result| !result.passed)
        .map(|result| {
            format!(
                "{}: {}: {}",
                result.file.display(),
                result.name,
                result.detail
            )
        })
        .collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    // Every rule file has tests, each with a case that must raise and one that must not.
    assert!(results.len() >= 2 * pack.files.len());
}
