//! `coremq-bench`: thin main; everything lives in `coremq::bench`.
fn main() {
    std::process::exit(coremq::bench::main(std::env::args().skip(1).collect()));
}
