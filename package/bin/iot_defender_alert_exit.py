"""The exit code of an alert-action run (what splunkd logs and a SOC automation reads), worst first:

==== =====================================================================================================
0    every row done, already in state, or planned (dry run)
3    run refused: a parameter, the account configuration or a protected group is unusable (nothing was done)
4    run refused: more things than max_things (nothing was done)
5    some rows done with a warning (e.g. the quarantine record could not be stored), none refused, in
     conflict or failed; the message says what a human must check
6    some rows refused (invalid input, protected thing, or a group / policy the add-on does not own:
     ``refused-not-owned``), none failed
7    some rows failed (AWS error after retries); the log names each one and its error code
8    run refused: the user who triggered it lacks the capability ``iot_defender_respond``
9    some rows lost a race (``conflict``), none failed or refused: another run was quarantining or releasing
     the same thing, and this run wrote nothing for it
==== =====================================================================================================

Why a code of its own for ``conflict``: it is neither a failure (nothing is broken, nothing was half-done: the
loser wrote nothing, and the other run's own event says how the thing ended) nor a refusal (the same request can
succeed later). It is the one outcome where the right automated reaction is "look at the other run, then retry
if still needed", so an automation must be able to tell it apart without parsing messages. It ranks below
failures and refusals: a run with a failed or refused row needs a human whatever its conflicts, and retrying it
whole would repeat the refusal.
"""

from __future__ import annotations

from typing import Sequence

from iot_defender.events import ActionResult

EXIT_OK = 0
EXIT_CONFIG = 3
EXIT_LIMIT = 4
EXIT_WARNING = 5
EXIT_REFUSED = 6
EXIT_FAILED = 7
EXIT_FORBIDDEN = 8
EXIT_CONFLICT = 9

ROW_REFUSALS = frozenset({"refused-invalid", "refused-protected", "refused-not-owned"})


def exit_code(results: Sequence[ActionResult]) -> int:
    """The run's exit code from its rows' outcomes (the table above; run-level refusals are decided earlier)."""
    outcomes = {r.outcome for r in results}
    if "failed" in outcomes:
        return EXIT_FAILED
    if outcomes & ROW_REFUSALS:
        return EXIT_REFUSED
    if "conflict" in outcomes:
        return EXIT_CONFLICT
    if "warning" in outcomes:
        return EXIT_WARNING
    return EXIT_OK
