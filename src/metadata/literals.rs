//! The check behind "no module names a column": outside `src/metadata/` (and outside test
//! code), no string literal in `src/` is exactly the name of a table, an entity set or a column
//! of the catalog. Code asks the [`Catalog`] or uses the constants of `metadata::system` and
//! `metadata::sms`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Catalog;

/// The literals allowed where they are not the catalog's names: (path prefix, literal, why).
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "src/edge/mod.rs",
        "annotations",
        "the `$metadata?annotations=true` query option, not the notes' entity set",
    ),
    (
        "src/edge/options.rs",
        "annotations",
        "the `$metadata?annotations=true` query option, not the notes' entity set",
    ),
    (
        "src/schema/messages.rs",
        "name",
        "the `name` property of the served `sdkmessage` catalog, which is not a catalog table",
    ),
    (
        "src/edge/mod.rs",
        "name",
        "the service document's `name` member (OData JSON format), not a column",
    ),
    (
        "src/cli.rs",
        "name",
        "the `smsctx dev-cert --name` command-line flag, not a column",
    ),
    (
        "src/edge/error.rs",
        "message",
        "the `message` member of Dataverse's error object (`{\"error\":{\"code\",\"message\"}}`), not a column",
    ),
    (
        "src/channels/outbound.rs",
        "message",
        "TeleSign's SMS API form field `message`, not a column",
    ),
    (
        "src/execute/sms.rs",
        "message",
        "the `message` member of a provider's JSON answer, not a column",
    ),
    (
        "src/query/fetchxml",
        "name",
        "FetchXML's `name` XML attribute (<entity name=...>, <attribute name=...>), not a column",
    ),
];

/// Every table, entity set and column name of the catalog the store holds.
fn catalog_names() -> BTreeSet<String> {
    let catalog = Catalog::with_channels().expect("the catalog loads");
    let mut names = BTreeSet::new();
    for entity in catalog.entities() {
        names.insert(entity.logical_name.clone());
        names.insert(entity.entity_set_name.clone());
        for attribute in &entity.attributes {
            names.insert(attribute.logical_name.clone());
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test code: a `tests.rs` file is all test code, and a file's
/// `#[cfg(test)]` module is its last item.
fn code_outside_tests(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// The `"identifier"` literals of some code, with their line numbers (comment lines skipped).
fn identifier_literals(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (number, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let bytes = line.as_bytes();
        for (start, _) in line.match_indices('"') {
            let rest = &line[start + 1..];
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            if len > 0 && bytes.get(start + 1 + len) == Some(&b'"') {
                out.push((number + 1, &rest[..len]));
            }
        }
    }
    out
}

/// The literals of `src/` that name the catalog, as `path:line "name"`.
fn offending_literals(root: &Path) -> Vec<String> {
    let names = catalog_names();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for path in files {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        if relative.starts_with("src/metadata/") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file is readable");
        for (line, literal) in identifier_literals(&code_outside_tests(&path, &text)) {
            let allowed = ALLOWED
                .iter()
                .any(|(prefix, name, _)| relative.starts_with(prefix) && *name == literal);
            if names.contains(literal) && !allowed {
                found.push(format!("{relative}:{line} \"{literal}\""));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_module_outside_metadata_names_a_table_or_a_column() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = offending_literals(root);
        assert!(
            found.is_empty(),
            "name these through the Catalog or a constant of src/metadata/ \
             (or allow them in src/metadata/literals.rs with a reason):\n{}",
            found.join("\n")
        );
    }

    #[test]
    fn the_scan_finds_names_and_skips_test_code() {
        let code = r#"let a = record.get("versionnumber"); let b = "not a column";
            format!("{x}"); call("ownerid", "x")
            /// A doc comment naming "ownerid"."#;
        let literals: Vec<&str> = identifier_literals(code)
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(literals, vec!["versionnumber", "ownerid", "x"]);
        let file = "fn f() { g(\"name\") }\n#[cfg(test)]\nmod tests { \"ownerid\" }";
        let code = code_outside_tests(Path::new("src/x.rs"), file);
        assert_eq!(identifier_literals(&code), vec![(1, "name")]);
        assert_eq!(code_outside_tests(Path::new("src/x/tests.rs"), file), "");
        let names = catalog_names();
        for name in [
            "versionnumber",
            "ownerid",
            "domainname",
            "smsctx_smschannels",
            "name",
        ] {
            assert!(names.contains(name), "{name}");
        }
    }
}
