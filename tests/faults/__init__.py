"""The fault and attack suite (issue 7): registry and Git faults, SIGKILL, bad input, security, soak.

Every case runs against the real registry and Git servers of the harness. Long variants (50 kills,
200 soak cycles, bigger fuzz budgets) run with ``IMAGE_UPDATER_TEST_LONG=1``; see docs/reliability.md.
"""
