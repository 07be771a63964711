"""REST handler for the account tab: validates credentials with AWS before an account is saved."""

from __future__ import annotations
