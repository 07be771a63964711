"""Run AWS on loopback until Ctrl-C: ``python -m tests.harness.aws --port 0 --seed 7 --things 50``."""

from __future__ import annotations

import argparse
import sys
import time

from .server import LoopbackAWS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.harness.aws", description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--things", type=int, default=0, help="seed a simulated fleet of this many things (0: none)")
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--compromised", type=int, default=3)
    ap.add_argument("--violation-events", type=int, default=None, help="target violation event count")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--registry", default="auto", choices=["auto", "boto3", "direct", "none"])
    ap.add_argument("--defender-quotas", action="store_true", help="enforce the Device Defender TPS quotas")
    ap.add_argument("--throttle-ratio", type=float, default=0.0)
    ap.add_argument("--error-ratio", type=float, default=0.0)
    args = ap.parse_args(argv)

    aws = LoopbackAWS(port=args.port, seed=args.seed, region=args.region)
    aws.start()
    if args.defender_quotas:
        aws.faults.enable_defender_quotas()
    aws.faults.throttle_ratio = args.throttle_ratio
    aws.faults.error_ratio = args.error_ratio
    if args.things:
        from ..fleet import Fleet

        fleet = Fleet(
            seed=args.seed,
            things=args.things,
            days=args.days,
            compromised=args.compromised,
            region=args.region,
            violation_events=args.violation_events,
        )
        summary = fleet.install(aws, registry=None if args.registry == "none" else args.registry)
        print(
            f"fleet: {len(fleet.things)} things, {len(fleet.violation_events)} violation events, "
            f"{len(fleet.active_violations)} active, {len(fleet.audit_tasks)} audit tasks, "
            f"{len(fleet.findings)} findings; compromised: {', '.join(fleet.compromised_things)}; "
            f"response plan: {summary.get('response_plan_arn')}",
            flush=True,
        )
    print(aws.endpoint_url, flush=True)
    for k, v in aws.env().items():
        print(f"export {k}={v}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        aws.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
