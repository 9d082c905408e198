//! Every file in examples/ checks clean, is formatted, and means the same
//! thing in both forms: `.topsail` -> YAML -> `.topsail` gives the same model.

use std::path::Path;

use topsail::check::check_source;
use topsail::source::Format;

use crate::common::{Test, examples, repo};

fn model_of(path: &Path, text: String) -> serde_json::Value {
    let checked = check_source(
        &path.display().to_string(),
        Some(path.to_path_buf()),
        text,
        Format::of_path(path),
    );
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.render(&checked.sources, false, 100))
        .collect();
    assert!(
        errors.is_empty(),
        "{}: {}",
        path.display(),
        errors.join("\n")
    );
    checked
        .pipeline
        .expect("no errors means a pipeline")
        .to_canonical_json()
}

#[test]
fn every_example_checks_clean_without_warnings() {
    for file in examples() {
        Test::new()
            .current_dir(repo())
            .args(&["check", "--deny-warnings"])
            .arg(&file)
            .status(0)
            .run();
    }
}

#[test]
fn every_topsail_example_is_formatted() {
    for file in examples() {
        if Format::of_path(&file) != Format::Topsail {
            continue;
        }
        Test::new()
            .current_dir(repo())
            .args(&["fmt", "--check"])
            .arg(&file)
            .stdout("")
            .stderr("")
            .status(0)
            .run();
    }
}

#[test]
fn converting_to_the_other_form_and_back_keeps_the_model() {
    for file in examples() {
        let original = model_of(&file, std::fs::read_to_string(&file).expect("read example"));
        let (there, back) = match Format::of_path(&file) {
            Format::Topsail => ("yaml", "topsail"),
            Format::Yaml => ("topsail", "yaml"),
        };
        // Convert inside the examples dir so relative imports still resolve.
        let t = Test::new();
        let mid = t.path(&format!("converted.{there}"));
        let t = t
            .current_dir(repo())
            .args(&["convert", "--to", there, "--out"])
            .arg(&mid)
            .arg(&file)
            .status(0);
        t.run();
        let mid_text = std::fs::read_to_string(&mid).expect("converted file");
        let mid_path = file.with_extension(format!("converted.{there}"));
        assert_eq!(
            original,
            model_of(&mid_path, mid_text),
            "{} changed meaning when converted to {there}",
            file.display()
        );
        let end = t.path(&format!("back.{back}"));
        // The next command of the session, in the same place.
        let t = t
            .next()
            .args(&["convert", "--to", back, "--out"])
            .arg(&end)
            .arg(&mid)
            .status(0);
        t.run();
        let end_path = file.with_extension(format!("back.{back}"));
        let end_text = std::fs::read_to_string(&end).expect("converted back");
        assert_eq!(
            original,
            model_of(&end_path, end_text),
            "{} changed meaning after a round trip",
            file.display()
        );
    }
}

#[test]
fn the_yaml_example_is_the_topsail_example() {
    let dir = repo().join("examples");
    let a = dir.join("data-job.topsail");
    let b = dir.join("data-job.yaml");
    assert_eq!(
        model_of(&a, std::fs::read_to_string(&a).expect("read")),
        model_of(&b, std::fs::read_to_string(&b).expect("read")),
    );
}
