"""UCC input helper for iot_defender_violations: validation and streaming delegate to the shared input runner."""

from __future__ import annotations

from iot_defender_input import run_input, validate_params
from splunklib import modularinput as smi

INPUT = "iot_defender_violations"


def validate_input(definition: smi.ValidationDefinition) -> None:
    validate_params(INPUT, definition.parameters)


def stream_events(inputs: smi.InputDefinition, event_writer: smi.EventWriter) -> None:
    run_input(INPUT, inputs, event_writer)
