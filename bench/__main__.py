"""`make bench`: requests per remediation, Cloud Custodian alongside, time to containment, a burst
of findings, cold start and package size, on the embedded AWS. Prints the figures and writes them
into bench/RESULTS.md between its markers (the hand-written notes around them are kept).

    python -m bench [--runs 20] [--shape-runs 3] [--burst-instances 250]
"""

import argparse
import datetime
import logging
import os
import platform
import re
import statistics
import sys

from local import stack as local_stack

from bench import burst, clock, coldstart, package, remediation

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
BEGIN, END = "<!-- measured: begin -->", "<!-- measured: end -->"
SETTINGS = {"SNAPSHOT_POLL_SECONDS": "1", "SNAPSHOT_DEADLINE_SECONDS": "60"}
GOAL_ROUND_TRIPS = 5  # to isolation, groups exist, for 1 and for 8 interfaces (issue 15)
GOAL_NEW, GOAL_DUPLICATE = 3, 4
GOAL_VS_BOTO3, GOAL_VS_C7N, GOAL_ZIP = 1.3, 0.5, 0.1


def median(values) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def to_isolation(runs: list) -> str:
    """The critical path of `runs` in round trips, then in requests, then all requests before it."""
    return (f"{median([r.round_trips for r in runs]):g} round trips "
            f"({median([r.critical_path for r in runs]):g} requests; "
            f"{median([r.until_isolated for r in runs]):g} before it)")


def requests_section(runs: dict[str, list]) -> list[str]:
    rows = []
    for name, shape_runs in runs.items():
        first, then = [r.first for r in shape_runs], [r.then for r in shape_runs]
        theirs = [r.custodian for r in shape_runs if r.custodian]
        rows.append([
            name, to_isolation(then), f"{median([r.total for r in then]):g}",
            to_isolation(first), f"{median([r.total for r in first]):g}",
            f"{median([c.until_swap for c in theirs]):g} / "
            f"{median([len(c.calls) for c in theirs]):g}" if theirs else "n/a",
        ])
    one = runs[remediation.CONTAINMENT_SHAPE][0].then

    def warm(name, figure):
        """The median of `figure` over the shape's runs with the VPC's groups existing."""
        return median([figure(r.then) for r in runs[name]])

    by_interfaces = {n: remediation.interfaces_shape(n) for n in remediation.INTERFACES}
    trips = {n: warm(name, lambda r: r.round_trips) for n, name in by_interfaces.items()}
    total = {n: warm(name, lambda r: r.total) for n, name in by_interfaces.items()}
    steps = list(zip(remediation.INTERFACES, remediation.INTERFACES[1:]))
    per_interface = [(total[b] - total[a]) / (b - a) for a, b in steps]
    fewest, most = remediation.INTERFACES[0], remediation.INTERFACES[-1]
    per_volume = (warm("1 interface, 8 volumes", lambda r: r.total)
                  - warm(remediation.CONTAINMENT_SHAPE, lambda r: r.total)) / 7
    lines = ["### AWS requests per remediation (medians)", "",
             "Requests = moto's recorder (less the PutEvents that brings the finding) + Lambda "
             "invocations the bridge answered. *Isolation*: the last of the victim's interfaces "
             "answered a swap to the VPC's isolation group alone (told by the request's "
             "parameters; swaps to the all-open group, connection-tracking changes and later "
             "verifying swaps do not count). *To isolation* = the critical path, what the "
             "isolating swap waits for: in sequential round trips (requests in flight at the same "
             "time, as the client sent and received them, count once; each invocation started "
             "before isolation counts one), in requests, and every request and invocation made "
             "before isolation (the detection notice may go out before it, off the path). "
             "*Groups exist*: a second instance in the VPC; *first in VPC*: right after a reset, "
             "the VPC's isolation groups are created.", ""]
    lines += table(["shape", "to isolation, groups exist", "total", "to isolation, first in VPC",
                    "total, first in VPC", "Custodian to isolation / total"], rows)
    lines += ["",
              f"- Goal ≤ {GOAL_ROUND_TRIPS} round trips to isolation, groups exist: "
              f"{trips[fewest]:g} for {fewest} interface — "
              f"{verdict(trips[fewest] <= GOAL_ROUND_TRIPS)}; {trips[most]:g} for {most} "
              f"interfaces — {verdict(trips[most] <= GOAL_ROUND_TRIPS)}.",
              f"- Round trips to isolation per extra interface (groups exist): "
              f"{(trips[most] - trips[fewest]) / (most - fewest):g}; requests in all per extra "
              f"interface: {', '.join(f'{p:g}' for p in per_interface)} (from "
              f"{', '.join(f'{a} to {b}' for a, b in steps)}; linear: "
              f"{verdict(len(set(per_interface)) == 1)}).",
              f"- Total per extra volume: {per_volume:g} (constant in volumes: "
              f"{verdict(per_volume == 0)}).",
              f"- Requests made before isolation (1 interface, groups exist, one run, in the order "
              f"sent): {', '.join(one.requested_before)}; invoked before it: "
              f"{', '.join(one.invoked_before)}.",
              f"- Requests in all, same run: {len(one.calls)} to AWS + {len(one.invocations)} "
              f"invocations ({', '.join(one.invocations)})."]
    custodian_run = runs[remediation.CONTAINMENT_SHAPE][0].custodian
    lines += [f"- Custodian's requests (1 interface): {', '.join(custodian_run.calls)}.", ""]
    return lines


def containment_section(shape_runs: list) -> list[str]:
    first = [r.first for r in shape_runs]
    then = [r.then for r in shape_runs]
    theirs = [r.custodian for r in shape_runs]
    c_iso = median([c.seconds_to_isolation for c in theirs])
    c_req = median([c.seconds_first_request_to_isolation for c in theirs])
    c_total = median([c.seconds_total for c in theirs])
    isolated = sum(c.isolated for c in theirs)

    def row(name, runs):
        iso, report = median([r.seconds_to_isolation for r in runs]), median(
            [r.seconds_to_report for r in runs])
        return [name, f"{iso:.3f}", f"{report:.3f}", f"{iso / c_iso:.2f}", f"{report / c_total:.2f}"]

    lines = [f"### Time to containment, 1 interface / 1 volume (medians of {len(shape_runs)} runs, s)",
             "", "From the finding's arrival at the embedded AWS to the isolating swap answered, "
             "and to the final report's publish answered (which includes one "
             "`SNAPSHOT_POLL_SECONDS`=1 s wait: snapshots are never complete at creation in AWS). "
             "Ratios are to Custodian's run on a twin instance: its process start to its swap "
             "answered, and to its exit.", ""]
    lines += table(["run", "to isolation", "to report", "÷ Custodian to isolation",
                    "÷ Custodian total"],
                   [row("ec2-quarantine, groups exist, clients made", then),
                    row("ec2-quarantine, first after a reset (every client made anew)", first)])
    lines += ["",
              f"- Custodian (fresh process each run, imports included): to isolation {c_iso:.3f} s, "
              f"of which {c_req:.3f} s from its first request; in all {c_total:.3f} s.",
              f"- Custodian left the instance fully isolated in {isolated} of {len(theirs)} runs "
              f"(interfaces afterwards: e.g. {theirs[0].groups_left}); it made "
              f"{theirs[0].snapshots} snapshot(s).", ""]
    return lines


def burst_section(result: burst.Burst) -> list[str]:
    new, dup = result.new_requests, result.duplicate_requests
    return [f"### Burst: {result.findings} findings ({result.instances} instances × "
            f"{result.findings // result.instances}, shuffled), 8 concurrent invocations", "",
            "The handler's work (describe, claim, start; or describe, failed claim, record, "
            "announce) with real StartExecution calls; the embedded Step Functions does not run "
            f"the {result.instances} pipelines (see bench/burst.py). Findings per second "
            "measure moto on this machine more than the handler, which spends most of its time "
            "waiting for the embedded AWS's answers.", "",
            *table(["figure", "value", "goal"], [
                ["decisions", ", ".join(f"{k}: {v}" for k, v in sorted(result.decisions.items())),
                 ""],
                ["incidents / executions", f"{result.incidents} / {result.executions}",
                 f"{result.instances} / {result.instances} — "
                 f"{verdict(result.incidents == result.executions == result.instances)}"],
                ["errors", result.errors, f"0 — {verdict(result.errors == 0)}"],
                ["findings per second", f"{result.per_second:.1f}", ""],
                ["requests per new finding (median / max)", f"{median(new):g} / {max(new)}",
                 f"≤ {GOAL_NEW} — {verdict(max(new) <= GOAL_NEW)}"],
                ["requests per duplicate (median / max)", f"{median(dup):g} / {max(dup)}",
                 f"≤ {GOAL_DUPLICATE} — {verdict(max(dup) <= GOAL_DUPLICATE)}"],
                ["requests by action", ", ".join(f"{k} {v}" for k, v in
                                                 sorted(result.by_action.items())), ""],
            ]), ""]


def coldstart_section(times: dict, repetitions: int) -> list[str]:
    app, boto3, c7n = times["app"], times["boto3"], times["c7n.handler"]
    return [f"### Cold start: import time in a fresh interpreter (medians of {repetitions})", "",
            *table(["module", "seconds", "app ÷ it", "goal"], [
                ["app (app.py)", f"{app:.3f}", "", ""],
                ["boto3", f"{boto3:.3f}", f"{app / boto3:.2f}",
                 f"≤ {GOAL_VS_BOTO3} — {verdict(app / boto3 <= GOAL_VS_BOTO3)}"],
                ["c7n.handler", f"{c7n:.3f}", f"{app / c7n:.2f}",
                 f"≤ {GOAL_VS_C7N} — {verdict(app / c7n <= GOAL_VS_C7N)}"],
            ]), "", "The app imports no boto3 (clients are made on first use), so its first "
            "AWS call pays boto3's import and its first client's model loading instead.", ""]


def package_section(app_zip: tuple, c7n_size: int) -> list[str]:
    ratio = app_zip[0] / c7n_size
    return ["### Package", "",
            *table(["archive", "bytes", "÷ Custodian's", "goal"], [
                ["deployment.zip of `make package` (this working tree)", app_zip[0],
                 f"{ratio:.3f}", f"≤ {GOAL_ZIP} — {verdict(ratio <= GOAL_ZIP)}"],
                ["Custodian's Lambda archive (c7n.mu.custodian_archive)", c7n_size, "", ""],
            ]), "", f"The zip holds: {', '.join(app_zip[1])} (Chalice's runtime is `chalice`).",
            ""]


def machine_note() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores shared with other engineers' test runs, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def write_results(lines: list[str]) -> None:
    with open(RESULTS) as handle:
        text = handle.read()
    block = "\n".join([BEGIN, *lines, END])
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    with open(RESULTS, "w") as handle:
        handle.write(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of 1 interface/1 volume")
    parser.add_argument("--shape-runs", type=int, default=3, help="runs of every other shape")
    parser.add_argument("--burst-instances", type=int, default=250)
    parser.add_argument("--imports", type=int, default=15, help="repetitions of each import")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the app logs every decision: thousands of lines here
    command = "make bench" if os.environ.get("BENCH_VIA_MAKE") else \
        "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)

    print("cold start...", flush=True)
    imports = coldstart.run(args.imports)
    print("package...", flush=True)
    app_zip = package.app_zip()
    c7n_size = package.custodian_zip()

    stack = local_stack.start(aws_port=0, api_port=0, serve_api=False,
                              environ={**os.environ, **SETTINGS})
    try:
        timer = clock.install(stack)
        runs = {}
        for name in remediation.SHAPES:
            count = args.runs if name == remediation.CONTAINMENT_SHAPE else args.shape_runs
            runs[name] = []
            for n in range(count):
                print(f"{name}: run {n + 1}/{count}", flush=True)
                runs[name].append(remediation.run_shape(stack, timer, name))
        print("burst...", flush=True)
        burst_result = burst.run(stack, instances=args.burst_instances)
    finally:
        stack.stop()

    lines = [f"Measured {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} with `{command}` "
             f"on {machine_note()}.", ""]
    lines += requests_section(runs)
    lines += containment_section(runs[remediation.CONTAINMENT_SHAPE])
    lines += burst_section(burst_result)
    lines += coldstart_section(imports, args.imports)
    lines += package_section(app_zip, c7n_size)
    print("\n".join(lines))
    if not args.no_write:
        write_results(lines)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
