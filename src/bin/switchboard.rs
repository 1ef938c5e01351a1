//! The Switchboard server binary. It only wires things up: config, engine, serve.

fn main() {
    match switchboard::config::Config::load(None) {
        Ok(cfg) => println!("switchboard: config ok, would listen on {}", cfg.server.listen),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
