"""The commands: each builds a result value (apcheck.results) from its inputs and prints nothing.

check (front-end checks), verify (every back end, verdicts), scenario (one scenario's
exploration), lockorder (lock-order edges and verdicts), ci (the gate), diff (two
versions of a model), explain (a lockdep report against a model). The CLI parses
arguments, calls one of them, and hands the result to a renderer in apcheck.report.
"""
