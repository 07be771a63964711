"""UCC input helper for iot_defender_violations: a thin adapter over the iot_defender library."""

from __future__ import annotations

from splunklib import modularinput as smi


def validate_input(definition: smi.ValidationDefinition) -> None:
    return None


def stream_events(inputs: smi.InputDefinition, event_writer: smi.EventWriter) -> None:
    return None
