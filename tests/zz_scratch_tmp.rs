#[test]
fn t() {
    for text in [
        "[queue]\nmin_free_bytes = 0\nmin_free_bytes = 18446744073709551615\n",
        "[queue]\nmin_free_bytes = 18446744073709551615\n",
        "[queue]\nmin_free_bytes = 9223372036854775807\n",
        "[server]\nshutdown_grace = \"300ms\"\nshutdown_grace = \"2s\"\n",
    ] {
        println!("{text:?} => {:?}", sluice::config::Config::parse(text).map(|c| (c.queue.min_free_bytes, c.server.shutdown_grace)));
    }
}
