//! Tidy: the structural rules of the source, checked over its text (rust-analyzer's
//! `xtask/src/tidy.rs` is the model): no module imports from a floor above its own (the layering
//! table is written once, in ARCHITECTURE.md's "Layers", and read here), no comment names a path
//! outside the repository, no glob import outside tests, and the web layer names no route.
//!
//! Every rule has a unit test below that feeds it a violation, so a rule that stopped seeing
//! anything would fail too. Exceptions are listed with their reason, and an exception that is
//! no longer needed fails the test, so the lists only shrink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// (importing module, imported module, why) pairs allowed to point up, each still needed.
const LAYER_EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// Files whose comments may still name a path outside the repository, and why.
const COMMENT_EXCEPTIONS: &[(&str, &str)] = &[];

/// The files of the web layer, which serve whatever routes the router gives them.
const WEB_LAYER: &[&str] = &[
    "src/http/serve.rs",
    "src/http/rate.rs",
    "src/http/auth.rs",
    "src/http/web_config.rs",
    "src/http/source.rs",
    "src/http/tls.rs",
];

/// The exporter's routes, which the web layer must not name.
const ROUTES: &[&str] = &["\"/-/reload\"", "\"/healthz\"", "\"/metrics\""];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The floors of ARCHITECTURE.md's "Layers" table: top-level module → floor (0 at the bottom).
/// `crate` stands for the crate root's own items (lib.rs: the build facts).
fn layers(architecture: &str) -> BTreeMap<String, u32> {
    let mut floors = BTreeMap::new();
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("ARCHITECTURE.md has a \"## Layers\" section");
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(floor) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        for name in cells[2].split('`').skip(1).step_by(2) {
            floors.insert(name.to_owned(), floor);
        }
    }
    assert!(
        !floors.is_empty(),
        "no floor rows in ARCHITECTURE.md's Layers table"
    );
    floors
}

/// The module path of a file under `src/`: `src/http/serve.rs` → `http::serve`,
/// `src/config/mod.rs` → `config`, `src/lib.rs` → `crate`, `src/main.rs` → `main`.
fn module_of(rel_path: &str) -> String {
    let p = rel_path.trim_start_matches("src/").trim_end_matches(".rs");
    match p {
        "lib" => "crate".into(),
        _ => p.trim_end_matches("/mod").replace('/', "::"),
    }
}

/// Whether the file holds only tests (a `tests.rs` or a file under a `tests/` directory of `src/`).
fn is_test_file(rel_path: &str) -> bool {
    rel_path.ends_with("/tests.rs") || rel_path.contains("/tests/")
}

/// The code without comment lines and without `#[cfg(test)] mod … { … }` blocks, each left as
/// an empty line so that line numbers stay the file's.
fn code_outside_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            out.push('\n');
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // An inline test module: skip to its closing brace.
            if let Some(next) = lines.peek() {
                if next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{') {
                    let mut depth = 0i32;
                    out.push('\n');
                    for l in lines.by_ref() {
                        out.push('\n');
                        depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                        if depth <= 0 && l.contains('}') {
                            break;
                        }
                    }
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn ident_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// The modules `code` (of the module `module`) refers to, as paths from the crate root, with
/// the line they are on: `crate::a::b`, `super::x` resolved, and `crate::{a, b}` groups.
fn references(module: &str, code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for (prefix, base) in [
            ("crate::", String::new()),
            ("tencent_live_exporter::", String::new()),
            ("super::", {
                let mut parts: Vec<&str> = module.split("::").collect();
                parts.pop();
                parts.join("::")
            }),
        ] {
            let mut rest = line;
            while let Some(i) = rest.find(prefix) {
                let before = rest[..i].chars().last();
                rest = &rest[i + prefix.len()..];
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let mut names = Vec::new();
                if let Some(group) = rest.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or("");
                    names.extend(group.split(',').map(|s| {
                        let s = s.trim();
                        s[..ident_end(s)].to_owned()
                    }));
                } else {
                    let mut path = Vec::new();
                    let mut r = rest;
                    loop {
                        let end = ident_end(r);
                        if end == 0 {
                            break;
                        }
                        path.push(&r[..end]);
                        match r[end..].strip_prefix("::") {
                            Some(more) => r = more,
                            None => break,
                        }
                    }
                    names.push(path.join("::"));
                }
                for name in names.into_iter().filter(|n| !n.is_empty()) {
                    let full = if base.is_empty() {
                        name
                    } else {
                        format!("{base}::{name}")
                    };
                    out.push((full, n + 1));
                }
            }
        }
    }
    out
}

/// The modules `src/lib.rs` declares (`pub mod x;`, `mod x;`), tests aside.
fn declared_modules() -> Vec<String> {
    read(&root().join("src/lib.rs"))
        .lines()
        .filter_map(|line| {
            let t = line.trim();
            t.strip_prefix("pub mod ")
                .or_else(|| t.strip_prefix("mod "))
        })
        .map(|name| name[..ident_end(name)].to_owned())
        .filter(|name| name != "tests")
        .collect()
}

/// The floor of a module path: its top-level module's row; an item of the crate root
/// (`crate::REVISION`, `crate::rustc_version_number`) is on `crate`'s floor; `None` for a module
/// that no row places.
fn floor_of(floors: &BTreeMap<String, u32>, path: &str) -> Option<u32> {
    let top = path.split("::").next().unwrap_or(path);
    match floors.get(top) {
        Some(floor) => Some(*floor),
        None if declared_modules().iter().any(|m| m == top) => None,
        None => floors.get("crate").copied(),
    }
}

/// Back-imports of one file: `(line, message)`.
fn layer_violations(
    floors: &BTreeMap<String, u32>,
    rel_path: &str,
    text: &str,
) -> Vec<(usize, String)> {
    let module = module_of(rel_path);
    let Some(own) = floor_of(floors, &module) else {
        return vec![(
            1,
            format!("module `{module}` is on no floor of ARCHITECTURE.md's Layers table"),
        )];
    };
    let mut out = Vec::new();
    for (target, line) in references(&module, &code_outside_tests(text)) {
        let top = target.split("::").next().unwrap_or("");
        if top == module.split("::").next().unwrap_or("") {
            continue;
        }
        match floor_of(floors, &target) {
            Some(floor) if floor > own => {
                if !LAYER_EXCEPTIONS
                    .iter()
                    .any(|(from, to, _)| module.starts_with(from) && target.starts_with(to))
                {
                    out.push((
                        line,
                        format!(
                            "`{module}` (floor {own}) imports `{target}` (floor {floor}), a floor above it: \
                             move the item down or the import up (ARCHITECTURE.md, Layers)"
                        ),
                    ));
                }
            }
            Some(_) => {}
            None => out.push((
                line,
                format!("`{target}` is on no floor of ARCHITECTURE.md's Layers table"),
            )),
        }
    }
    out
}

/// Glob imports (`use a::*;`) outside test code: `(line, message)`.
fn glob_imports(text: &str) -> Vec<(usize, String)> {
    code_outside_tests(text)
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            (t.starts_with("use ") || t.starts_with("pub use ") || t.starts_with("pub(crate) use "))
                && (t.contains("::*") || t.contains("{*"))
        })
        .map(|(n, l)| {
            (
                n + 1,
                format!("glob import `{}`: name what is imported", l.trim()),
            )
        })
        .collect()
}

/// Directories of the usual system layout, which comments name as facts (`/etc/…`, `/proc/…`,
/// the TKE token under `/var/run/…`), not as documents.
const SYSTEM_ROOTS: &[&str] = &[
    "etc", "proc", "dev", "var", "run", "usr", "sys", "bin", "sbin", "lib", "opt", "srv",
];

/// Extensions of documents and sources a comment might cite.
const DOCUMENT_EXTENSIONS: &[&str] = &[
    "md", "rs", "txt", "json", "toml", "yml", "yaml", "py", "sh", "html", "pdf", "go", "log",
];

/// Paths in comments that lead outside the repository: an absolute path to a document (not under
/// a system directory), a home directory's file that is not a dotfile default (`~/.tencentcloud`
/// is the SDKs' fact), a file URL, or a relative path that climbs out of the repository.
fn outside_paths(rel_path: &str, text: &str) -> Vec<(usize, String)> {
    let depth = rel_path.matches('/').count();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(at) = line.find("//") else {
            continue;
        };
        let comment = &line[at..];
        if !line[..at].trim().is_empty() && !line[..at].trim_end().ends_with(';') {
            // `//` inside code (a URL in a string), not a comment.
            continue;
        }
        for word in comment.split(|c: char| c.is_whitespace() || "`'\"()[]<>,;".contains(c)) {
            let word = word.trim_end_matches(['.', ':']);
            let bad = if word.starts_with("file://") {
                true
            } else if let Some(home) = word.strip_prefix("~/") {
                !home.starts_with('.') && !home.is_empty()
            } else if word.starts_with('/') && !word.starts_with("//") {
                let parts: Vec<&str> = word[1..].split('/').collect();
                let last = parts.last().copied().unwrap_or("");
                parts.len() >= 2
                    && !SYSTEM_ROOTS.contains(&parts[0])
                    && last.rsplit_once('.').is_some_and(|(stem, ext)| {
                        !stem.is_empty() && DOCUMENT_EXTENSIONS.contains(&ext)
                    })
            } else if word.starts_with("../") {
                word.matches("../").count() > depth
            } else {
                false
            };
            if bad {
                out.push((
                    n + 1,
                    format!(
                        "comment names `{word}`, outside the repository: cite the public source, \
                         or bring the fact into the project's docs"
                    ),
                ));
            }
        }
    }
    out
}

/// Route literals in the web layer's code: `(line, message)`.
fn named_routes(text: &str) -> Vec<(usize, String)> {
    code_outside_tests(text)
        .lines()
        .enumerate()
        .flat_map(|(n, l)| {
            ROUTES.iter().filter(move |r| l.contains(*r)).map(move |r| {
                (
                    n + 1,
                    format!("the web layer names the route {r}: the router's PathRules say it"),
                )
            })
        })
        .collect()
}

fn report(findings: &[(String, usize, String)]) -> String {
    findings
        .iter()
        .map(|(file, line, msg)| format!("{file}:{line}: {msg}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn no_module_imports_from_a_floor_above_its_own() {
    let floors = layers(&read(&root().join("ARCHITECTURE.md")));
    // Every top-level module of the exporter is on a floor.
    for name in declared_modules() {
        assert!(
            floors.contains_key(&name),
            "src/lib.rs declares `{name}`, which ARCHITECTURE.md's Layers table does not place"
        );
    }
    let mut findings = Vec::new();
    let mut used = vec![false; LAYER_EXCEPTIONS.len()];
    for path in rust_files(&root().join("src")) {
        let rel_path = rel(&path);
        if is_test_file(&rel_path) {
            continue;
        }
        let text = read(&path);
        let module = module_of(&rel_path);
        for (target, _) in references(&module, &code_outside_tests(&text)) {
            for (i, (from, to, _)) in LAYER_EXCEPTIONS.iter().enumerate() {
                if module.starts_with(from) && target.starts_with(to) {
                    used[i] = true;
                }
            }
        }
        for (line, msg) in layer_violations(&floors, &rel_path, &text) {
            findings.push((rel_path.clone(), line, msg));
        }
    }
    for (i, (from, to, why)) in LAYER_EXCEPTIONS.iter().enumerate() {
        if !used[i] {
            findings.push((
                "tests/it/tidy.rs".into(),
                0,
                format!("the exception `{from}` -> `{to}` ({why}) is no longer needed: remove it"),
            ));
        }
    }
    assert!(
        findings.is_empty(),
        "imports that run up the floors:\n{}",
        report(&findings)
    );
}

#[test]
fn no_comment_names_a_path_outside_the_repository() {
    let mut findings = Vec::new();
    let mut used = vec![false; COMMENT_EXCEPTIONS.len()];
    let root = root();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples", "simulator", "tc3"] {
        files.extend(rust_files(&root.join(dir)));
    }
    files.push(root.join("build.rs"));
    for path in files {
        let rel_path = rel(&path);
        let found = outside_paths(&rel_path, &read(&path));
        if let Some(i) = COMMENT_EXCEPTIONS.iter().position(|(f, _)| *f == rel_path) {
            used[i] |= !found.is_empty();
            continue;
        }
        findings.extend(found.into_iter().map(|(l, m)| (rel_path.clone(), l, m)));
    }
    for (i, (file, why)) in COMMENT_EXCEPTIONS.iter().enumerate() {
        if !used[i] {
            findings.push((
                "tests/it/tidy.rs".into(),
                0,
                format!("the exception for {file} ({why}) is no longer needed: remove it"),
            ));
        }
    }
    assert!(
        findings.is_empty(),
        "comments that lead outside the repository:\n{}",
        report(&findings)
    );
}

#[test]
fn no_glob_import_outside_tests() {
    let root = root();
    let mut findings = Vec::new();
    let mut files = Vec::new();
    for dir in ["src", "benches", "examples"] {
        files.extend(rust_files(&root.join(dir)));
    }
    files.push(root.join("build.rs"));
    for path in files {
        let rel_path = rel(&path);
        if is_test_file(&rel_path) {
            continue;
        }
        findings.extend(
            glob_imports(&read(&path))
                .into_iter()
                .map(|(l, m)| (rel_path.clone(), l, m)),
        );
    }
    assert!(findings.is_empty(), "glob imports:\n{}", report(&findings));
}

#[test]
fn the_web_layer_names_no_route() {
    let mut findings = Vec::new();
    for file in WEB_LAYER {
        let text = read(&root().join(file));
        findings.extend(
            named_routes(&text)
                .into_iter()
                .map(|(l, m)| ((*file).to_owned(), l, m)),
        );
    }
    assert!(
        findings.is_empty(),
        "routes named by the web layer:\n{}",
        report(&findings)
    );
}

/// Each rule sees what it is there to see: a checker that found nothing in anything would pass
/// the tests above for the wrong reason.
#[test]
fn each_rule_reports_a_planted_violation() {
    let floors = layers(&read(&root().join("ARCHITECTURE.md")));
    let back = layer_violations(
        &floors,
        "src/tencent/models.rs",
        "use crate::domain::Package;\nuse crate::exposition::store::Store;\n",
    );
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].0, 2);
    assert!(
        back[0].1.contains("`tencent::models`") && back[0].1.contains("`exposition::store::Store`"),
        "{back:?}"
    );
    let grouped = layer_violations(&floors, "src/domain.rs", "use crate::{clock, http};\n");
    assert!(
        grouped.len() == 1 && grouped[0].1.contains("`http`"),
        "{grouped:?}"
    );
    let sup = layer_violations(
        &floors,
        "src/config/raw.rs",
        "fn f() { super::super::app::run(); }\n",
    );
    assert!(sup.is_empty(), "super::super is not followed: {sup:?}");
    let in_test = layer_violations(
        &floors,
        "src/domain.rs",
        "#[cfg(test)]\nmod tests {\n    use crate::app::Exporter;\n}\n",
    );
    assert!(in_test.is_empty(), "{in_test:?}");
    assert!(
        layer_violations(
            &floors,
            "src/http/server.rs",
            "use crate::domain::Package;\n"
        )
        .is_empty()
    );
    let mut unplaced_floors = floors.clone();
    unplaced_floors.remove("poll");
    let unplaced = layer_violations(&unplaced_floors, "src/app.rs", "use crate::poll::poller;\n");
    assert!(
        unplaced.len() == 1 && unplaced[0].1.contains("no floor"),
        "{unplaced:?}"
    );

    let outside = outside_paths(
        "src/poll/x.rs",
        "//! See `/shared/notes/api.md` and ../../../elsewhere/x.rs and file:///tmp/a\n\
         /// `~/.tencentcloud/credentials`, `/var/run/secrets/token`, `/proc/PID/status`, `/-/reload`\n\
         // ../mod.rs is inside\n\
         let url = \"http://example/a.md\";\n",
    );
    let words: Vec<&str> = outside
        .iter()
        .map(|(_, m)| m.split('`').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        words,
        [
            "/shared/notes/api.md",
            "../../../elsewhere/x.rs",
            "file:///tmp/a"
        ],
        "{outside:?}"
    );

    let globs = glob_imports(
        "use a::b::*;\npub use raw::*;\nuse c::{d, e};\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    );
    assert_eq!(
        globs.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [1, 2],
        "{globs:?}"
    );

    let routes = named_routes("const P: &str = \"/healthz\";\n// \"/-/reload\" in a comment\n");
    assert_eq!(routes.len(), 1, "{routes:?}");
}
