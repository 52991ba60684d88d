"""The sandbox AWS: moto's server on loopback, for `make run`, demos, the tests and the benches, in one place.

- strict.py: the strict layer (AWS's rules where moto is lenient) around moto's application, and its server;
- controller.py: a sandbox server started as a process of its own, reset, configured, and read as its
  administrator (the tests' and the benches' way in);
- proxy.py: a loopback proxy in front of a sandbox that adds latency, holds or refuses calls, or is down;
- state.py: `make run`'s sandbox, whose state is saved when it stops and restored when it starts.

Never imported by `provisioning` or `portal` (an import-linter contract in pyproject.toml says so), and not in
the production image: moto comes from requirements-sandbox.txt, which only `make run`, `make test` and the
Dockerfile's `sandbox` target install.
"""
