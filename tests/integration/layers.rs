//! The layer rule of ARCHITECTURE.md ("Architecture invariant: layers"),
//! checked against the code: every `crate::…` path in `src/` (outside
//! comments) must point to a module on the same line of the list or below
//! it, no two modules may import each other, the bottom line imports
//! nothing else of exsec, and every module under `src/` must be listed.
//! The list is read from ARCHITECTURE.md itself, so the document and the
//! code cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports that break the rule today, each with why; the test fails when
/// one is no longer needed, so the list only shrinks.
const EXCEPTIONS: &[(&str, &str, &str)] = &[(
    "store",
    "resolve",
    "store::secrets refuses a write that makes an effective set too large with resolve::merge",
)];

/// An import of `to` by module `from`, first seen at `at` (`path:line`).
type Imports = BTreeMap<(String, String), String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers of ARCHITECTURE.md, top first; each a set of module names.
fn layers() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split_once("## Architecture invariant: layers")
        .expect("ARCHITECTURE.md has the layer section")
        .1;
    let block = section
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the layer section has a ```text block")
        .0;
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            // Names, then at least two spaces, then what the line is for.
            let names = line.split("  ").next().unwrap_or_default();
            names.split_whitespace().map(str::to_owned).collect()
        })
        .collect()
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for lib.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The modules a line of code names through `crate::` (`crate::a::…` and
/// `crate::{a, b::…}`).
fn crate_paths(line: &str) -> Vec<String> {
    let identifier = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = Vec::new();
    for (_, rest) in line
        .match_indices("crate::")
        .map(|(i, _)| ((), &line[i + 7..]))
    {
        if let Some(group) = rest.strip_prefix('{') {
            let inside = group.split('}').next().unwrap_or_default();
            names.extend(inside.split(',').map(|item| identifier(item.trim())));
        } else {
            names.push(identifier(rest));
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// Every `(module, imported module)` of `src/`, with where it is first seen.
fn imports() -> Imports {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found = Imports::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for target in crate_paths(code) {
                if target != module {
                    let at = format!(
                        "{}:{}",
                        file.strip_prefix(root()).unwrap().display(),
                        number + 1
                    );
                    found.entry((module.clone(), target)).or_insert(at);
                }
            }
        }
    }
    found
}

/// Every top-level module under `src/`.
fn modules() -> BTreeSet<String> {
    let src = root().join("src");
    std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|entry| module_of(&src, &entry.unwrap().path()))
        .collect()
}

/// What breaks the rule, one sentence each; empty when the code keeps it.
fn violations(
    layers: &[Vec<String>],
    imports: &Imports,
    modules: &BTreeSet<String>,
) -> Vec<String> {
    let height = layers.len();
    // Line 0 is the bottom.
    let level: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (n.as_str(), height - 1 - i)))
        .collect();
    let excepted = |from: &str, to: &str| {
        EXCEPTIONS
            .iter()
            .any(|(a, b, _)| (*a == from && *b == to) || (*a == to && *b == from))
    };
    let mut problems = Vec::new();
    for module in modules {
        if !level.contains_key(module.as_str()) {
            problems.push(format!(
                "src/{module} is not in ARCHITECTURE.md's layer list: place it"
            ));
        }
    }
    for name in level.keys() {
        if !modules.contains(*name) {
            problems.push(format!(
                "ARCHITECTURE.md lists `{name}`, which is not a module of src/"
            ));
        }
    }
    for ((from, to), at) in imports {
        let (Some(&below), Some(&above)) = (level.get(from.as_str()), level.get(to.as_str()))
        else {
            continue;
        };
        if below == 0 {
            problems.push(format!(
                "{at}: `{from}` is a bottom-line helper and must import nothing of exsec, but uses `{to}`"
            ));
        } else if above > below && !excepted(from, to) {
            problems.push(format!("{at}: `{from}` imports `{to}`, a layer above it"));
        } else if above == below
            && from < to
            && let Some(back) = imports.get(&(to.clone(), from.clone()))
            && !excepted(from, to)
        {
            problems.push(format!(
                "{at}: `{from}` imports `{to}` and {back}: `{to}` imports `{from}` (a cycle)"
            ));
        }
    }
    for (from, to, why) in EXCEPTIONS {
        if !imports.contains_key(&((*from).to_owned(), (*to).to_owned())) {
            problems.push(format!(
                "the exception `{from}` → `{to}` ({why}) is no longer needed: remove it"
            ));
        }
    }
    problems
}

#[test]
fn imports_point_down_the_layers_of_architecture_md() {
    let problems = violations(&layers(), &imports(), &modules());
    assert!(
        problems.is_empty(),
        "layer rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import_a_cycle_and_an_unplaced_module() {
    let layers = vec![
        vec!["api".to_owned()],
        vec!["keywatch".to_owned(), "rotation".to_owned()],
        vec!["store".to_owned(), "resolve".to_owned()],
        vec!["error_chain".to_owned()],
    ];
    let modules: BTreeSet<String> = [
        "api",
        "keywatch",
        "rotation",
        "store",
        "resolve",
        "error_chain",
        "extra",
    ]
    .map(str::to_owned)
    .into();
    let mut imports = Imports::new();
    let mut add = |from: &str, to: &str| {
        imports.insert((from.to_owned(), to.to_owned()), format!("src/{from}.rs:1"));
    };
    add("store", "api");
    add("keywatch", "rotation");
    add("rotation", "keywatch");
    add("error_chain", "store");
    add("store", "resolve");
    add("api", "store");
    let problems = violations(&layers, &imports, &modules).join("\n");
    assert!(
        problems.contains("`store` imports `api`, a layer above it"),
        "{problems}"
    );
    assert!(problems.contains("(a cycle)"), "{problems}");
    assert!(problems.contains("bottom-line helper"), "{problems}");
    assert!(problems.contains("src/extra is not in"), "{problems}");
    assert!(!problems.contains("`api` imports"), "{problems}");
}

#[test]
fn crate_paths_reads_plain_and_grouped_imports() {
    assert_eq!(crate_paths("use crate::api::Reply;"), ["api"]);
    assert_eq!(
        crate_paths("use crate::{model::KeyId, store};"),
        ["model", "store"]
    );
    assert_eq!(
        crate_paths("x = crate::error_chain::chain(&e); crate::store::Store::open()"),
        ["error_chain", "store"]
    );
}
