//! `blindrelay-bench`: the load generator (blindrelay_load::bench); `--help` for its flags.

fn main() {
    std::process::exit(blindrelay_load::bench::main());
}
