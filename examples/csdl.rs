//! Prints the `$metadata` CSDL document of the built-in catalog, for offline validation:
//! `cargo run --example csdl [-- --annotations] > metadata.xml && scripts/validate-csdl.sh metadata.xml`.

fn main() {
    let annotations = std::env::args().any(|a| a == "--annotations");
    let catalog = smsctx::metadata::Catalog::builtin().expect("the built-in pages import");
    print!("{}", smsctx::schema::csdl(&catalog, annotations));
}
