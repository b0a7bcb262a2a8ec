//! Repository-wide checks: every Rust source file starts with a module doc, and every WIT item
//! has a doc comment.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files_with_extension(dir: &Path, extension: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files_with_extension(&path, extension, found);
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["core", "host", "plugins", "tests", "web-demo", "xtask"] {
        files_with_extension(&workspace_root().join(dir), "rs", &mut files);
    }
    assert!(files.len() > 20, "found only {} Rust files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| !fs::read_to_string(path).unwrap().starts_with("//!"))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:?}"
    );
}

#[test]
fn every_wit_item_has_a_doc_comment() {
    let mut files = Vec::new();
    files_with_extension(&workspace_root().join("wit"), "wit", &mut files);
    assert_eq!(
        files.len(),
        6,
        "the current package and version 0.1.0 have three files each"
    );
    let mut undocumented = Vec::new();
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let mut in_use_list = false;
        for (index, line) in lines.iter().enumerate() {
            if line.starts_with("use ") {
                in_use_list = !line.ends_with(';');
                continue;
            }
            if in_use_list {
                in_use_list = !line.ends_with(';');
                continue;
            }
            let is_item = !line.is_empty()
                && !line.starts_with("///")
                && !line.starts_with("package ")
                && !line.starts_with("import ")
                && !line.starts_with("export ")
                && !line.starts_with('}')
                && (line.ends_with('{') || line.ends_with(',') || line.ends_with(';'));
            if is_item && !lines[index - 1].starts_with("///") {
                undocumented.push(format!("{}:{}: {line}", path.display(), index + 1));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "WIT items without a doc comment:\n{}",
        undocumented.join("\n")
    );
}
