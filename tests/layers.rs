//! grant-sharding's layering (README "Workspace", ../shared/DESIGN.md): each module imports only
//! the layers below it. Checked on the source: no code line (comments left out) of a lower layer
//! names a module of a higher one.

use std::path::Path;

/// `(files of a layer, modules they must not name)`.
const RULES: &[(&[&str], &[&str])] = &[
    // L0 resolve: pure key -> shard.
    (
        &["resolve"],
        &[
            "cluster",
            "placement",
            "router",
            "crud",
            "query",
            "select",
            "txn",
            "reshard",
        ],
    ),
    // L1 topology.
    (
        &[
            "cluster.rs",
            "health.rs",
            "observe.rs",
            "extensions.rs",
            "parking.rs",
        ],
        &[
            "placement",
            "router",
            "crud",
            "query",
            "select",
            "schema",
            "txn",
            "reshard",
            "saga",
            "ids",
        ],
    ),
    // L2 placement.
    (
        &["placement", "router.rs", "context.rs"],
        &[
            "crud", "query", "select", "schema", "txn", "reshard", "saga", "ids",
        ],
    ),
    // L3 execution.
    (
        &["exec.rs", "merge.rs", "stmt.rs"],
        &[
            "crud", "query", "select", "schema", "txn", "reshard", "saga", "ids",
        ],
    ),
    // L4 operations.
    (
        &[
            "crud.rs",
            "query.rs",
            "select.rs",
            "schema.rs",
            "distribution.rs",
            "relations.rs",
        ],
        &["txn", "reshard", "saga", "ids"],
    ),
];

fn files(root: &Path, entry: &str) -> Vec<std::path::PathBuf> {
    let path = root.join(entry);
    if path.is_dir() {
        let mut out: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .collect();
        out.sort();
        out
    } else {
        vec![path]
    }
}

#[test]
fn lower_layers_never_name_higher_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("grant-sharding/src");
    let mut broken = Vec::new();
    for (entries, forbidden) in RULES {
        for entry in *entries {
            for file in files(&root, entry) {
                let text = std::fs::read_to_string(&file).unwrap();
                // Unit tests may reach anywhere.
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
                for (n, line) in code.lines().enumerate() {
                    let line = line.split("//").next().unwrap_or("");
                    for module in *forbidden {
                        if line.contains(&format!("crate::{module}"))
                            || line.contains(&format!("crate::{{{module}"))
                        {
                            broken.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layers:\n{}",
        broken.join("\n")
    );
}
