"""Pure library of TA-aws-iot-defender: AWS calls, checkpoints and event shaping.

Nothing in this package imports splunk*, splunklib or solnlib: the modular inputs, alert actions and the
Firehose transform Lambda are thin adapters around it, so push and pull data share one event model.
"""

from __future__ import annotations

APP_ID = "TA-aws-iot-defender"
__version__ = "0.1.0"
USER_AGENT_EXTRA = f"{APP_ID}/{__version__}"
