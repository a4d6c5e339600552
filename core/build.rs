//! Rebuilds the core when a migration is added or changed: `sqlx::migrate!` embeds the
//! files of `migrations/`, and the compiler does not watch that directory by itself.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
