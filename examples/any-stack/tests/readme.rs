//! The README's "Test your own services" shows this example's files; this
//! keeps the two from drifting apart (comments and blank lines aside).

use std::path::Path;

fn read(path: &str) -> String {
    let at = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&at).unwrap_or_else(|e| panic!("reading {}: {e}", at.display()))
}

/// The section of the README about testing your own services.
fn section() -> String {
    let readme = read("../../README.md");
    let start = readme
        .find("## Test your own services")
        .expect("the README has the section");
    let rest = &readme[start + 2..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// The code block that follows `heading` in the section.
fn block_after(section: &str, heading: &str) -> String {
    let after = &section[section
        .find(heading)
        .unwrap_or_else(|| panic!("{heading:?} in the README"))..];
    let open = after.find("```").expect("a code block");
    let body = &after[open..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    body[..body.find("```").expect("a closing fence")].to_owned()
}

/// Lines without comments (`comment` to the end of the line) and blank lines.
fn essence(text: &str, comment: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(comment).next().unwrap_or_default().trim_end().to_owned())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn the_readme_shows_the_example_as_it_is() {
    let section = section();
    for (heading, file, comment) in [
        ("**2. `stack.toml`**", "stack.toml", "#"),
        ("**3. `gateway.toml`**", "gateway.toml", "#"),
        ("`tests/world/mod.rs`:", "tests/world/mod.rs", "//"),
        ("`tests/stack.rs`:", "tests/stack.rs", "//"),
    ] {
        let shown = essence(&block_after(&section, heading), comment);
        let real = essence(&read(file), comment);
        assert_eq!(
            shown, real,
            "the README's {file} differs from examples/any-stack/{file}"
        );
    }
}
