"""Self-tests of the test harness (loopback AWS, splunkd stand-in, fleet simulator, script runner): they prove the
harness behaves like the services it stands in for, so the product tests can trust it. `make selftest` runs them;
the product's own tests live in tests/unit, tests/integration, tests/infra and tests/knowledge."""
