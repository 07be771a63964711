"""The :class:`Responder`: every response action for one account, assembled from the action modules."""

from __future__ import annotations

from .incidents import IncidentActions
from .quarantine import QuarantineActions
from .verification import VerificationActions


class Responder(QuarantineActions, IncidentActions, VerificationActions):
    """Runs response actions for one account with one AWS session; safe to use from many threads.

    Each action lives in its own module (:mod:`.quarantine` with :mod:`.isolation`, :mod:`.incidents`,
    :mod:`.verification`); all of them share the paced, counted AWS calls and registry reads of :mod:`.core`.
    """
