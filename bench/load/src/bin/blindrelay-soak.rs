//! `blindrelay-soak`: the soak test (blindrelay_load::soak); `--help` for its flags.

fn main() {
    std::process::exit(blindrelay_load::soak::main());
}
