"""UCC input helper for iot_defender_inventory: validation and streaming delegate to the shared input runner."""

from __future__ import annotations

from splunklib import modularinput as smi

from iot_defender_input import run_input, validate_params

INPUT = "iot_defender_inventory"


def validate_input(definition: smi.ValidationDefinition) -> None:
    validate_params(INPUT, definition.parameters)


def stream_events(inputs: smi.InputDefinition, event_writer: smi.EventWriter) -> None:
    run_input(INPUT, inputs, event_writer)
