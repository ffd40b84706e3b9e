//! `uniffi-bindgen` built from this crate's uniffi version (see generate.sh).
fn main() {
    uniffi::uniffi_bindgen_main()
}
