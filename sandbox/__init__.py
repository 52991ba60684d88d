"""The sandbox AWS: moto's server on loopback, for `make run`, demos, the tests and the benches, in one place.

- strict.py: the strict layer (AWS's rules where moto is lenient) around moto's application, and its server;
- clock.py: the strict layer's clock, which a test advances instead of sleeping out a session's age or a window;
- controller.py: a sandbox server started as a process of its own, reset, configured, and read as its
  administrator (the tests' and the benches' way in);
- proxy.py: a loopback proxy in front of a sandbox that adds latency, holds or refuses calls, or is down;
- state.py: `make run`'s sandbox, whose state is saved when it stops and restored when it starts;
- roles.py: each customer's Onramp role deployed from Onramp's template, as the customer's administrator would
  (`make run` after migrate, or one customer added later).

Never imported by `provisioning` or `portal` (an import-linter contract in pyproject.toml says so), and not in
the production image: moto comes from requirements-sandbox.txt, which only `make run`, `make test` and the
Dockerfile's `sandbox` target install.
"""
