//! `conformance_tests!`: the suite's tests a backend's test file declares in one line.

/// The two tests every backend's conformance file holds, written once: `passes_the_conformance_suite`
/// ([`run_all`](crate::conformance::run_all)) and `outage_is_unreachable_then_recovers` (the error within
/// `outage_bound`).
///
/// `harness` names a `fn(&Path) -> Option<H>` where `H:` [`Harness`](crate::conformance::Harness): it starts the backend's server in the test's
/// temporary directory, or returns `None` to skip (a server binary that is not installed outside CI, the rule of
/// `testing::or_skip`). The calling crate needs `tokio` (macros, multi-thread runtime) and `tempfile` among its
/// dev-dependencies. Invoke it once per module; a backend with two APIs puts each in its own module.
#[macro_export]
macro_rules! conformance_tests {
    (backend: $backend:expr, harness: $harness:path, outage_bound: $bound:expr $(,)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn passes_the_conformance_suite() {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let Some(h) = $harness(dir.path()) else {
                return;
            };
            let start = std::time::Instant::now();
            if let Err(e) = $crate::conformance::run_all(&h).await {
                panic!("{} fails the conformance suite: {e}", $backend);
            }
            eprintln!("{} conformance suite: {:?}", $backend, start.elapsed());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn outage_is_unreachable_then_recovers() {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let Some(h) = $harness(dir.path()) else {
                return;
            };
            if let Err(e) =
                $crate::conformance::outage_is_unreachable_then_recovers(&h, $bound).await
            {
                panic!("{}: {e}", $backend);
            }
        }
    };
}
