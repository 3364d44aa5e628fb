//! The domain crate's promise: it depends on nothing that does I/O or speaks a wire protocol.
//! Its dependencies are read from its own manifest, so adding one of these fails here.

const FORBIDDEN: &[&str] = &[
    "tonic",
    "prost",
    "sqlx",
    "object_store",
    "reqwest",
    "hyper",
    "tokio",
    "axum",
    "lettre",
];

#[test]
fn the_domain_depends_on_no_io_crate() {
    let manifest: toml::Table = include_str!("../Cargo.toml")
        .parse()
        .expect("manifest parses");
    let deps = manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .expect("a [dependencies] table");
    assert!(
        deps.contains_key("rust_decimal"),
        "the check reads the right table"
    );
    for name in deps.keys() {
        assert!(
            !FORBIDDEN
                .iter()
                .any(|f| name == f || name.starts_with(&format!("{f}-"))),
            "fapiao-invoice must not depend on {name}"
        );
    }
}
