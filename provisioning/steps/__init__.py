"""What every kind's AWS code shares: what a step gets and returns (base), reading an account back (reading),
and the kinds' functions found in their folders (tables). The kinds themselves are in provisioning/kinds/.
The plan never imports this package, so it reaches no AWS code."""
